"""The per-connection protocol state machine, sans-I/O: bytes in, messages out; messages in, bytes out.

A `ProtocolConnection` never touches a socket. Its owner (the threaded server, the asyncio client, a test)
moves the bytes:

    conn = ProtocolConnection(Role.SERVER)
    conn.receive_data(sock.recv(65536))      # b"" means the peer closed its side
    for message in conn.events():            # complete, validated messages; stops when more bytes are needed
        ...
    sock.sendall(conn.send(Welcome(...)))    # the frame bytes to write

What it enforces, on top of framing and validation:

* Nothing precedes `hello`: a server-side connection refuses any other first frame (`bad_hello`, fatal),
  a `hello` with the wrong `proto` (`bad_hello`) or an unknown version (`unsupported_version`); a client-side
  connection refuses to send anything before its `Hello`, and expects `welcome` or `error` first.
* After a fatal error is sent or received the connection is closed: nothing more is decoded or encoded.
* A client adopts the limits the server announces in `welcome` (capped, so a hostile server cannot make it
  buffer gigabytes).

The server side answers `unknown_type` for a message type it does not know; the client side skips unknown
server messages, so that a newer server can add notifications without breaking older clients.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import replace

from .codec import decode_body, encode
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .framing import FrameReassembler
from .limits import DEFAULT_LIMITS, Limits
from .messages import PROTOCOL_NAME, PROTOCOL_VERSION, Error, Hello, Welcome
from .schema import SENT_BY_CLIENT, SENT_BY_SERVER, Message, Sender, check_outgoing

#: The most a client accepts as a server's frame limit, whatever the server announces.
CLIENT_MAX_FRAME_CAP = 16 * 1024 * 1024


class Role(enum.Enum):
    """Which end of the connection this object speaks for."""

    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    """Where a connection is in its life."""

    #: Before the `hello` (server: not yet received; client: not yet answered).
    GREETING = "greeting"
    #: Logged in: any request or notification may flow.
    OPEN = "open"
    #: A fatal error was sent or received, or the peer closed: nothing more is exchanged.
    CLOSED = "closed"


class ConnectionClosed(Exception):
    """Raised by `events()` once the peer has closed its side (`receive_data(b"")`) and all data is read."""

    def __init__(self, *, mid_frame: bool) -> None:
        super().__init__("connection closed in the middle of a frame" if mid_frame else "connection closed")
        self.mid_frame = mid_frame


class ProtocolConnection:
    """One end of one connection: turns received bytes into messages and messages into bytes to send."""

    __slots__ = ("_eof", "_frames", "_hello_sent", "_receiving", "_sending_side", "limits", "role", "state")

    def __init__(self, role: Role, limits: Limits = DEFAULT_LIMITS) -> None:
        self.role = role
        self.limits = limits
        self.state = State.GREETING
        self._receiving = SENT_BY_CLIENT if role is Role.SERVER else SENT_BY_SERVER
        self._sending_side = Sender.SERVER if role is Role.SERVER else Sender.CLIENT
        self._frames = FrameReassembler(limits.max_frame)
        self._eof = False
        self._hello_sent = False

    # -- Receiving -----------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Hand over bytes read from the peer; `b""` means the peer closed its sending side."""
        if not data:
            self._eof = True
        elif self.state is not State.CLOSED:
            self._frames.feed(data)

    @property
    def buffered(self) -> int:
        """Bytes received that do not complete a frame yet (a frame, or more, follows)."""
        return self._frames.buffered

    def events(self) -> Iterator[Message]:
        """Yield each complete message received so far, in order.

        Raises `RemoteProtocolError` when the peer broke the protocol: if its `fatal` flag is set the caller
        must send the error (if it can) and close; otherwise the caller answers it and keeps reading.
        Raises `ConnectionClosed` after the last message once the peer has closed.
        """
        while self.state is not State.CLOSED:
            body = self._next_body()
            if body is None:
                if self._eof:
                    self.state = State.CLOSED
                    raise ConnectionClosed(mid_frame=self._frames.buffered > 0)
                return
            message = self._decode(body)
            if message is not None:
                yield message
        if self._eof:
            raise ConnectionClosed(mid_frame=False)

    def _next_body(self) -> bytes | None:
        try:
            return self._frames.next_frame()
        except RemoteProtocolError:
            self.state = State.CLOSED
            raise

    def _decode(self, body: bytes) -> Message | None:
        try:
            message = decode_body(body, self._receiving, self.limits)
        except RemoteProtocolError as error:
            if self.role is Role.CLIENT and error.code is ErrorCode.UNKNOWN_TYPE and self.state is State.OPEN:
                return None  # a newer server's notification: skip it
            if self.state is State.GREETING and self.role is Role.SERVER:
                # Before a successful hello there is no session to keep open: every refusal is final,
                # but keeps its own code (invalid_nick tells the user more than bad_hello would).
                error.fatal = True
            if error.fatal:
                self.state = State.CLOSED
            raise error
        try:
            self._after_receive(message)
        except RemoteProtocolError as error:
            # Refused for where it came in the conversation (a second hello, a first frame that is not
            # one): the answer still carries the request's ref, like every other refusal.
            error.ref = getattr(message, "ref", None)
            raise
        return message

    def _after_receive(self, message: Message) -> None:
        if self.role is Role.SERVER:
            if self.state is State.GREETING:
                self._accept_hello(message)
            elif isinstance(message, Hello):
                raise RemoteProtocolError(ErrorCode.ALREADY_LOGGED_IN, "hello was already received")
            return
        if isinstance(message, Error) and message.fatal:
            self.state = State.CLOSED
        elif self.state is State.GREETING:
            if not isinstance(message, Welcome | Error):
                self.state = State.CLOSED
                raise RemoteProtocolError(ErrorCode.BAD_HELLO, f"expected welcome, got {message.TYPE}")
            if isinstance(message, Welcome):
                self._adopt_server_limits(message.limits)
                self.state = State.OPEN

    def _accept_hello(self, message: Message) -> None:
        if not isinstance(message, Hello):
            self.state = State.CLOSED
            raise RemoteProtocolError(
                ErrorCode.BAD_HELLO, f"the first frame must be hello, not {message.TYPE}"
            )
        if message.proto != PROTOCOL_NAME:
            self.state = State.CLOSED
            raise RemoteProtocolError(ErrorCode.BAD_HELLO, f"this is an {PROTOCOL_NAME} server")
        if message.version != PROTOCOL_VERSION:
            self.state = State.CLOSED
            raise RemoteProtocolError(
                ErrorCode.UNSUPPORTED_VERSION, f"this server speaks version {PROTOCOL_VERSION} only"
            )
        self.state = State.OPEN

    def _adopt_server_limits(self, announced: Limits) -> None:
        self.limits = replace(announced, max_frame=min(announced.max_frame, CLIENT_MAX_FRAME_CAP))
        self._frames.max_frame = self.limits.max_frame

    # -- Sending -------------------------------------------------------------------------------------------

    def send(self, message: Message) -> bytes:
        """Return the frame bytes for `message`, after checking that this side may send it now."""
        if self.state is State.CLOSED:
            raise LocalProtocolError(ErrorCode.BAD_FRAME, "the connection is closed")
        if not message.SENDER & self._sending_side:
            raise LocalProtocolError(
                ErrorCode.UNKNOWN_TYPE, f"a {self.role.value} does not send {message.TYPE}"
            )
        if self.role is Role.CLIENT:
            if not self._hello_sent and not isinstance(message, Hello):
                raise LocalProtocolError(ErrorCode.BAD_HELLO, "the first frame must be hello")
            # A client checks what it sends against the server's limits, so a mistake is a typed local
            # error now rather than a refusal later. (The server builds its own frames and skips this.)
            check_outgoing(message, self.limits)
            self._hello_sent = True
        elif isinstance(message, Error) and message.fatal:
            self.state = State.CLOSED
        return encode(message)
