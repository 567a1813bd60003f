"""`ChatClient`: an asyncio chat client that logs in, reconnects, resumes and delivers, for UIs and bots.

    async with ChatClient("127.0.0.1", 7878, "echo") as client:
        await client.join("lobby")
        await client.say("lobby", "hello")
        async for event in client.events():
            ...

Everything runs on the caller's event loop, in one task (`_run`) plus one pinger task per connection and
one task per file transfer; there are no locks, and no threads except the short `asyncio.to_thread` calls
that hash, read and write files for transfers. The run task owns the current `Session` and is the only
reader of it; requests made by the caller write to the session directly (a write never waits; only an
upload waits for its chunk to leave the buffer). Sent messages go through `Delivery` (the outbox's trip to
the server), file transfers through `Transfers`, what survives a reconnect lives in `ResumeState`.

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
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self

from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    AwayChanged,
    BanList,
    ChangeNick,
    ErrorCode,
    FetchHistory,
    FileData,
    FileDone,
    FileOffered,
    FilePolicy,
    FileProgress,
    Hello,
    History,
    Join,
    Joined,
    Leave,
    Left,
    ListBans,
    ListRooms,
    LocalProtocolError,
    Message,
    Moderated,
    ModerationRequest,
    NickChanged,
    Ping,
    Pong,
    Quit,
    Register,
    Registration,
    RoomList,
    RoomState,
    Said,
    Say,
    SetAway,
    SetMode,
    SetTopic,
    Tell,
    Told,
    TopicChanged,
    Unregister,
    Who,
    check_outgoing,
    fold,
)
from shared import Error as ErrorFrame
from shared.limits import DEFAULT_LIMITS, Limits

from .delivery import Delivery
from .errors import (
    ClientClosed,
    ClientError,
    ConnectionLost,
    FilesUnsupported,
    InvalidRequest,
    LoginRefused,
    NotConnected,
    RequestTimeout,
    ServerError,
    TransferError,
    UntrustedServer,
)
from .events import Closed, Connected, Disconnected, Event, LagMeasured, Reconnecting
from .filework import check_offer
from .options import ClientOptions, ConnectionState
from .outbox import OutboxEntry
from .pins import PinStoreError
from .progress import TransferInfo
from .resume import DM_KEY, ResumeState, room_key
from .savename import safe_name
from .session import Endpoint, Session
from .settings import downloads_dir
from .transfers import Transfer, Transfers
from .trust import ServerIdentity, TlsOptions

log = logging.getLogger(__name__)

# Login refusals worth retrying: the condition may clear by itself. `nick_taken` is here because after a
# network drop the server may still hold our previous connection (a ghost) until its ping timeout.
_RETRYABLE_LOGIN_CODES = frozenset(
    {
        ErrorCode.NICK_TAKEN,
        ErrorCode.SERVER_FULL,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.SERVER_SHUTDOWN,
        ErrorCode.RATE_LIMITED,
        ErrorCode.HELLO_TIMEOUT,
        ErrorCode.INTERNAL_ERROR,
    }
)
# Fatal session errors after which reconnecting would only repeat the failure.
_FINAL_SESSION_CODES = frozenset({ErrorCode.BAD_HELLO, ErrorCode.UNSUPPORTED_VERSION})


@dataclass(slots=True)
class _Waiter:
    """A request waiting for its answer: `match` returns True for the answer (an `Error` means refusal)."""

    match: Callable[[Message], bool]
    future: asyncio.Future[Message]


class ChatClient:
    """A chat connection that keeps itself alive: see the module docstring for what it does."""

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        *,
        rooms: Iterable[str] | None = None,
        options: ClientOptions | None = None,
        password: str | None = None,
        nick_password: str | None = None,
        tls: TlsOptions | None = None,
    ) -> None:
        """`password`: the server's password, if it has one; `nick_password`: the nick's, if registered.

        Both are kept in memory only, to log in again after a reconnect.
        """
        self.endpoint = Endpoint(host, port)
        #: TLS with the server's key checked (pinned on first use); None: plaintext.
        self.tls = tls
        #: The verified key of the current (or last) TLS session.
        self.identity: ServerIdentity | None = None
        #: Our nick as the server knows it (updated by the welcome and by nick changes).
        self.nick = nick
        self.options = options or ClientOptions()
        self._first_rooms = tuple(rooms) if rooms is not None else None
        self._password = password
        self._nick_password = nick_password
        # Passwords of requests waiting for their answer: a nick change (by folded nick) and a registration
        # (by ref). Once the server agrees, the password is the one to log in with after a reconnect.
        self._nick_passwords: dict[str, str | None] = {}
        self._registering: dict[int, str | None] = {}
        self._state = ConnectionState.IDLE
        self._session: Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._logged_in_once = False
        self._events: deque[Event] = deque()
        self._event_ready = asyncio.Event()
        self._dropped_events = 0
        self._closed_seen = False
        self._resume = ResumeState()
        # Requests.
        self._refs = itertools.count(1)
        self._waiters: list[_Waiter] = []
        self._delivery = Delivery(self.options.outbox_limit, lambda: next(self._refs), self._emit)
        # Liveness.
        self._ping_tokens = itertools.count(1)
        self._pings_sent: dict[int, float] = {}
        #: The round-trip time of the last ping, in seconds (None until measured).
        self.lag: float | None = None
        #: How many of the server's pings this client answered (a liveness statistic).
        self.pings_answered = 0
        self._first_login: asyncio.Future[None] | None = None
        # The limits of the last session, kept for checking messages typed while offline.
        self._last_limits = DEFAULT_LIMITS
        self._transfers = Transfers(
            emit=self._emit,  # type: ignore[arg-type]
            stored=self._on_file_stored,
            next_ref=lambda: next(self._refs),
            nick=lambda: self.nick,
            downloads=lambda: self.options.downloads_dir or downloads_dir(),
            max_uploads=self.options.max_uploads,
            progress_interval=self.options.progress_interval,
            join_wait=self.options.request_timeout,
        )

    # -- Properties --------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Connecting, connected, reconnecting or closed."""
        return self._state

    @property
    def connected(self) -> bool:
        """True while logged in."""
        return self._session is not None

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms this client is in (and rejoins after a reconnect)."""
        return self._resume.rooms

    @property
    def limits(self) -> Limits:
        """The server's limits (the protocol defaults before the first login)."""
        return self._session.limits if self._session is not None else self._last_limits

    @property
    def server_name(self) -> str | None:
        """The name the server gave in its welcome, once logged in."""
        return self._session.welcome.server if self._session is not None else None

    @property
    def outbox(self) -> tuple[OutboxEntry, ...]:
        """The messages still waiting for the server's acknowledgement, oldest first."""
        return tuple(self._delivery.outbox)

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

    # -- Events ------------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Yield every event until (and including) the final `Closed`."""
        while not self._closed_seen:
            for event in await self.next_events():
                yield event

    async def next_events(self, limit: int = 1000) -> list[Event]:
        """Wait for at least one event and return up to `limit` of those ready (empty once closed).

        Taking a batch lets a UI render a burst in one go instead of one refresh per message.
        """
        while not self._events:
            if self._closed_seen:
                return []
            self._event_ready.clear()
            await self._event_ready.wait()
        batch = [self._events.popleft() for _ in range(min(limit, len(self._events)))]
        if any(isinstance(event, Closed) for event in batch):
            self._closed_seen = True
        return batch

    def _emit(self, event: Event) -> None:
        if len(self._events) >= self.options.event_queue_limit:
            # Never stop reading the socket for a consumer that does not read its events: that would
            # stall pings and get us disconnected. Drop the oldest instead, and say so.
            self._events.popleft()
            self._dropped_events += 1
            if self._dropped_events == 1 or self._dropped_events % 1000 == 0:
                log.warning("events are not being read: %d dropped so far", self._dropped_events)
        self._events.append(event)
        self._event_ready.set()

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
                    if self._fail_first_login(refused) or refused.code not in _RETRYABLE_LOGIN_CODES:
                        final_error = refused
                        self._emit(
                            Disconnected(refused.message or refused.code, refused.code, will_retry=False)
                        )
                        return
                    reason = _refusal_reason(refused)
                    retry_after = (refused.retry_after_ms or 0) / 1000
                except (OSError, TimeoutError, ConnectionLost) as failure:
                    lost = failure if isinstance(failure, ConnectionLost) else _lost(failure)
                    if self._fail_first_login(lost):
                        final_error = lost
                        return
                    reason = lost.reason
                else:
                    attempt = 0
                    ended = await self._serve(session)
                    if self._stopping():
                        return
                    reason = str(ended)
                    if isinstance(ended, ServerError):
                        retry_after = (ended.retry_after_ms or 0) / 1000
                    will_retry = self.options.reconnect and not (
                        isinstance(ended, ServerError) and ended.code in _FINAL_SESSION_CODES
                    )
                    code = ended.code if isinstance(ended, ServerError | ConnectionLost) else None
                    self._emit(Disconnected(reason, code, will_retry=will_retry))
                    if not will_retry:
                        final_error = ended
                        return
                attempt += 1
                delay = max(self.options.backoff.delay(attempt - 1), retry_after)
                self._state = ConnectionState.RECONNECTING
                self._emit(Reconnecting(delay, attempt, reason))
                await asyncio.sleep(delay)
        except Exception as bug:  # a bug in this module: report it as the reason the client stopped
            log.exception("the chat client stopped on an unexpected error")
            final_error = bug
            self._fail_first_login(ConnectionLost(f"internal error: {bug!r}"))
        finally:
            self._state = ConnectionState.CLOSED
            self._delivery.close()
            self._transfers.close()
            self._fail_waiters(ClientClosed("the client is closed"))
            self._emit(Closed(final_error))

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
        return Hello(
            proto=PROTOCOL_NAME,
            version=PROTOCOL_VERSION,
            nick=self.nick,
            client=self.options.client_name,
            rooms=rooms,
            password=self._password,
            nick_password=self._nick_password,
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
        self._emit(Connected(session.welcome, resumed, session.identity))
        if self._first_login is not None and not self._first_login.done():
            self._first_login.set_result(None)
        every = min(self.options.ping_every, max(float(session.welcome.ping_interval), 1.0))
        pinger = asyncio.create_task(self._pinger(session, every), name="mpchat pinger")
        try:
            for request in self._resume.after_login(
                lambda: next(self._refs), resumed=resumed, dm_backfill=self.options.dm_backfill
            ):
                session.send(request)
            self._delivery.attach(session.send)
            self._transfers.attach(session)
            while True:
                for message in await session.receive(every + self.options.ping_grace):
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
            self._fail_waiters(ConnectionLost("the connection was lost before the answer came"))

    async def _pinger(self, session: Session, every: float) -> None:
        # The first ping goes out at once, so the lag is known right after login.
        while True:
            token = next(self._ping_tokens)
            self._pings_sent = {token: time.monotonic()}  # only the newest ping is timed
            try:
                session.send(Ping(token=token))
            except ConnectionLost:
                return  # the run task is about to notice the end of the session
            await asyncio.sleep(every)

    # -- Incoming messages -------------------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        self._answer_waiters(message)
        match message:
            case Ping(token=token):
                if self._session is not None:
                    self._session.send(Pong(token=token))
                    self.pings_answered += 1
            case Pong(token=token):
                sent = self._pings_sent.pop(token, None) if token is not None else None
                if sent is not None:
                    self.lag = time.monotonic() - sent
                    self._emit(LagMeasured(self.lag))
            case Ack():
                entry = self._delivery.on_ack(message)
                if entry is not None:
                    # Our own message's id: a later replay of the room must not deliver it back to us.
                    self._resume.note_own(
                        room_key(entry.room) if entry.room is not None else DM_KEY, message.id
                    )
            case ErrorFrame():
                if message.ref is not None:
                    self._registering.pop(message.ref, None)
                if not (self._delivery.on_error(message) or self._transfers.route(message)):
                    self._emit(message)
            case FileProgress() | FileDone() | FileData():
                if not self._transfers.route(message):
                    log.debug("dropped a %s for no transfer of ours", message.TYPE)
            case FileOffered():
                self._transfers.learn(message)
                if self._resume.note(_offer_key(message), message.id):
                    self._emit(message)
            case Said():
                if self._resume.note(room_key(message.room), message.id):
                    self._emit(message)
            case Told():
                if self._resume.note(DM_KEY, message.id):
                    self._emit(message)
            case Moderated():
                # Stored like a message: counted for resume, delivered once. An invitation to a room we
                # are not in is not part of that room's stream.
                if message.action == "invite" or self._resume.note(room_key(message.room), message.id):
                    self._emit(message)
            case History():
                for item in message.messages:
                    if isinstance(item, FileOffered):
                        self._transfers.learn(item)
                self._emit(self._resume.filter_history(message, self._is_pending_echo))
            case Joined(room=room, nick=nick):
                if self._is_mine(nick):
                    self._resume.joined(room)
                    self._transfers.joined(room)
                self._emit(message)
            case RoomState(room=room, key=key) if key is not None:
                self._resume.remember_key(room, key)  # we are its operator: rejoin with it if need be
                self._emit(message)
            case Left(room=room, nick=nick):
                if self._is_mine(nick):
                    self._resume.forget(room)
                    self._transfers.left(room)
                self._emit(message)
            case NickChanged(old=old, new=new):
                if fold(old) == fold(self.nick):
                    self.nick = new
                    if fold(new) != fold(old):
                        self._nick_password = self._nick_passwords.pop(fold(new), None)
                self._emit(message)
            case Registration(registered=registered, ref=ref):
                password = self._registering.pop(ref, None) if ref is not None else None
                self._nick_password = password if registered else None
                self._emit(message)
            case _:
                self._emit(message)

    def _is_pending_echo(self, item: Said | Told) -> bool:
        """True if a replayed message is our own, still unacknowledged, first attempt.

        Its ack (marked duplicate) follows the resend, so the message is reported once, through the outbox.
        """
        if fold(item.nick) != fold(self.nick):
            return False
        for entry in self._delivery.outbox:
            same_target = (
                entry.room is not None and isinstance(item, Said) and fold(entry.room) == fold(item.room)
            ) or (entry.peer is not None and isinstance(item, Told) and fold(entry.peer) == fold(item.to))
            if same_target and entry.text == item.text and entry.action == item.action:
                return True
        return False

    def _on_file_stored(self, offer: FileOffered) -> None:
        """Our upload was stored: report it like a received offer, and never deliver its replay."""
        self._resume.note_own(_offer_key(offer), offer.id)
        self._emit(offer)

    async def wait_delivered(self, timeout: float) -> bool:
        """Wait until every queued message is acknowledged or refused; False if `timeout` passed first."""
        return await self._delivery.wait_delivered(timeout)

    # -- Requests ----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing or self._state is ConnectionState.CLOSED:
            raise ClientClosed("the client is closed")

    def _check(self, message: Message) -> None:
        try:
            check_outgoing(message, self.limits)
        except LocalProtocolError as error:
            raise InvalidRequest(error.code, error.message) from None

    async def _request(
        self, message: Message, match: Callable[[Message], bool], wait: bool
    ) -> Message | None:
        """Send `message`; if `wait`, return the answer `match` picks, or raise `ServerError`."""
        self._check_open()
        session = self._session
        if session is None:
            raise NotConnected("not connected to the server")
        ref = getattr(message, "ref", None)
        waiter: _Waiter | None = None
        if wait:

            def answers(reply: Message) -> bool:
                return (isinstance(reply, ErrorFrame) and reply.ref == ref and ref is not None) or match(
                    reply
                )

            waiter = _Waiter(answers, asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
        try:
            session.send(message)
            if waiter is None:
                return None
            try:
                async with asyncio.timeout(self.options.request_timeout):
                    reply = await waiter.future
            except TimeoutError:
                raise RequestTimeout(
                    f"no answer to {message.TYPE} in {self.options.request_timeout:g} s"
                ) from None
        finally:
            if waiter is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        if isinstance(reply, ErrorFrame):
            raise ServerError(reply)
        return reply

    def _answer_waiters(self, message: Message) -> None:
        for waiter in list(self._waiters):
            if not waiter.future.done() and waiter.match(message):
                waiter.future.set_result(message)
                self._waiters.remove(waiter)

    def _fail_waiters(self, error: Exception) -> None:
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        self._waiters.clear()

    def _is_mine(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)

    async def join(self, room: str, *, key: str | None = None, wait: bool = True) -> RoomState | None:
        """Join `room` (created if new) and, if `wait`, return its state (topic and members).

        `key`: the room's key, if an operator set one. While disconnected the room is only remembered, and
        joined at the next login (without a key: give it again then).
        """
        self._check_open()
        ref = next(self._refs)
        request = Join(room=room, key=key, ref=ref)
        self._check(request)
        self._resume.remember_key(room, key)
        if self._session is None:
            self._resume.joined(room)
            return None
        self._resume.expect_join_reply(room, ref)
        reply = await self._request(request, _answer(RoomState, ref, room), wait)
        return reply if isinstance(reply, RoomState) else None

    async def leave(self, room: str, reason: str | None = None, *, wait: bool = True) -> None:
        """Leave `room` (and stop rejoining it)."""
        self._check_open()
        request = Leave(room=room, reason=reason, ref=next(self._refs))
        self._check(request)
        if self._session is None:
            self._resume.forget(room)
            return
        key = fold(room)
        await self._request(
            request, lambda m: isinstance(m, Left) and self._is_mine(m.nick) and fold(m.room) == key, wait
        )

    async def say(self, room: str, text: str, *, action: bool = False, wait: bool = False) -> OutboxEntry:
        """Send `text` to `room` through the outbox, and return its entry.

        The message is delivered once even across reconnects. With `wait`, return only once the server
        stored it (the entry is then `ACKNOWLEDGED`), or raise `ServerError` if it refused it.
        """
        self._check(Say(room=room, text=text, action=action, client_msg_id="x"))
        self._check_open()
        return await self._delivery.submit(self._delivery.add(text=text, action=action, room=room), wait=wait)

    async def tell(self, nick: str, text: str, *, action: bool = False, wait: bool = False) -> OutboxEntry:
        """Send a direct message to `nick` through the outbox (see `say`)."""
        self._check(Tell(to=nick, text=text, action=action, client_msg_id="x"))
        self._check_open()
        return await self._delivery.submit(self._delivery.add(text=text, action=action, peer=nick), wait=wait)

    async def change_nick(self, nick: str, *, password: str | None = None, wait: bool = True) -> None:
        """Change our nick (kept for later reconnects); `password` if the new nick is registered.

        A refusal (`nick_taken`, `nick_registered` for a missing or wrong password) raises `ServerError`.
        """
        request = ChangeNick(nick=nick, password=password, ref=next(self._refs))
        self._check(request)
        self._nick_passwords[fold(nick)] = password
        await self._request(request, lambda m: isinstance(m, NickChanged) and fold(m.new) == fold(nick), wait)

    async def register(
        self, password: str, *, old_password: str | None = None, wait: bool = True
    ) -> Registration | None:
        """Register our nick with `password` (or change it: `old_password` is then the current one).

        From then on this client logs in again with that password after a reconnect. A refusal (e.g.
        `nick_registered` for a wrong old password) raises `ServerError`.
        """
        ref = next(self._refs)
        request = Register(password=password, old_password=old_password, ref=ref)
        self._check(request)
        self._registering[ref] = password
        reply = await self._request(request, _answer(Registration, ref, None), wait)
        return reply if isinstance(reply, Registration) else None

    async def unregister(self, password: str, *, wait: bool = True) -> Registration | None:
        """Drop the registration of our nick (`password` is its current password)."""
        ref = next(self._refs)
        request = Unregister(password=password, ref=ref)
        self._check(request)
        self._registering[ref] = None
        reply = await self._request(request, _answer(Registration, ref, None), wait)
        return reply if isinstance(reply, Registration) else None

    async def set_topic(self, room: str, topic: str, *, wait: bool = True) -> None:
        """Set `room`'s topic ("" clears it)."""
        request = SetTopic(room=room, topic=topic, ref=next(self._refs))
        self._check(request)
        key = fold(room)
        await self._request(request, lambda m: isinstance(m, TopicChanged) and fold(m.room) == key, wait)

    async def set_away(self, message: str | None, *, wait: bool = True) -> None:
        """Mark us away with `message`, or back with None."""
        request = SetAway(message=message or None, ref=next(self._refs))
        self._check(request)
        await self._request(request, lambda m: isinstance(m, AwayChanged) and self._is_mine(m.nick), wait)

    async def who(self, room: str, *, wait: bool = True) -> RoomState | None:
        """Ask for `room`'s topic and members."""
        ref = next(self._refs)
        reply = await self._request(Who(room=room, ref=ref), _answer(RoomState, ref, room), wait)
        return reply if isinstance(reply, RoomState) else None

    async def list_rooms(self, *, wait: bool = True) -> RoomList | None:
        """Ask for the list of rooms."""
        ref = next(self._refs)
        reply = await self._request(ListRooms(ref=ref), _answer(RoomList, ref, None), wait)
        return reply if isinstance(reply, RoomList) else None

    async def moderate(self, request: ModerationRequest, *, wait: bool = True) -> Message | None:
        """Send a moderation request (`Kick`, `Ban`, `Unban`, `ListBans`, `Mute`, `Unmute`, `Op`, `Deop`,
        `SetMode`, `Invite`; its `ref` is set here) and, if `wait`, return the answer: the `Ack` of the stored
        action, the `BanList` for `ListBans`, the `RoomState` for `SetMode`. A refusal (e.g. `not_operator`)
        raises `ServerError`.
        """
        ref = next(self._refs)
        request = replace(request, ref=ref)
        self._check(request)
        if isinstance(request, ListBans):
            answer = _answer(BanList, ref, request.room)
        elif isinstance(request, SetMode):
            answer = _answer(RoomState, ref, request.room)
        else:
            answer = _answer(Ack, ref, None)
        return await self._request(request, answer, wait)

    async def fetch_history(
        self,
        room: str | None = None,
        *,
        peer: str | None = None,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
        wait: bool = True,
    ) -> History | None:
        """Fetch stored messages of `room`, or the direct messages (with `peer`, or all when room is None)."""
        ref = next(self._refs)
        request = FetchHistory(
            room=room, direct=room is None, peer=peer, before=before, after=after, limit=limit, ref=ref
        )
        self._check(request)
        reply = await self._request(request, _answer(History, ref, room), wait)
        return reply if isinstance(reply, History) else None

    # -- Files -------------------------------------------------------------------------------------------

    @property
    def transfers(self) -> tuple[TransferInfo, ...]:
        """Every file transfer of this run (running and ended), oldest first."""
        return self._transfers.infos()

    @property
    def file_policy(self) -> FilePolicy | None:
        """What the server takes (chunk size, window, largest file); None offline or if it takes no files."""
        return self._session.welcome.files if self._session is not None else None

    @property
    def files_supported(self) -> bool | None:
        """Whether the server takes files (None while no session has said)."""
        if self._session is None:
            return None
        return self._session.welcome.files is not None

    def file_offer(self, offer_id: int) -> FileOffered | None:
        """The file offer with this message id, if the client has seen it (live, in history, or ours)."""
        return self._transfers.offer(offer_id)

    def transfer(self, number: int) -> Transfer | None:
        """The transfer with this number (as shown in `TransferInfo.number`)."""
        return self._transfers.get(number)

    async def send_file(
        self, path: str | Path, *, room: str | None = None, to: str | None = None
    ) -> Transfer:
        """Offer the file at `path` to `room` or to nick `to`, and upload it in the background.

        Returns at once with the `Transfer` (its `wait()` returns when the offer is stored); progress comes
        as `TransferUpdate` events. While offline, the upload waits for the connection. Raises
        `TransferError` (``unreadable``) if `path` is not a readable file, `FilesUnsupported` if the server
        takes no files, `InvalidRequest` for a bad room or nick.
        """
        self._check_open()
        if (room is None) == (to is None):
            raise ClientError("send_file needs exactly one of room and to")
        source = Path(path).expanduser()
        try:
            status = await asyncio.to_thread(source.stat)
        except OSError as error:
            raise TransferError("unreadable", f"{source}: {error.strerror}") from None
        if not source.is_file():
            raise TransferError("unreadable", f"{source} is not a file")
        name = safe_name(source.name, "file")
        check_offer(name, status.st_size, room=room, to=to, limits=self.limits)
        if self.files_supported is False:
            raise FilesUnsupported("this server takes no files")
        return self._transfers.start_upload(source, status.st_size, name, room=room, to=to)

    def get_file(self, offer_id: int, folder: str | Path | None = None) -> Transfer:
        """Download the file offered as message `offer_id` into `folder` (default: the downloads folder).

        Returns at once with the `Transfer`; its `wait()` returns the final `TransferInfo` (whose `path` is
        the saved file) once the SHA-256 matched, or raises `ChecksumMismatch` (nothing is kept) or another
        `TransferError`. Raises `UnknownFile` for an offer the client has not seen.
        """
        self._check_open()
        if self.files_supported is False:
            raise FilesUnsupported("this server takes no files")
        return self._transfers.start_download(offer_id, Path(folder).expanduser() if folder else None)

    async def wait_transfers(self, idle_timeout: float) -> bool:
        """Wait until every transfer has ended; False if none made progress for `idle_timeout` seconds."""
        return await self._transfers.wait_all(idle_timeout)

    def cancel_transfer(self, number: int) -> bool:
        """Cancel a transfer (an upload's partial copy on the server and a download's partial file go too).

        False if there is no running transfer with this number.
        """
        return self._transfers.cancel(number)


def _offer_key(offer: FileOffered) -> str:
    """The resume key of a file offer: its room's, or the direct messages'."""
    return room_key(offer.room) if offer.room is not None else DM_KEY


def _answer(kind: type[Message], ref: int, room: str | None) -> Callable[[Message], bool]:
    """Match the answer of type `kind` to request `ref` (or, from a server that omits refs, for `room`)."""
    key = fold(room) if room is not None else None

    def match(reply: Message) -> bool:
        if not isinstance(reply, kind):
            return False
        reply_ref = getattr(reply, "ref", None)
        if reply_ref is not None:
            return bool(reply_ref == ref)
        reply_room = getattr(reply, "room", None)
        return key is None or (reply_room is not None and fold(reply_room) == key)

    return match


def _lost(error: OSError | TimeoutError) -> ConnectionLost:
    if isinstance(error, TimeoutError):
        return ConnectionLost("the server did not answer in time")
    return ConnectionLost(f"cannot connect: {error.strerror or error}")


def _refusal_reason(refused: LoginRefused) -> str:
    if refused.code == ErrorCode.NICK_TAKEN:
        return "the nick is still held, probably by our previous connection; retrying"
    return refused.message or refused.code
