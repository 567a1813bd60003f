"""The per-connection protocol state machine, sans-I/O: bytes in, messages out; messages in, bytes out.

A `ProtocolConnection` never touches a socket. Its owner (the threaded server, the asyncio client, a test)
moves the bytes:

    conn = ProtocolConnection(Role.CLIENT)
    sock.sendall(conn.send(Hello(...)))      # the frame bytes to write
    conn.receive_data(sock.recv(65536))      # b"" means the peer closed its side
    for event in conn.events():              # everything received so far; stops when more bytes are needed
        match event:
            case EndOfStream():              # the peer closed: the last event
                ...
            case RemoteProtocolError():      # a frame the peer got wrong; if `event.fatal`, the last event
                ...
            case _:                          # a complete, validated message
                ...

Like h11 and wsproto, the end of the stream and the peer's mistakes are *events*, not exceptions: a read loop
is a plain ``for``, and the messages that arrived before the end are handled before it.

Only a client *sends* through it (`send` checks a frame against the server's limits and the conversation's
order). A server encodes its frames with `shared.codec.encode` on whichever thread builds them (the history
thread encodes a room message once for every member), and its own connection object says when it is closed.

What it enforces, on top of framing and validation:

* Nothing precedes `hello`: a server-side connection refuses any other first frame (`bad_hello`, fatal),
  a `hello` with the wrong `proto` (`bad_hello`) or an unknown version (`unsupported_version`); a client-side
  connection refuses to send anything before its `Hello`, and expects `welcome` or `error` first.
* After a fatal error is received (or, on a client, sent) the connection is closed: nothing more is decoded
  or encoded.
* A client adopts the limits the server announces in `welcome` (capped, so a hostile server cannot make it
  buffer gigabytes).

The server side answers `unknown_type` for a message type it does not know; the client side skips unknown
server messages, so that a newer server can add notifications without breaking older clients.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from .codec import FrameReassembler, decode_body, encode
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .limits import DEFAULT_LIMITS, Limits
from .messages import PROTOCOL_NAME, PROTOCOL_VERSION, Error, Hello, Welcome
from .schema import SENT_BY_CLIENT, SENT_BY_SERVER, Message, Sender, check_outgoing

#: The most a client accepts as a server's frame limit, whatever the server announces.
CLIENT_MAX_FRAME_CAP = 16 * 1024 * 1024


#: Told of each frame: (outgoing, the frame's bytes with their length prefix, the message).
Tap = Callable[[bool, bytes, Message], None]


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


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The last event of `events()` once the peer has closed its side (`receive_data(b"")`) and every complete
    frame before it has been yielded. `mid_frame`: it closed in the middle of a frame (the rest is lost)."""

    mid_frame: bool = False


#: What `events()` yields: a message, a frame the peer got wrong (fatal or not), or the end of the stream.
Event = Message | RemoteProtocolError | EndOfStream


class ProtocolConnection:
    """One end of one connection: turns received bytes into messages and messages into bytes to send."""

    __slots__ = ("_eof", "_frames", "_hello_sent", "_receiving", "limits", "role", "state", "tap")

    def __init__(self, role: Role, limits: Limits = DEFAULT_LIMITS, *, tap: Tap | None = None) -> None:
        self.role = role
        self.limits = limits
        self.state = State.GREETING
        self._receiving = SENT_BY_CLIENT if role is Role.SERVER else SENT_BY_SERVER
        self._frames = FrameReassembler(limits.max_frame)
        self._eof = False
        self._hello_sent = False
        #: Shown every frame decoded or encoded here, with its bytes (a wire inspector); None: nothing.
        self.tap = tap

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

    def events(self) -> Iterator[Event]:
        """Yield everything received so far, in order: each complete message, each frame the peer got wrong
        (a `RemoteProtocolError`), and `EndOfStream` once the peer has closed.

        After a `RemoteProtocolError` whose `fatal` flag is set, or an `EndOfStream`, nothing more comes: the
        caller sends the error (if it can) and closes. After a non-fatal one, the caller answers it and reads
        on. A call after the end yields `EndOfStream` again.
        """
        ended = self.state is State.CLOSED  # before this call
        while self.state is not State.CLOSED:
            try:
                body = self._frames.next_frame()
            except RemoteProtocolError as error:
                self.state = State.CLOSED
                yield error
                return
            if body is None:
                if self._eof:
                    self.state = State.CLOSED
                    yield EndOfStream(mid_frame=self._frames.buffered > 0)
                return
            event = self._decode(body)
            if event is not None:
                yield event
        if ended and self._eof:
            yield EndOfStream()

    def _decode(self, body: bytes) -> Message | RemoteProtocolError | None:
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
            return error
        if self.tap is not None:
            self.tap(False, len(body).to_bytes(4, "big") + body, message)
        try:
            self._after_receive(message)
        except RemoteProtocolError as error:
            # Refused for where it came in the conversation (a second hello, a first frame that is not
            # one): the answer still carries the request's ref, like every other refusal.
            error.ref = getattr(message, "ref", None)
            return error
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
        """Return the frame bytes for `message`, after checking that the client may send it now.

        Client side only: a server encodes its frames with `shared.codec.encode` (see the module's docstring).
        """
        if self.role is not Role.CLIENT:
            raise LocalProtocolError(ErrorCode.UNKNOWN_TYPE, "a server encodes its frames with codec.encode")
        if self.state is State.CLOSED:
            raise LocalProtocolError(ErrorCode.BAD_FRAME, "the connection is closed")
        if not message.SENDER & Sender.CLIENT:
            raise LocalProtocolError(ErrorCode.UNKNOWN_TYPE, f"a client does not send {message.TYPE}")
        if not self._hello_sent and not isinstance(message, Hello):
            raise LocalProtocolError(ErrorCode.BAD_HELLO, "the first frame must be hello")
        # A client checks what it sends against the server's limits, so a mistake is a typed local error now
        # rather than a refusal later.
        check_outgoing(message, self.limits)
        self._hello_sent = True
        frame = encode(message)
        if self.tap is not None:
            self.tap(True, frame, message)
        return frame
