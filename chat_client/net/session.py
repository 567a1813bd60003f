"""One TCP connection to a chat server: open it, log in, then move frames both ways until it ends.

The bytes are handled by `shared.ProtocolConnection`, so this module never parses anything itself: it
reads whatever the socket gives (part of a frame, or many frames at once), feeds it to the protocol object
and takes out the complete messages. Writing never waits: `StreamWriter.write` queues the frame in the
transport, and the outbox limit bounds how much the user can queue.

With TLS (`TlsOptions`), the handshake completes inside `asyncio.open_connection`, and the server's key is
checked (`chat_client.net.trust.verify`) before the first write: an unverified server never receives a byte of
the chat protocol, not even `hello`.

A `Session` does not reconnect; `ChatClient` opens a new one after each failure.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from chat_client.net.errors import ConnectionLost, InvalidRequest, LoginRefused, ServerError
from chat_client.net.reasons import describe_failure
from chat_client.net.trust import ServerIdentity, TlsOptions, client_context, verify
from shared import (
    EndOfStream,
    Error,
    Hello,
    LocalProtocolError,
    Message,
    ProtocolConnection,
    RemoteProtocolError,
    Role,
    State,
    Welcome,
)
from shared.connection import Tap
from shared.limits import Limits

log = logging.getLogger(__name__)

#: How many bytes one read asks for.
READ_SIZE = 64 * 1024
#: Bytes queued in the transport above which `Session.drain()` waits: about one file chunk, so a chat
#: frame written during an upload waits behind at most about one chunk.
WRITE_HIGH_WATER = 64 * 1024
#: Seconds a connection attempt to one of a name's addresses gets before the next address is tried in
#: parallel (Happy Eyeballs, RFC 8305's recommended 250 ms): a name with an IPv6 and an IPv4 address connects
#: over whichever answers, without waiting out a dead one's TCP timeout.
HAPPY_EYEBALLS_DELAY = 0.25


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the server is."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def drain(protocol: ProtocolConnection) -> tuple[list[Message], Exception | None]:
    """Take every complete message out of `protocol`, and the exception that ends the stream, if any.

    A server frame with one bad field is logged and skipped (the protocol object has already consumed it);
    a fatal protocol error or the end of the stream stops the draining and is returned, not raised, so the
    messages that arrived before it are still handled.
    """
    messages: list[Message] = []
    for event in protocol.events():
        if isinstance(event, EndOfStream):
            return messages, ConnectionLost("the server closed the connection")
        if isinstance(event, RemoteProtocolError):
            if event.fatal:
                return messages, event
            log.warning("skipped an invalid frame from the server: %s", event)
            continue
        messages.append(event)
    return messages, None


def end_reason(error: Exception) -> ConnectionLost | ServerError:
    """Turn whatever ended a stream into the exception the client reports."""
    if isinstance(error, ServerError | ConnectionLost):
        return error
    if isinstance(error, RemoteProtocolError):
        return ConnectionLost(f"the server broke the protocol ({error.code}: {error.message})", error.code)
    if isinstance(error, TimeoutError):
        return ConnectionLost("no answer from the server")
    return ConnectionLost(f"connection failed: {describe_failure(error)}")


class Session:
    """A logged-in connection: `send()` frames, `receive()` batches of messages."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ProtocolConnection,
        welcome: Welcome,
        early: list[Message],
        identity: ServerIdentity | None = None,
    ) -> None:
        self.welcome = welcome
        #: The server's verified TLS key; None for a plaintext connection.
        self.identity = identity
        self._reader = reader
        self._writer = writer
        self._protocol = protocol
        # Messages that arrived in the same read as the welcome: handed out by the first receive().
        self._early = early
        # What ended the stream, once known; raised after the messages that preceded it are handed out.
        self._ended: Exception | None = None
        # Why `abort()` ended the session: raised by `receive()` in place of whatever the end looked like.
        self._aborted: ConnectionLost | None = None
        #: Seconds from the start of the connect to the `welcome` (the first round-trip sample).
        self.login_time = 0.0
        #: When bytes last arrived from the server (`time.monotonic()`).
        self.last_received = time.monotonic()
        #: Told of every frame sent (the pacing charges it to the server's rate limits:
        #: chat_client.net.pacing).
        self.on_send: Callable[[Message], None] | None = None

    @property
    def limits(self) -> Limits:
        """The limits the server announced."""
        return self._protocol.limits

    @classmethod
    async def open(
        cls,
        endpoint: Endpoint,
        hello: Hello,
        *,
        timeout: float,
        tls: TlsOptions | None = None,
        tap: Tap | None = None,
    ) -> Session:
        """Connect (with TLS and the key check if `tls` is given) and log in within `timeout` seconds.

        Raises `LoginRefused` when the server answers the hello with an error, `ConnectionLost` when the
        connection fails or ends first (a failed TLS handshake included), `UntrustedServer` when the
        server's key is not the expected one, and `TimeoutError` when the deadline passes. `tap` is shown
        every frame sent and received (`chat_client.net.wirelog`).
        """
        started = time.monotonic()
        async with asyncio.timeout(timeout):
            if tls is None:
                reader, writer = await asyncio.open_connection(
                    endpoint.host, endpoint.port, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
                )
            else:
                try:
                    reader, writer = await asyncio.open_connection(
                        endpoint.host,
                        endpoint.port,
                        ssl=client_context(),
                        server_hostname=endpoint.host,
                        happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                    )
                except ssl.SSLError as error:
                    raise ConnectionLost(f"TLS handshake failed: {error.reason or error}") from None
            identity = None
            writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
            try:
                if tls is not None:
                    ssl_object = writer.get_extra_info("ssl_object")
                    identity = verify(
                        endpoint.host,
                        endpoint.port,
                        ssl_object.getpeercert(binary_form=True),
                        ssl_object.version() or "TLS",
                        tls,
                    )
                protocol = ProtocolConnection(Role.CLIENT, tap=tap)
                writer.write(protocol.send(hello))
                while True:
                    protocol.receive_data(await reader.read(READ_SIZE))
                    messages, ended = drain(protocol)
                    if messages:
                        first, rest = messages[0], messages[1:]
                        if isinstance(first, Error):
                            raise LoginRefused(first)
                        assert isinstance(first, Welcome)  # the protocol object admits nothing else first
                        session = cls(reader, writer, protocol, first, rest, identity)
                        session.login_time = session.last_received - started
                        return session
                    if ended is not None:
                        raise end_reason(ended)
            except BaseException:
                writer.close()
                raise

    def send(self, message: Message) -> None:
        """Queue `message` for the server.

        Raises `InvalidRequest` if it breaks a protocol rule, `ConnectionLost` if the connection has ended
        (the server closed it or sent a fatal error, and the run task has not noticed yet).
        """
        if self._protocol.state is State.CLOSED or self._writer.is_closing():
            raise ConnectionLost("the connection is closed")
        try:
            data = self._protocol.send(message)
        except LocalProtocolError as error:
            raise InvalidRequest(error.code, error.message) from None
        self._writer.write(data)
        if self.on_send is not None:
            self.on_send(message)

    async def drain(self) -> None:
        """Wait until the bytes queued for the server are below the write buffer's low-water mark.

        Only bulk senders (file uploads) wait here; chat requests are written without waiting.
        Raises `ConnectionLost` if the connection ends first.
        """
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            raise ConnectionLost(f"connection lost: {describe_failure(error)}") from None

    async def receive(self, timeout: float) -> list[Message]:
        """Wait for the next messages (at least one).

        Raises `ConnectionLost` when the server closed, broke the protocol or sent nothing for `timeout`
        seconds, and `ServerError` when it ended the session with a fatal error frame. Messages that
        arrived before the end are returned first; the end is raised by the next call.
        """
        while True:
            if self._early:
                messages, self._early = self._early, []
            elif self._aborted is not None:
                raise self._aborted
            elif self._ended is not None:
                raise end_reason(self._ended)
            else:
                try:
                    data = await self._read(timeout)
                except ConnectionLost:
                    if self._aborted is not None:
                        raise self._aborted from None
                    raise
                if self._aborted is not None:
                    raise self._aborted
                self.last_received = time.monotonic()
                self._protocol.receive_data(data)
                messages, self._ended = drain(self._protocol)
            fatal = next((m for m in messages if isinstance(m, Error) and m.fatal), None)
            if fatal is not None:
                self._ended = ServerError(fatal)
                messages = messages[: messages.index(fatal)]
            if messages:
                return messages

    async def _read(self, timeout: float) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(READ_SIZE)
        except TimeoutError:
            raise ConnectionLost(f"the server sent nothing for {timeout:g} s") from None
        except OSError as error:
            raise ConnectionLost(f"connection lost: {describe_failure(error)}") from None

    def abort(self, reason: ConnectionLost) -> None:
        """End the session now, for `reason` (the server stopped answering, or the user asked to reconnect).

        The socket is dropped at once (no goodbye: the server may be frozen); `receive()` raises `reason`.
        """
        if self._aborted is None:
            self._aborted = reason
        self._writer.transport.abort()

    def close(self) -> None:
        """Close the socket (without waiting)."""
        self._writer.close()

    async def wait_closed(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for the socket to close."""
        try:
            async with asyncio.timeout(timeout):
                await self._writer.wait_closed()
        except (TimeoutError, OSError):
            pass
