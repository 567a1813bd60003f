"""`ClientRunner`: the run task that keeps a `ChatClient` logged in: connect, log in, serve, reconnect.

The middle layer of `ChatClient` (see chat_client.net.core): `connect()` starts the run task and waits for the
first login; the task then serves each session (`_serve`: catch up, then route every incoming message) and,
when one ends, waits with backoff and logs in again, until `close()`.

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
from types import TracebackType
from typing import Self

from chat_client.net.core import ClientCore
from chat_client.net.errors import (
    ClientClosed,
    ClientError,
    ConnectionLost,
    InvalidRequest,
    LoginRefused,
    ServerError,
    UntrustedServer,
)
from chat_client.net.events import Closed, Connected, Disconnected, Reconnecting
from chat_client.net.login import (
    FINAL_SESSION_CODES,
    RETRYABLE_LOGIN_CODES,
    connection_failure,
    refusal_reason,
)
from chat_client.net.options import ConnectionState
from chat_client.net.pins import PinStoreError
from chat_client.net.session import Session
from shared import ErrorCode, Hello, Quit

log = logging.getLogger(__name__)

#: Failures of an attempt whose TCP connection was made: the reachability probe would prove nothing.
_CUT_OFF = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


class ClientRunner(ClientCore):
    """Starts, runs and stops the run task; see the module docstring. Use it through `ChatClient`."""

    # -- Life cycle --------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect and log in; after that the client reconnects by itself.

        Raises `LoginRefused` (with the server's code, e.g. ``nick_taken``) or `ConnectionLost` if the
        first login fails: a wrong address or nick is reported at once, never retried forever.
        """
        if self._task is not None:
            raise ClientError("connect() was already called")
        self._check(self._hello())  # a bad nick or room name is the caller's mistake: say so now
        self._first_login = asyncio.get_running_loop().create_future()
        self._state = ConnectionState.CONNECTING
        self._task = asyncio.create_task(self._run(), name=f"mpchat client {self.nick}@{self.endpoint}")
        try:
            await self._first_login
        except BaseException:
            await self._stop_task()
            raise

    async def close(self, reason: str | None = None) -> None:
        """Log out (sending `quit` with `reason`) and stop reconnecting. Safe to call twice."""
        if self._task is None or self._task.done():
            self._state = ConnectionState.CLOSED
            return
        self._closing = True
        session = self._session
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

    @property
    def resume_token(self) -> str | None:
        """The current session's resume token (a secret: never log or show it); None before the login."""
        return self._resume_token

    @property
    def peers(self) -> int:
        """How many other people share a room with us (the crowd that reconnects with us)."""
        return self._crowd.peers(self.nick)

    @property
    def answer_deadline(self) -> float:
        """Seconds the server has to answer a ping before it is declared dead (chat_client.net.liveness)."""
        return self._liveness.answer_deadline()

    # -- The run task ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        final_error: Exception | None = None
        attempt = 0
        try:
            while not self._closing:
                retry_after = 0.0
                try:
                    session = await Session.open(
                        self.endpoint, self._hello(), timeout=self.options.connect_timeout, tls=self.tls
                    )
                except (UntrustedServer, PinStoreError) as untrusted:
                    # Never retried: the key will not change back by itself, and nothing may be sent.
                    final_error = untrusted
                    self._fail_first_login(untrusted)
                    self._emit(Disconnected(str(untrusted), untrusted.code, will_retry=False))
                    return
                except LoginRefused as refused:
                    if self._fail_first_login(refused) or refused.code not in RETRYABLE_LOGIN_CODES:
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
                    if self._fail_first_login(lost):
                        final_error = lost
                        return
                    reason = lost.reason
                    # Probe only when no connection could be made (refused, unreachable) or the attempt ran
                    # out of time: a server that accepts and then closes or resets at once would answer
                    # every probe, and the probe would turn the backoff into a tight loop.
                    probe = not isinstance(failure, (ConnectionLost, *_CUT_OFF))
                else:
                    attempt = 0
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
                attempt += 1
                peers = self._crowd.peers(self.nick)
                if self._retry_now:
                    delay = retry_after  # the user asked (/reconnect): at once, unless the server said when
                else:
                    delay = max(self.options.backoff.delay(attempt - 1, peers), retry_after)
                self._retry_now = False
                self._state = ConnectionState.RECONNECTING
                self._emit(Reconnecting(delay, attempt, reason))
                await self._wait_to_retry(delay, probe=probe and retry_after == 0, peers=peers)
        except Exception as bug:  # a bug in this module: report it as the reason the client stopped
            log.exception("the chat client stopped on an unexpected error")
            final_error = bug
            self._fail_first_login(ConnectionLost(f"internal error: {bug!r}"))
        finally:
            self._state = ConnectionState.CLOSED
            self._delivery.close()
            self._transfers.close()
            self._waiters.fail(ClientClosed("the client is closed"))
            self._emit(Closed(final_error))

    def reconnect_now(self) -> None:
        """Reconnect at once (`/reconnect`): end the wait before the next attempt, or drop the connection.

        While connected, the current connection is dropped and a new one made at once (resuming the session
        with its token). While waiting to reconnect, the wait ends now. Does nothing once closed.
        """
        if self._task is None or self._task.done() or self._closing:
            return
        self._retry_now = True
        session = self._session
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

    def _stopping(self) -> bool:
        # A method, not the attribute: the attribute changes while _run awaits (close() sets it).
        return self._closing

    def _fail_first_login(self, error: Exception) -> bool:
        """Report a failure of the first login to `connect()`; True if it was the first login."""
        if self._first_login is not None and not self._first_login.done():
            self._first_login.set_exception(error)
            return True
        return False

    def _hello(self) -> Hello:
        # After the first login, rooms are rejoined one by one with `after=` (see _resume), so the
        # hello asks for none.
        rooms = self._first_rooms if not self._logged_in_once else ()
        # After the first login the hello carries the session's resume token: if the server still holds
        # our previous connection (it has not noticed the drop yet), this login replaces it at once.
        token = self._resume_token if self._logged_in_once else None
        return self._credentials.hello(
            self.nick, client=self.options.client_name, rooms=rooms, resume_token=token
        )

    async def _serve(self, session: Session) -> ClientError:
        """Run one logged-in session until it ends; return why it ended."""
        self._session = session
        self._last_limits = session.limits
        self._state = ConnectionState.CONNECTED
        self.nick = session.welcome.nick
        resumed = self._logged_in_once
        self._logged_in_once = True
        self.identity = session.identity
        self._resume_token = session.welcome.resume_token
        self._liveness.started(session)
        self._emit(Connected(session.welcome, resumed, session.identity))
        if self._first_login is not None and not self._first_login.done():
            self._first_login.set_result(None)
        every = min(self.options.ping_every, max(float(session.welcome.ping_interval), 1.0))
        pinger = asyncio.create_task(self._liveness.ping_every(session, every), name="mpchat pinger")
        try:
            self._delivery.begin(session)  # pace by the rates it announced, counting the catch-up too
            for request in self._resume.after_login(
                lambda: next(self._refs), resumed=resumed, dm_backfill=self.options.dm_backfill
            ):
                session.send(request)
            self._delivery.attach(session.send)
            self._transfers.attach(session)
            while True:
                # The pinger notices a silent server (its answer deadline); this is only a backstop.
                for message in await session.receive(2 * every + self._liveness.answer_deadline()):
                    self._handle(message)
        except (ConnectionLost, ServerError) as ended:
            return ended
        finally:
            pinger.cancel()
            self._session = None
            self._delivery.detach()
            self._transfers.detach()
            session.close()
            self._resume.session_ended()
            self._waiters.fail(ConnectionLost("the connection was lost before the answer came"))
