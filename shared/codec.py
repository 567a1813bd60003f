"""The wire format: frames (a length, then a body) cut from a byte stream, and bodies to and from messages.

**Frames.** TCP delivers a stream of bytes, not messages: two `send` calls may arrive in one `recv`, and one
`send` may arrive split over several (the "sticky packet" problem). So every frame starts with a 4-byte
big-endian unsigned length, followed by exactly that many bytes of body. The receiver appends whatever arrives
to a buffer, and cuts a frame off the front whenever the buffer holds a whole header and the body it announces
(`FrameReassembler`). The header is checked against the limit *before* any of the body is buffered, so a peer
that announces a 4 GiB frame costs us four bytes of memory, not four gigabytes.

**Bodies.** A message object becomes a msgpack map (`encode`), and a body becomes a validated message object
again (`decode_body`). Decoding untrusted bytes is where a server is most exposed, so `decode_body` is strict
and bounded:

1. msgpack is decoded with limits derived from the body's size (itself capped by the frame limit),
   strict UTF-8 strings and string-only map keys; extension types (including msgpack timestamps) are refused.
2. The result must be a map with a string `type` that the receiving side accepts.
3. Every field is checked by its message class (`shared.schema`): type, range, length and characters.

Whatever goes wrong surfaces as one `RemoteProtocolError` carrying the code to send back. Any other
exception escaping this module is a bug.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack

from .errors import ErrorCode, RemoteProtocolError
from .limits import Limits
from .schema import MAX_UINT, Message, build, to_wire

# -- Frames ------------------------------------------------------------------------------------------------

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


# -- Bodies ------------------------------------------------------------------------------------------------

_PACKER_OPTIONS: dict[str, Any] = {"use_bin_type": True}


def encode(message: Message) -> bytes:
    """Return the complete frame (header and body) for `message`."""
    return frame(encode_body(message))


def encode_body(message: Message) -> bytes:
    """Return the msgpack body of `message`, without the length header."""
    return msgpack.packb(to_wire(message), **_PACKER_OPTIONS)  # type: ignore[no-any-return]


def decode_body(body: bytes, accepted: dict[str, type[Message]], limits: Limits) -> Message:
    """Decode and validate one frame body into a message of a type in `accepted`.

    Unknown wire types raise `unknown_type` (not fatal: the frame was well formed); anything malformed
    raises `bad_frame` (fatal); a well-formed map with a wrong field raises that field's code (not fatal).
    """
    data = _unpack(body)
    if type(data) is not dict:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "a frame must hold a msgpack map")
    for key in data:
        if type(key) is not str:
            raise RemoteProtocolError(ErrorCode.BAD_FRAME, "map keys must be strings")
    type_name = data.get("type")
    if type(type_name) is not str:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "a frame must have a string 'type'")
    cls = accepted.get(type_name)
    try:
        if cls is None:
            shown = type_name if len(type_name) <= 32 and type_name.isprintable() else "(unprintable)"
            raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {shown!r}")
        return build(cls, data, limits)
    except RemoteProtocolError as error:
        # Let the answer carry the request's `ref`, so the client knows which request was refused.
        ref = data.get("ref")
        if type(ref) is int and 0 <= ref <= MAX_UINT:
            error.ref = ref
        raise


def _unpack(body: bytes) -> Any:
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext)
    except RemoteProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        # ValueError covers ExtraData, FormatError, StackError and UnicodeDecodeError; TypeError an unhashable
        # map key. msgpack refuses each of these before we see a value.
        raise RemoteProtocolError(
            ErrorCode.BAD_FRAME, f"not one msgpack value: {type(error).__name__}"
        ) from None
    if type(value) is dict or type(value) is list:
        _refuse_timestamps(value)
    return value


def _refuse_ext(code: int, data: bytes) -> Any:
    raise RemoteProtocolError(ErrorCode.BAD_FRAME, f"msgpack extension type {code} is not allowed")


def _refuse_timestamps(value: Any) -> None:
    """Refuse msgpack timestamps, the one extension type msgpack decodes without calling `ext_hook`."""
    stack = [value]
    while stack:
        container = stack.pop()
        for item in container.values() if type(container) is dict else container:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append(item)
            elif kind is msgpack.Timestamp:
                raise RemoteProtocolError(ErrorCode.BAD_FRAME, "msgpack extension type -1 is not allowed")
