"""A small synchronous test client: a real socket plus the shared `ProtocolConnection`.

Every wait has a deadline: `recv_until(predicate)` reads until a received message matches, or fails the
test with what did arrive. Messages that do not match are kept, in order, for later `recv_until` calls.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    EndOfStream,
    Error,
    Hello,
    History,
    Message,
    ProtocolConnection,
    Role,
    Welcome,
    encode,
)
from shared.errors import RemoteProtocolError
from tests.waiting import wait_until_sync

M = TypeVar("M", bound=Message)
DEFAULT_TIMEOUT = 5.0


class Closed(Exception):
    """The server closed the connection while a test was waiting for a message."""


def wait_until(predicate: Callable[[], object], timeout: float = DEFAULT_TIMEOUT, what: str = "") -> None:
    """Poll `predicate` until it is true; fail with `what` after `timeout` seconds (`tests.waiting`)."""
    wait_until_sync(predicate, timeout, what)


class ChatTestClient:
    """One client connection for tests."""

    def __init__(
        self, address: tuple[str, int], *, source: str | None = None, receive_buffer: int | None = None
    ) -> None:
        """Connect to `address`, from the local address `source` if given.

        `receive_buffer` (SO_RCVBUF) is set before connecting, where it still bounds the TCP window: a
        client with a small one that stops reading stalls the server's sends quickly.
        """
        source_address = (source, 0) if source else None
        if receive_buffer is None:
            self.sock = socket.create_connection(address, DEFAULT_TIMEOUT, source_address)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
                self.sock.settimeout(DEFAULT_TIMEOUT)
                if source_address is not None:
                    self.sock.bind(source_address)
                self.sock.connect(address)
            except BaseException:
                self.sock.close()
                raise
        self.protocol = ProtocolConnection(Role.CLIENT)
        self.pending: list[Message] = []
        self.closed = False
        self.nick: str | None = None
        self.last_welcome: Welcome | None = None

    # -- Sending ---------------------------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Encode and send one message."""
        self.sock.sendall(self.protocol.send(message))

    def send_unchecked(self, message: Message) -> None:
        """Send a message without the client-side checks (to test the server's own)."""
        self.sock.sendall(encode(message))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (for malformed input)."""
        self.sock.sendall(data)

    def hello(self, nick: str, rooms: Iterable[str] | None = None, ref: int | None = None) -> None:
        """Send a hello without waiting for the answer."""
        self.send(
            Hello(
                proto=PROTOCOL_NAME,
                version=PROTOCOL_VERSION,
                nick=nick,
                rooms=None if rooms is None else tuple(rooms),
                ref=ref,
            )
        )

    def login(self, nick: str, rooms: Iterable[str] | None = None) -> Welcome:
        """Log in and wait for the welcome and the backfill of every room joined at login."""
        room_list = None if rooms is None else list(rooms)
        self.hello(nick, room_list)
        welcome = self.recv(Welcome)
        expected = 1 if room_list is None else len(room_list)
        for _ in range(expected):
            self.recv(History)
        self.nick = welcome.nick
        self.last_welcome = welcome
        return welcome

    # -- Receiving -------------------------------------------------------------------------------------------

    def _read_more(self, deadline: float) -> None:
        if self.closed:
            raise Closed("the connection is closed")
        remaining = deadline - time.monotonic()
        if remaining < 0:
            raise TimeoutError
        self.sock.settimeout(max(remaining, 0.001))  # a zero deadline still reads what has arrived
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        self.protocol.receive_data(data)
        for event in self.protocol.events():
            if isinstance(event, EndOfStream):
                self.closed = True
            elif isinstance(event, RemoteProtocolError):
                raise event
            else:
                self.pending.append(event)

    def recv_until(self, predicate: Callable[[Message], bool], timeout: float = DEFAULT_TIMEOUT) -> Message:
        """Return (and remove) the first received message matching `predicate`, reading as needed."""
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self.pending):
                if predicate(message):
                    return self.pending.pop(index)
            try:
                self._read_more(deadline)
            except TimeoutError:
                raise AssertionError(f"nothing matched within {timeout} s; got {self.summary()}") from None
            except Closed:
                raise AssertionError(f"connection closed; got {self.summary()}") from None

    def recv(self, kind: type[M], timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> M:
        """Return the first received message of type `kind` whose fields equal `fields`."""

        def matches(message: Message) -> bool:
            """True for a message of the wanted type and field values."""
            return isinstance(message, kind) and all(getattr(message, k) == v for k, v in fields.items())

        found = self.recv_until(matches, timeout)
        assert isinstance(found, kind)
        return found

    def error(self, code: str, timeout: float = DEFAULT_TIMEOUT) -> Error:
        """Wait for an error frame with `code`."""
        return self.recv(Error, timeout, code=code)

    def summary(self, count: int = 8) -> str:
        """A short description of the unconsumed messages (for failure messages)."""
        shown = [repr(m)[:160] for m in self.pending[-count:]]
        return f"{len(self.pending)} pending, last: {shown}"

    def drain(self, quiet: float = 0.05) -> list[Message]:
        """Read until nothing arrives for `quiet` seconds; return and clear everything received."""
        while not self.closed:
            try:
                self._read_more(time.monotonic() + max(quiet, 0.002))
            except TimeoutError:
                break
            except Closed:
                break
        received, self.pending = self.pending, []
        return received

    def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """Read until the server closes the connection; return everything received."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            try:
                self._read_more(deadline)
            except TimeoutError:
                raise AssertionError(f"still open after {timeout} s; got {self.summary()}") from None
        received, self.pending = self.pending, []
        return received

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> ChatTestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
