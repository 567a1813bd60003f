"""Length-prefixed framing: turning a byte stream back into the frames that were sent.

TCP delivers a stream of bytes, not messages: two `send` calls may arrive in one `recv`, and one `send` may
arrive split over several (the "sticky packet" problem). So every frame starts with a 4-byte big-endian
unsigned length, followed by exactly that many bytes of body. The receiver appends whatever arrives to a
buffer, and cuts a frame off the front whenever the buffer holds a whole header and the body it announces.

The header is checked against the limit *before* any of the body is buffered, so a peer that announces a
4 GiB frame costs us four bytes of memory, not four gigabytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import ErrorCode, RemoteProtocolError

HEADER_SIZE = 4
MAX_HEADER_VALUE = 0xFFFFFFFF


def frame(body: bytes) -> bytes:
    """Return `body` with its 4-byte big-endian length header in front."""
    if len(body) > MAX_HEADER_VALUE:
        raise ValueError("a frame body must be shorter than 4 GiB")
    return len(body).to_bytes(HEADER_SIZE, "big") + body


class FrameReassembler:
    """Collects received bytes and hands back complete frame bodies, oldest first.

    Feed it any chunks (one byte at a time, or many frames at once) with `feed()`, then take the complete
    bodies with `frames()`. It raises `RemoteProtocolError` (fatal) for a zero-length or oversized frame.
    """

    __slots__ = ("_buffer", "_start", "max_frame")

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        # Bytes before this offset are already consumed. Consuming by moving an offset and compacting now and
        # then keeps the cost linear when one chunk carries thousands of small frames.
        self._start = 0

    @property
    def buffered(self) -> int:
        """How many received bytes are waiting to form a complete frame."""
        return len(self._buffer) - self._start

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._start and self._start * 2 >= len(self._buffer):
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += data

    def frames(self) -> Iterator[bytes]:
        """Yield each complete frame body in the buffer, leaving any incomplete tail for later."""
        while (body := self.next_frame()) is not None:
            yield body

    def next_frame(self) -> bytes | None:
        """Return the next complete frame body, or None if more bytes are needed first."""
        buffer, start = self._buffer, self._start
        if len(buffer) - start < HEADER_SIZE:
            return None
        length = int.from_bytes(buffer[start : start + HEADER_SIZE], "big")
        if length > self.max_frame:
            raise RemoteProtocolError(
                ErrorCode.FRAME_TOO_LARGE, f"frame of {length} bytes is over the limit of {self.max_frame}"
            )
        if length == 0:
            raise RemoteProtocolError(ErrorCode.BAD_FRAME, "empty frame (a frame holds one msgpack map)")
        end = start + HEADER_SIZE + length
        if len(buffer) < end:
            return None
        body = bytes(buffer[start + HEADER_SIZE : end])
        self._start = end
        if end == len(buffer):
            buffer.clear()
            self._start = 0
        return body
