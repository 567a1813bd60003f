"""One TCP connection of the suite: send frames whole, byte by byte or coalesced; wait for matching frames."""

from __future__ import annotations

import socket
import time
from collections import deque
from typing import Any

from .transcript import Mismatch, Variables, match
from .wire import FrameReader, WireError, encode

#: How long the suite waits for an expected frame, or for the peer to close, by default.
DEFAULT_TIMEOUT = 5.0


class Peer:
    """A connected socket, the frames received and not yet matched, and whether the other side closed."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = FrameReader()
        #: Frames received and not yet taken by a step, each with its arrival number.
        self.inbox: deque[tuple[int, dict[str, Any]]] = deque()
        self._arrivals = 0
        #: The arrival number of the last frame a step took: `expect(first=True)` looks right after it.
        self._last_taken = 0
        self.closed = False

    @classmethod
    def connect(
        cls, host: str, port: int, name: str, timeout: float = DEFAULT_TIMEOUT, rcvbuf: int | None = None
    ) -> Peer:
        """Open a connection to `host`:`port`; with `rcvbuf`, the socket's receive buffer is set to that many
        bytes before connecting (where it still bounds the TCP window), so that a peer that stops reading
        fills the server's buffers quickly."""
        if rcvbuf is None:
            return cls(socket.create_connection((host, port), timeout=timeout), name)
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return cls(sock, name)

    # -- sending -----------------------------------------------------------------------------------------

    def send_frames(self, frames: list[dict[str, Any]], how: str = "whole") -> None:
        """Send `frames`: each in one write (``whole``), all in one write (``coalesced``), or one byte per
        write (``bytes``: the server must reassemble a frame from any split, section 2)."""
        data = [encode(frame) for frame in frames]
        self.send_bytes(data, how)

    def send_bytes(self, chunks: list[bytes], how: str = "whole") -> None:
        """Send raw bytes, split as `how` says."""
        try:
            if how == "coalesced":
                self.sock.sendall(b"".join(chunks))
            elif how == "bytes":
                for byte in b"".join(chunks):
                    self.sock.sendall(bytes([byte]))
            else:
                for chunk in chunks:
                    self.sock.sendall(chunk)
        except OSError as error:
            raise Mismatch(f"{self.name}: could not send ({error})") from error

    # -- receiving ---------------------------------------------------------------------------------------

    def _receive(self, deadline: float) -> bool:
        """Read once, until `deadline`; False when nothing more can come (timeout or closed)."""
        if self.closed:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        try:
            frames = self._reader.feed(data)
        except WireError as error:
            raise Mismatch(f"{self.name}: the server sent a bad frame: {error}") from error
        for frame in frames:
            self._arrivals += 1
            self.inbox.append((self._arrivals, frame))
        return True

    def expect(
        self, pattern: Any, variables: Variables, timeout: float, *, first: bool = False
    ) -> dict[str, Any]:
        """Wait for a received frame that matches `pattern` and take it out of the inbox.

        Frames that do not match stay for later steps (notifications of unrelated causes have no defined
        order between them). With `first`, the frame that arrived right after the one the previous step
        took must be the one.
        """
        deadline = time.monotonic() + timeout
        checked = 0
        last_error = ""
        while True:
            while checked < len(self.inbox):
                arrival, frame = self.inbox[checked]
                if first and arrival <= self._last_taken:
                    checked += 1
                    continue
                try:
                    match(pattern, frame, variables)
                except Mismatch as error:
                    if first:
                        raise Mismatch(f"{self.name}: the next frame does not match: {error}") from error
                    if frame.get("type") == pattern.get("type"):
                        last_error = str(error)
                    checked += 1
                    continue
                del self.inbox[checked]
                self._last_taken = arrival
                return frame
            if not self._receive(deadline):
                seen = ", ".join(str(frame.get("type")) for _, frame in self.inbox) or "nothing"
                state = "the connection closed" if self.closed else f"no match within {timeout:g} s"
                hint = f"; closest: {last_error}" if last_error else ""
                raise Mismatch(f"{self.name}: {state} for {pattern!r:.120} (received: {seen}){hint}")

    def expect_silence(self, pattern: Any, variables: Variables, seconds: float) -> None:
        """Fail if a frame matching `pattern` arrives within `seconds` (or is already waiting)."""
        deadline = time.monotonic() + seconds
        while True:
            for _, frame in self.inbox:
                try:
                    match(pattern, frame, variables)
                except Mismatch:
                    continue
                raise Mismatch(f"{self.name}: received {frame!r:.120}, which should not have been sent")
            if not self._receive(deadline) and (self.closed or time.monotonic() >= deadline):
                return

    def expect_closed(self, timeout: float) -> None:
        """Wait until the other side closes the connection (frames before the close stay in the inbox)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self._receive(deadline) and not self.closed:
                raise Mismatch(f"{self.name}: the connection is still open after {timeout:g} s")

    def close(self) -> None:
        """Close our end."""
        self.closed = True
        self.sock.close()
