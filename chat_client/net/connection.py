"""The connection to the server: one logged-in `Session`, and the run task that keeps one open.

A `Session` is one TCP connection: `open()` connects and logs in, `send()` queues a frame, `receive()` hands
out the messages that arrived. The bytes are handled by `shared.ProtocolConnection`, so this module never
parses anything itself: it reads whatever the socket gives (part of a frame, or many frames at once), feeds
it to the protocol object and takes out the complete messages. Writing never waits: `StreamWriter.write`
queues the frame in the transport, and the outbox limit bounds how much the user can queue. With TLS
(`TlsOptions`), the handshake completes inside `asyncio.open_connection`, and the server's key is checked
(`chat_client.net.trust.verify`) before the first write: an unverified server never receives a byte of the
chat protocol, not even `hello`. A `Session` does not reconnect: the run task opens a new one.

The `ClientRunner` is that run task, a part of `ChatClient` (chat_client.net.client), which builds it with
the other parts it drives: `start()` starts the run task and waits for the first login; the task then serves
each session (`_serve`: catch up, then hand every incoming message to the client's `Router`) and, when one
ends, waits with backoff and logs in again, until `stop()`. The runner owns the connection's life: the
current `Session`, the state, the resume token. The parts that write through the session (`Delivery`,
`Liveness`, `Waiters`, `FileTransfers`) take it as a parameter, and import `Session` for their type hints
only: this module drives them, they never open a session.

Everything runs on the caller's event loop, in one task (`_run`) plus one pinger task per connection and
one task per file transfer; there are no locks, and no threads except the short `asyncio.to_thread` calls
that hash, read and write files for transfers. The run task owns the current `Session` and is the only
reader of it; requests made by the caller write to the session directly (a write never waits; only an
upload waits for its chunk to leave the buffer).

What survives a reconnect, and how it is used (the "resume"):

* the joined rooms and, per room, the id of the last message seen: the client rejoins each room with
  `after=<that id>` and the server replays what was missed, oldest first;
* the id of the last direct message seen: the client fetches the direct messages after it;
* the outbox of unacknowledged messages: each is sent again with its `client_msg_id`, and the server
  stores it at most once;
* the ids recently seen per room, so a message that arrives twice (a replay overlapping a live message)
  is delivered once;
* unfinished file transfers: an upload offers its file again (same `client_msg_id`) and continues from
  the offset the server holds, a download continues from the length of its partial file.

Stop order: `close()` sends `quit`, waits a bounded time for the server to close, then cancels the run
task, whose `finally` closes the socket, fails the waiting requests and emits the final `Closed` event.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from chat_client.net.delivery import Delivery
from chat_client.net.errors import (
    ClientClosed,
    ClientError,
    ConnectionLost,
    InvalidRequest,
    LoginRefused,
    ServerError,
    UntrustedServer,
)
from chat_client.net.events import Closed, Connected, Disconnected, Event, Reconnecting
from chat_client.net.liveness import Liveness
from chat_client.net.login import (
    FAIL_OVER_CODES,
    FINAL_SESSION_CODES,
    RETRYABLE_LOGIN_CODES,
    Credentials,
    connection_failure,
    refusal_reason,
)
from chat_client.net.options import ClientOptions, ConnectionState
from chat_client.net.pins import PinStoreError
from chat_client.net.reasons import describe_failure
from chat_client.net.resume import Crowd, ResumeState
from chat_client.net.transfers import FileTransfers
from chat_client.net.trust import ServerIdentity, TlsOptions, client_context, verify
from chat_client.net.waiters import Waiters
from shared import (
    EndOfStream,
    Error,
    ErrorCode,
    Hello,
    LocalProtocolError,
    Message,
    ProtocolConnection,
    Quit,
    RemoteProtocolError,
    Role,
    State,
    Welcome,
)
from shared.addresses import parse_servers
from shared.connection import Tap
from shared.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)

# -- One session: a logged-in TCP connection -----------------------------------------------------------------

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


# -- The run task: one session after another, until stop() ---------------------------------------------------

#: Failures of an attempt whose TCP connection was made: the reachability probe would prove nothing.
_CUT_OFF = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


class ClientRunner:
    """Starts, runs and stops the run task; see the module docstring. A part of `ChatClient`."""

    def __init__(
        self,
        servers: Sequence[Endpoint],
        tls: TlsOptions | None,
        options: ClientOptions,
        *,
        first_rooms: Iterable[str] | None,
        credentials: Credentials,
        delivery: Delivery,
        transfers: FileTransfers,
        waiters: Waiters,
        liveness: Liveness,
        resume: ResumeState,
        crowd: Crowd,
        next_ref: Callable[[], int],
        route: Callable[[Message, Session], None],
        emit: Callable[[Event], None],
        tap: Tap | None = None,
    ) -> None:
        if not servers:
            raise ValueError("no server to connect to")
        #: The servers of the chat, tried in this order (`host` of `ChatClient`: one, or a cluster's).
        self.servers = list(servers)
        #: The server in use, or between sessions the one tried next.
        self.endpoint = self.servers[0]
        # Servers in a row that failed since the last login or the last full round (see `_fail_over`).
        self._failed_in_round = 0
        self.tls = tls
        self.options = options
        self._first_rooms = tuple(first_rooms) if first_rooms is not None else None
        self._credentials = credentials
        self._delivery = delivery
        self._transfers = transfers
        self._waiters = waiters
        self._liveness = liveness
        self._resume = resume
        self._crowd = crowd
        self._next_ref = next_ref
        self._route = route
        self._emit = emit
        #: Shown every frame of every session (a wire log), or None.
        self.tap = tap
        #: Idle, connecting, connected, reconnecting or closed.
        self.state = ConnectionState.IDLE
        #: The logged-in session, None between sessions.
        self.session: Session | None = None
        #: The verified key of the current (or last) TLS session.
        self.identity: ServerIdentity | None = None
        #: The current session's resume token (a secret), sent in the hello of each reconnect.
        self.resume_token: str | None = None
        #: True from `stop()` on: no new request is accepted, no reconnect made.
        self.closing = False
        self._task: asyncio.Task[None] | None = None
        self._logged_in_once = False
        # Set by `reconnect_now()`: the next attempt starts at once. `_wake` ends the wait before it.
        self._retry_now = False
        self._wake: asyncio.Event | None = None
        self._first_login: asyncio.Future[None] | None = None
        # The limits of the last session, kept for checking messages typed while offline.
        self._last_limits = DEFAULT_LIMITS

    @property
    def limits(self) -> Limits:
        """The server's limits (the protocol defaults before the first login)."""
        return self.session.limits if self.session is not None else self._last_limits

    @property
    def started(self) -> bool:
        """True once `start()` was called (until the run task ends)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the run task and wait for the first login (its failure is raised here)."""
        if self._task is not None:
            raise ClientError("connect() was already called")
        self._first_login = asyncio.get_running_loop().create_future()
        self.state = ConnectionState.CONNECTING
        name = f"mpchat client {self._credentials.nick}@{self.endpoint}"
        self._task = asyncio.create_task(self._run(), name=name)
        try:
            await self._first_login
        except BaseException:
            await self._stop_task()
            raise

    async def stop(self, reason: str | None = None) -> None:
        """Log out (sending `quit` with `reason`) and stop reconnecting. Safe to call twice."""
        if self._task is None or self._task.done():
            self.state = ConnectionState.CLOSED
            return
        self.closing = True
        session = self.session
        if session is not None:
            try:
                session.send(Quit(reason=reason))
            except InvalidRequest:
                session.send(Quit())  # the reason broke a rule (too long): quit without one
            except ConnectionLost:
                pass  # already gone: nothing to wait for
            try:
                async with asyncio.timeout(self.options.close_timeout):
                    await asyncio.shield(self._task)
            except TimeoutError:
                log.info("the server did not close the connection after quit; closing it ourselves")
        await self._stop_task()

    async def _stop_task(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Our own cancellation of the run task; if the caller itself is being cancelled, pass it on.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

    # -- The run task ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        final_error: Exception | None = None
        attempt = 0
        try:
            while not self.closing:
                retry_after = 0.0
                failing_over = False  # the next attempt goes at once to another server of the list
                try:
                    session = await Session.open(
                        self.endpoint,
                        self.hello(),
                        timeout=self.options.connect_timeout,
                        tls=self.tls,
                        tap=self.tap,
                    )
                except (UntrustedServer, PinStoreError) as untrusted:
                    # Never retried: the key will not change back by itself, and nothing may be sent.
                    final_error = untrusted
                    self._fail_first_login(untrusted)
                    self._emit(Disconnected(str(untrusted), untrusted.code, will_retry=False))
                    return
                except LoginRefused as refused:
                    failing_over = refused.code in FAIL_OVER_CODES and self._fail_over()
                    if not failing_over and (
                        self._fail_first_login(refused) or refused.code not in RETRYABLE_LOGIN_CODES
                    ):
                        final_error = refused
                        self._emit(
                            Disconnected(refused.message or refused.code, refused.code, will_retry=False)
                        )
                        return
                    reason = refusal_reason(refused)
                    retry_after = (refused.retry_after_ms or 0) / 1000
                    probe = False  # the server is there and answering: the backoff alone decides
                except (OSError, TimeoutError, ConnectionLost) as failure:
                    lost = failure if isinstance(failure, ConnectionLost) else connection_failure(failure)
                    failing_over = self._fail_over()
                    if not failing_over and self._fail_first_login(lost):
                        final_error = lost
                        return
                    reason = lost.reason
                    # Probe only when no connection could be made (refused, unreachable) or the attempt ran
                    # out of time: a server that accepts and then closes or resets at once would answer
                    # every probe, and the probe would turn the backoff into a tight loop.
                    probe = not isinstance(failure, (ConnectionLost, *_CUT_OFF))
                else:
                    attempt = 0
                    self._failed_in_round = 0
                    ended = await self._serve(session)
                    if self._stopping():
                        return
                    reason = str(ended)
                    probe = isinstance(ended, ConnectionLost) or (
                        isinstance(ended, ServerError) and ended.code == ErrorCode.SERVER_SHUTDOWN
                    )
                    if isinstance(ended, ServerError):
                        retry_after = (ended.retry_after_ms or 0) / 1000
                    will_retry = self.options.reconnect and not (
                        isinstance(ended, ServerError) and ended.code in FINAL_SESSION_CODES
                    )
                    code = ended.code if isinstance(ended, ServerError | ConnectionLost) else None
                    self._emit(Disconnected(reason, code, will_retry=will_retry))
                    if not will_retry:
                        final_error = ended
                        return
                    # The server went away (not a /reconnect): another of the list may be there.
                    failing_over = probe and not self._retry_now and self._fail_over()
                peers = self._crowd.peers(self._credentials.nick)
                if failing_over:
                    # Straight on to the next server, spread over the crowd's window like a return (a
                    # server's clients all fail over at once); the backoff starts once every server failed.
                    delay = self.options.backoff.crowd_delay(peers)
                    self._emit(Reconnecting(delay, attempt + 1, reason, server=str(self.endpoint)))
                    self.state = ConnectionState.RECONNECTING
                    await self._wait_to_retry(delay, probe=False, peers=peers)
                    continue
                attempt += 1
                if self._retry_now:
                    delay = retry_after  # the user asked (/reconnect): at once, unless the server said when
                else:
                    delay = max(self.options.backoff.delay(attempt - 1, peers), retry_after)
                self._retry_now = False
                self.state = ConnectionState.RECONNECTING
                self._emit(Reconnecting(delay, attempt, reason))
                await self._wait_to_retry(delay, probe=probe and retry_after == 0, peers=peers)
        except Exception as bug:  # a bug in this module: report it as the reason the client stopped
            log.exception("the chat client stopped on an unexpected error")
            final_error = bug
            self._fail_first_login(ConnectionLost(f"internal error: {bug!r}"))
        finally:
            self.state = ConnectionState.CLOSED
            self._delivery.close()
            self._transfers.close()
            self._waiters.fail(ClientClosed("the client is closed"))
            self._emit(Closed(final_error))

    def reconnect_now(self) -> None:
        """Reconnect at once (`/reconnect`): end the wait before the next attempt, or drop the connection.

        While connected, the current connection is dropped and a new one made at once (resuming the session
        with its token). While waiting to reconnect, the wait ends now. Does nothing once closed.
        """
        if not self.started or self.closing:
            return
        self._retry_now = True
        session = self.session
        if session is not None:
            session.abort(ConnectionLost("reconnecting, as asked"))
        elif self._wake is not None:
            self._wake.set()

    async def _wait_to_retry(self, delay: float, *, probe: bool, peers: int) -> None:
        """Wait `delay` seconds before the next attempt; less if the server is seen back, or if asked.

        With `probe` (the last failure was the network's or a server going away, not a refusal), a TCP
        connect is tried every `probe_interval` seconds (jittered): once one succeeds the server is back,
        and the wait shrinks to the crowd's window (`Backoff.crowd_delay`: nothing for a client alone, a
        random share of a few seconds for fifty), so a long backoff never outlives the outage, and a crowd
        still comes back spread out. `reconnect_now()` ends the wait at once.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        wake = self._wake = asyncio.Event()
        backoff = self.options.backoff
        try:
            while (left := end - loop.time()) > 0:
                step = left
                if probe:
                    step = min(left, backoff.rng.uniform(0.5, 1.5) * self.options.probe_interval)
                try:
                    async with asyncio.timeout(step):
                        await wake.wait()
                    return  # asked to retry now
                except TimeoutError:
                    pass
                if probe and loop.time() < end and await self._reachable():
                    probe = False
                    end = min(end, loop.time() + backoff.crowd_delay(peers))
        finally:
            self._wake = None

    async def _reachable(self) -> bool:
        """True if a TCP connection to the server can be made now (closed at once: nothing is sent)."""
        timeout = max(self.options.probe_interval, 0.1)
        try:
            async with asyncio.timeout(timeout):
                _reader, writer = await asyncio.open_connection(self.endpoint.host, self.endpoint.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    def _learn_servers(self, servers: tuple[str, ...]) -> None:
        """Add the other servers a cluster server announces (`welcome.servers`, docs/cluster.md) to the
        list this client fails over to (each once, after those it was given; a malformed one is skipped)."""
        for text in servers:
            try:
                found = parse_servers(text, self.endpoint.port)
            except ValueError:
                log.warning("skipped a malformed server address in welcome: %r", text)
                continue
            for host, port in found:
                if Endpoint(host, port) not in self.servers:
                    self.servers.append(Endpoint(host, port))

    def _fail_over(self) -> bool:
        """The server in use failed: move on to the next one of the list.

        True if that one has not been tried since the last login (or the last full round): try it at once.
        False with a single server, and once every server has failed in a row: then the client waits with
        backoff as usual (the round starts again, from the next server), and a first login fails.
        """
        if len(self.servers) == 1:
            return False
        self.endpoint = self.servers[(self.servers.index(self.endpoint) + 1) % len(self.servers)]
        self._failed_in_round += 1
        if self._failed_in_round < len(self.servers):
            return True
        self._failed_in_round = 0
        return False

    def _stopping(self) -> bool:
        # A method, not the attribute: the attribute changes while _run awaits (stop() sets it).
        return self.closing

    def _fail_first_login(self, error: Exception) -> bool:
        """Report a failure of the first login to `connect()`; True if it was the first login."""
        if self._first_login is not None and not self._first_login.done():
            self._first_login.set_exception(error)
            return True
        return False

    def hello(self) -> Hello:
        """The login frame for the next attempt."""
        name = self.options.client_name
        if not self._logged_in_once:
            return self._credentials.hello(client=name, rooms=self._first_rooms)
        # A reconnect resumes in the login: every room after the last id seen in it, and the direct messages
        # (chat_client.net.resume: no join token spent, however many rooms). It carries the session's resume
        # token: if the server still holds our previous connection (it has not noticed the drop yet), this
        # login replaces it at once.
        resume = self._resume.login_resume()
        return self._credentials.hello(
            client=name,
            rooms=resume.rooms,
            resume_token=self.resume_token,
            after=resume.after,
            direct_after=resume.direct_after,
        )

    async def _serve(self, session: Session) -> ClientError:
        """Run one logged-in session until it ends; return why it ended."""
        self.session = session
        self._last_limits = session.limits
        self.state = ConnectionState.CONNECTED
        self._credentials.nick = session.welcome.nick
        self._credentials.session_id = session.welcome.session
        self._credentials.sessions = session.welcome.sessions
        resumed = self._logged_in_once
        self._logged_in_once = True
        self.identity = session.identity
        self.resume_token = session.welcome.resume_token
        self._learn_servers(session.welcome.servers)
        self._liveness.started(session)
        self._emit(Connected(session.welcome, resumed, session.identity))
        if self._first_login is not None and not self._first_login.done():
            self._first_login.set_result(None)
        every = min(self.options.ping_every, max(float(session.welcome.ping_interval), 1.0))
        pinger = asyncio.create_task(self._liveness.ping_every(session, every), name="mpchat pinger")
        try:
            self._delivery.begin(session)  # pace by the rates it announced, counting the catch-up too
            for request in self._resume.after_login(
                self._next_ref, resumed=resumed, dm_backfill=self.options.dm_backfill
            ):
                session.send(request)
            self._delivery.attach(session.send)
            self._transfers.attach(session)
            while True:
                # The pinger notices a silent server (its answer deadline); this is only a backstop.
                for message in await session.receive(2 * every + self._liveness.answer_deadline()):
                    self._route(message, session)
        except (ConnectionLost, ServerError) as ended:
            return ended
        finally:
            pinger.cancel()
            self.session = None
            self._delivery.detach()
            self._transfers.detach()
            session.close()
            self._resume.session_ended()
            self._waiters.fail(ConnectionLost("the connection was lost before the answer came"))
