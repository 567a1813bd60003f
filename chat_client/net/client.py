"""`ChatClient`: an asyncio chat client that logs in, reconnects, resumes and delivers, for UIs and bots.

    async with ChatClient("127.0.0.1", 7878, "echo") as client:
        await client.join("lobby")
        await client.say("lobby", "hello")
        async for event in client.events():
            ...

This module is what a caller can ask, and where what the server says goes: the properties, the events, the
requests (join, say, moderate...) and the file transfers; and the `Router`, the one table that says which
part of the client each message from the server goes to. What the client does on its own is done by the
parts it owns, each built here and given the others it needs: the `ClientRunner` (chat_client.net.connection:
the session and the run task that keeps one open, the resume and the stop order), the `FileTransfers`
(chat_client.net.transfers), and `Delivery` (the outbox's trip to the server), `ResumeState` (what survives a
reconnect), `Waiters` (the requests awaiting answers), `Liveness` (the pings), `Credentials` (who we log in
as), `EventQueue` (the events for the caller).

The run task hands the `Router` every incoming message, one at a time. The waiting requests see each message
first (`Waiters`); then one `match` on the message's type sends it to the part it concerns, and (unless it is
a duplicate, or consumed, like `Ack`, `Ping` and file chunks) to the caller as an event (`ChatClient._emit`,
into the bounded `EventQueue`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Self

from chat_client.net.connection import ClientRunner, Endpoint, Session
from chat_client.net.delivery import Delivery
from chat_client.net.errors import (
    ClientClosed,
    ClientError,
    ConnectionLost,
    FilesUnsupported,
    InvalidRequest,
    NotConnected,
)
from chat_client.net.eventlog import log_event
from chat_client.net.eventqueue import EventQueue
from chat_client.net.events import Event
from chat_client.net.filework import check_offer, upload_size
from chat_client.net.liveness import Liveness
from chat_client.net.login import Credentials
from chat_client.net.options import ClientOptions, ConnectionState
from chat_client.net.outbox import OutboxEntry
from chat_client.net.pacing import Pacer
from chat_client.net.progress import TransferInfo
from chat_client.net.resume import DM_KEY, Crowd, ResumeState, room_key
from chat_client.net.savename import safe_name
from chat_client.net.transfers import FileTransfers, Transfer
from chat_client.net.trust import ServerIdentity, TlsOptions
from chat_client.net.waiters import Waiters, answer_to
from chat_client.net.wirelog import WireLog
from chat_client.settings import downloads_dir
from shared import (
    Ack,
    AwayChanged,
    BanList,
    ChangeNick,
    Delete,
    Deleted,
    Edit,
    Edited,
    FetchHistory,
    FileData,
    FileDone,
    FileOffered,
    FilePolicy,
    FileProgress,
    GetStats,
    History,
    Join,
    Joined,
    Leave,
    Left,
    ListBans,
    ListRooms,
    LocalProtocolError,
    MarkRead,
    Message,
    Moderated,
    ModerationRequest,
    NickChanged,
    NotifySettings,
    Ok,
    Ping,
    Pong,
    React,
    Reacted,
    ReadMarker,
    Register,
    Registration,
    RoomList,
    RoomState,
    Said,
    Say,
    Search,
    SearchResults,
    SetAway,
    SetKeywords,
    SetMode,
    SetNotify,
    SetTopic,
    StatsReport,
    Tell,
    Told,
    TopicChanged,
    Typing,
    Unreact,
    Unreacted,
    Unregister,
    Who,
    check_outgoing,
    fold,
)
from shared import Error as ErrorFrame
from shared.addresses import parse_servers
from shared.limits import Limits
from shared.messages import SessionInfo, Sessions

log = logging.getLogger("chat_client.connection")


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
        wire_log: WireLog | None = None,
    ) -> None:
        """`rooms`: the rooms to join at the first login; `password`: the server's password, if it has one;
        `nick_password`: the nick's, if registered (both kept in memory only, to log in again after a
        reconnect); `tls`: TLS with the server's key checked (pinned on first use), None for plaintext;
        `wire_log`: where to record every frame sent and received (`chat_client.net.wirelog`), or None.

        `host` may also name several servers of one chat (a cluster: docs/cluster.md), ``HOST[:PORT]``
        entries separated by commas, each without a port on `port`: they are tried in turn, and when the
        server in use goes away the client fails over to the next one (`ClientRunner`). Raises `ValueError`
        if `host` cannot be read that way."""
        self.servers = [Endpoint(name, number) for name, number in parse_servers(host, port)]
        self.tls = tls
        #: Where every frame is recorded (`chat_client.net.wirelog`), or None.
        self.wire_log = wire_log
        self.options = options = options or ClientOptions()
        refs = itertools.count(1)
        self._next_ref: Callable[[], int] = lambda: next(refs)
        #: Per room (folded): when our last `typing` start was sent, and the rooms where no stop or message
        #: has followed it yet (`typing`).
        self._typing_started: dict[str, float] = {}
        self._typing_open: set[str] = set()
        self._credentials = Credentials(nick, password, nick_password)
        self._events = EventQueue(options.event_queue_limit)
        self._resume = ResumeState()
        self._waiters = Waiters()
        self._crowd = Crowd()
        self._delivery = Delivery(
            options.outbox_limit,
            self._next_ref,
            self._emit,
            pacer=Pacer(options.pacing_slack, enabled=options.pacing),
        )
        self._liveness = Liveness(self._emit, multiple=options.ping_rtt_multiple, floor=options.ping_grace)
        self._transfers = FileTransfers(
            emit=self._emit,
            stored=lambda offer: self._router.file_stored(offer),
            next_ref=self._next_ref,
            nick=lambda: self._credentials.nick,
            downloads=lambda: options.downloads_dir or downloads_dir(),
            max_uploads=options.max_uploads,
            progress_interval=options.progress_interval,
            join_wait=options.request_timeout,
        )
        self._router = Router(
            credentials=self._credentials,
            waiters=self._waiters,
            crowd=self._crowd,
            liveness=self._liveness,
            delivery=self._delivery,
            resume=self._resume,
            transfers=self._transfers,
            emit=self._emit,
        )
        self._runner = ClientRunner(
            self.servers,
            tls,
            options,
            first_rooms=rooms,
            credentials=self._credentials,
            delivery=self._delivery,
            transfers=self._transfers,
            waiters=self._waiters,
            liveness=self._liveness,
            resume=self._resume,
            crowd=self._crowd,
            next_ref=self._next_ref,
            route=self._router.route,
            emit=self._emit,
            tap=wire_log.record if wire_log is not None else None,
        )

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
        log.info("connecting to %s as %s", ", ".join(map(str, self.servers)), self.nick)
        self._check(self._runner.hello())  # a bad nick or room name is the caller's mistake: say so now
        try:
            await self._runner.start()
        except Exception as error:
            log.info("cannot log in to %s as %s: %s", self.endpoint, self.nick, error)
            raise

    async def close(self, reason: str | None = None) -> None:
        """Log out (sending `quit` with `reason`) and stop reconnecting. Safe to call twice."""
        await self._runner.stop(reason)

    def reconnect_now(self) -> None:
        """Reconnect at once (`/reconnect`): end the wait before the next attempt, or drop the connection.

        While connected, the current connection is dropped and a new one made at once (resuming the session
        with its token). While waiting to reconnect, the wait ends now. Does nothing once closed.
        """
        self._runner.reconnect_now()

    def _emit(self, event: Event) -> None:
        log_event(event, rooms=len(self._resume.rooms), outbox=len(self._delivery.outbox))
        self._events.emit(event)

    def _is_mine(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)

    def _check(self, message: Message) -> None:
        """Raise `InvalidRequest` if `message` breaks a rule of the protocol or of the server's limits."""
        try:
            check_outgoing(message, self.limits)
        except LocalProtocolError as error:
            raise InvalidRequest(error.code, error.message) from None

    # -- Properties --------------------------------------------------------------------------------------

    @property
    def nick(self) -> str:
        """Our nick as the server knows it (updated by the welcome and by nick changes)."""
        return self._credentials.nick

    @property
    def endpoint(self) -> Endpoint:
        """The server in use, or between sessions the one tried next (one of `servers`)."""
        return self._runner.endpoint

    @property
    def session_id(self) -> int | None:
        """This connection's session id (`welcome.session`); None before the login or from an older server."""
        return self._credentials.session_id

    @property
    def sessions(self) -> tuple[SessionInfo, ...]:
        """Every session of our nick, this one included (a registered nick may be logged in from several
        connections: docs/protocol.md, `sessions`); empty before the login."""
        return self._credentials.sessions

    @property
    def state(self) -> ConnectionState:
        """Connecting, connected, reconnecting or closed."""
        return self._runner.state

    @property
    def limits(self) -> Limits:
        """The server's limits (the protocol defaults before the first login)."""
        return self._runner.limits

    @property
    def identity(self) -> ServerIdentity | None:
        """The verified key of the current (or last) TLS session."""
        return self._runner.identity

    @property
    def resume_token(self) -> str | None:
        """The current session's resume token (a secret: never log or show it); None before the login."""
        return self._runner.resume_token

    @property
    def peers(self) -> int:
        """How many other people share a room with us (the crowd that reconnects with us)."""
        return self._crowd.peers(self.nick)

    @property
    def answer_deadline(self) -> float:
        """Seconds the server has to answer a ping before it is declared dead (chat_client.net.liveness)."""
        return self._liveness.answer_deadline()

    @property
    def connected(self) -> bool:
        """True while logged in."""
        return self._runner.session is not None

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms this client is in (and rejoins after a reconnect)."""
        return self._resume.rooms

    @property
    def server_name(self) -> str | None:
        """The name the server gave in its welcome, once logged in."""
        return self._runner.session.welcome.server if self._runner.session is not None else None

    @property
    def outbox(self) -> tuple[OutboxEntry, ...]:
        """The messages still waiting for the server's acknowledgement, oldest first."""
        return tuple(self._delivery.outbox)

    @property
    def lag(self) -> float | None:
        """The round-trip time of the last ping, in seconds (None until measured)."""
        return self._liveness.lag

    @property
    def pings_answered(self) -> int:
        """How many of the server's pings this client answered (a liveness statistic)."""
        return self._liveness.pings_answered

    # -- Events ------------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Yield every event until (and including) the final `Closed`."""
        while not self._events.closed_seen:
            for event in await self.next_events():
                yield event

    async def next_events(self, limit: int = 1000) -> list[Event]:
        """Wait for at least one event and return up to `limit` of those ready (empty once closed).

        Taking a batch lets a UI render a burst in one go instead of one refresh per message.
        """
        return await self._events.next_batch(limit)

    async def wait_delivered(self, timeout: float) -> bool:
        """Wait until every queued message is acknowledged or refused; False if `timeout` passed first."""
        return await self._delivery.wait_delivered(timeout)

    async def drain(self, idle_timeout: float) -> bool:
        """Wait until every queued message is acknowledged or refused, for as long as the server keeps
        acknowledging them (paced, a long outbox takes a while): False once none was settled for
        `idle_timeout` seconds (the server is gone, or stopped answering)."""
        return await self._delivery.drain(idle_timeout)

    async def wait_outbox_room(self, idle_timeout: float | None = None) -> bool:
        """Wait until the outbox has room for another message; False if none was settled for
        `idle_timeout` seconds (None: wait as long as it takes)."""
        return await self._delivery.wait_room(idle_timeout)

    @property
    def delivery_counts(self) -> tuple[int, int, int]:
        """Messages sent through the outbox in this client's life: (queued, acknowledged, refused)."""
        delivery = self._delivery
        return delivery.added, delivery.acknowledged, delivery.failed

    # -- Requests ----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._runner.closing or self._runner.state is ConnectionState.CLOSED:
            raise ClientClosed("the client is closed")

    async def _request(
        self, message: Message, match: Callable[[Message], bool], wait: bool
    ) -> Message | None:
        """Send `message`; if `wait`, return the answer `match` picks, or raise `ServerError`."""
        self._check_open()
        session = self._runner.session
        if session is None:
            raise NotConnected("not connected to the server")
        return await self._waiters.request(
            session, message, match, wait=wait, timeout=self.options.request_timeout
        )

    async def join(self, room: str, *, key: str | None = None, wait: bool = True) -> RoomState | None:
        """Join `room` (created if new) and, if `wait`, return its state (topic and members).

        `key`: the room's key, if an operator set one. While disconnected the room is only remembered, and
        joined at the next login (without a key: give it again then).
        """
        self._check_open()
        ref = self._next_ref()
        request = Join(room=room, key=key, ref=ref)
        self._check(request)
        self._resume.remember_key(room, key)
        if self._runner.session is None:
            self._resume.joined(room)
            return None
        self._resume.expect_join_reply(room, ref)
        reply = await self._request(request, answer_to(RoomState, ref, room), wait)
        return reply if isinstance(reply, RoomState) else None

    async def leave(self, room: str, reason: str | None = None, *, wait: bool = True) -> None:
        """Leave `room` (and stop rejoining it)."""
        self._check_open()
        request = Leave(room=room, reason=reason, ref=self._next_ref())
        self._check(request)
        if self._runner.session is None:
            self._resume.forget(room)
            return
        key = fold(room)
        await self._request(
            request, lambda m: isinstance(m, Left) and self._is_mine(m.nick) and fold(m.room) == key, wait
        )

    async def say(
        self,
        room: str,
        text: str,
        *,
        action: bool = False,
        wait: bool = False,
        reply_to: int | None = None,
    ) -> OutboxEntry:
        """Send `text` to `room` through the outbox, and return its entry; `reply_to` makes it a reply to
        that message of the room (an unknown id: the entry fails with `no_such_message`).

        The message is delivered once even across reconnects, in order, paced to the rate limits the server
        announced (so a loop of `say` calls is never refused for its rate). With `wait`, return only once
        the server stored it (the entry is then `ACKNOWLEDGED`), or raise `ServerError` if it refused it.
        When `outbox_limit` messages are already waiting: while connected, wait for room; offline, raise
        `OutboxFull`.
        """
        self._check(Say(room=room, text=text, action=action, client_msg_id="x", reply_to=reply_to))
        self._typing_open.discard(fold(room))  # the message ends our typing there: no stop is needed
        await self._outbox_room()
        entry = self._delivery.add(text=text, action=action, room=room, reply_to=reply_to)
        return await self._delivery.submit(entry, wait=wait)

    async def tell(
        self,
        nick: str,
        text: str,
        *,
        action: bool = False,
        wait: bool = False,
        reply_to: int | None = None,
    ) -> OutboxEntry:
        """Send a direct message to `nick` through the outbox (see `say`; `reply_to`: a message of our
        conversation with `nick`)."""
        self._check(Tell(to=nick, text=text, action=action, client_msg_id="x", reply_to=reply_to))
        await self._outbox_room()
        entry = self._delivery.add(text=text, action=action, peer=nick, reply_to=reply_to)
        return await self._delivery.submit(entry, wait=wait)

    # -- Conversations: edits, deletions, reactions (docs/protocol.md, section 6.3) -----------------------

    async def edit(self, message_id: int, text: str, *, wait: bool = True) -> Ack | None:
        """Replace the text of our message `message_id`. Everyone in its conversation, we included, gets
        the `Edited` event; with `wait`, return the `Ack` (its `id` is the event's). A refusal
        (`forbidden`, `no_such_message`, `edit_window_closed`, `muted`, `rate_limited`) raises `ServerError`.
        """
        return await self._conversation(Edit(id=message_id, text=text, ref=self._next_ref()), wait)

    async def delete(self, message_id: int, *, reason: str | None = None, wait: bool = True) -> Ack | None:
        """Delete message `message_id` (ours, or as an operator of its room anyone's there; `reason` goes
        into the operator's `moderated` entry). Everyone in its conversation gets `Deleted`."""
        return await self._conversation(Delete(id=message_id, reason=reason, ref=self._next_ref()), wait)

    async def react(self, message_id: int, reaction: str, *, wait: bool = True) -> Ack | None:
        """Add `reaction` (one emoji or a ``:name:``) to message `message_id`; everyone gets `Reacted`.
        Reacting twice with the same reaction is answered with a `duplicate` ack and changes nothing."""
        return await self._conversation(React(id=message_id, reaction=reaction, ref=self._next_ref()), wait)

    async def unreact(self, message_id: int, reaction: str, *, wait: bool = True) -> Ack | None:
        """Take our `reaction` off message `message_id`; everyone gets `Unreacted`."""
        return await self._conversation(Unreact(id=message_id, reaction=reaction, ref=self._next_ref()), wait)

    async def _conversation(self, request: Edit | Delete | React | Unreact, wait: bool) -> Ack | None:
        self._check(request)
        answer = await self._request(request, answer_to(Ack, request.ref or 0, None), wait)
        return answer if isinstance(answer, Ack) else None

    async def _outbox_room(self) -> None:
        """While connected, wait for room in a full outbox (the pacing empties it at the server's rate);
        offline, a full outbox raises `OutboxFull` at once (nothing will empty it before the reconnect)."""
        self._check_open()
        if self._delivery.full and self._runner.session is not None:
            await self._delivery.wait_room()
            self._check_open()

    async def change_nick(self, nick: str, *, password: str | None = None, wait: bool = True) -> None:
        """Change our nick (kept for later reconnects); `password` if the new nick is registered.

        A refusal (`nick_taken`, `nick_registered` for a missing or wrong password) raises `ServerError`.
        """
        request = ChangeNick(nick=nick, password=password, ref=self._next_ref())
        self._check(request)
        self._credentials.changing_nick(nick, password)
        await self._request(request, lambda m: isinstance(m, NickChanged) and fold(m.new) == fold(nick), wait)

    async def register(
        self, password: str, *, old_password: str | None = None, wait: bool = True
    ) -> Registration | None:
        """Register our nick with `password` (or change it: `old_password` is then the current one).

        From then on this client logs in again with that password after a reconnect. A refusal (e.g.
        `nick_registered` for a wrong old password) raises `ServerError`.
        """
        ref = self._next_ref()
        request = Register(password=password, old_password=old_password, ref=ref)
        self._check(request)
        self._credentials.registering(ref, password)
        reply = await self._request(request, answer_to(Registration, ref, None), wait)
        return reply if isinstance(reply, Registration) else None

    async def unregister(self, password: str, *, wait: bool = True) -> Registration | None:
        """Drop the registration of our nick (`password` is its current password)."""
        ref = self._next_ref()
        request = Unregister(password=password, ref=ref)
        self._check(request)
        self._credentials.registering(ref, None)
        reply = await self._request(request, answer_to(Registration, ref, None), wait)
        return reply if isinstance(reply, Registration) else None

    async def set_topic(self, room: str, topic: str, *, wait: bool = True) -> None:
        """Set `room`'s topic ("" clears it)."""
        request = SetTopic(room=room, topic=topic, ref=self._next_ref())
        self._check(request)
        key = fold(room)
        await self._request(request, lambda m: isinstance(m, TopicChanged) and fold(m.room) == key, wait)

    async def set_away(self, message: str | None, *, wait: bool = True) -> None:
        """Mark us away with `message`, or back with None."""
        request = SetAway(message=message or None, ref=self._next_ref())
        self._check(request)
        await self._request(request, lambda m: isinstance(m, AwayChanged) and self._is_mine(m.nick), wait)

    async def mark_read(
        self, up_to: int, *, room: str | None = None, peer: str | None = None, wait: bool = True
    ) -> ReadMarker | None:
        """Mark `room`, or the direct conversation with `peer`, read up to message id `up_to`.

        The server keeps the marker for the nick (for a registered nick across logins and restarts) and
        answers where it stands (it never moves back); if `wait`, that `ReadMarker` is returned.
        """
        if (room is None) == (peer is None):
            raise InvalidRequest("invalid_field", "give exactly one of room and peer")
        ref = self._next_ref()
        request = MarkRead(room=room, peer=peer, id=up_to, ref=ref)
        self._check(request)
        answer = await self._request(request, lambda m: isinstance(m, ReadMarker) and m.ref == ref, wait)
        return answer if isinstance(answer, ReadMarker) else None

    async def set_notify(
        self, level: str | None, *, room: str | None = None, peer: str | None = None, wait: bool = True
    ) -> NotifySettings | None:
        """Set the notification level (`all`, `mentions`, `none`; None: the default) of `room`, or of the
        direct conversation with `peer`; the server keeps it for the nick. If `wait`, returns the settings."""
        if (room is None) == (peer is None):
            raise InvalidRequest("invalid_field", "give exactly one of room and peer")
        ref = self._next_ref()
        request = SetNotify(room=room, peer=peer, level=level, ref=ref)
        self._check(request)
        answer = await self._request(request, lambda m: isinstance(m, NotifySettings) and m.ref == ref, wait)
        return answer if isinstance(answer, NotifySettings) else None

    async def set_keywords(self, keywords: Iterable[str], *, wait: bool = True) -> NotifySettings | None:
        """Replace the nick's keywords (words that make a message a mention); if `wait`, return the settings
        (`NotifySettings`)."""
        ref = self._next_ref()
        request = SetKeywords(keywords=tuple(keywords), ref=ref)
        self._check(request)
        answer = await self._request(request, lambda m: isinstance(m, NotifySettings) and m.ref == ref, wait)
        return answer if isinstance(answer, NotifySettings) else None

    async def who(self, room: str, *, wait: bool = True) -> RoomState | None:
        """Ask for `room`'s topic and members."""
        ref = self._next_ref()
        reply = await self._request(Who(room=room, ref=ref), answer_to(RoomState, ref, room), wait)
        return reply if isinstance(reply, RoomState) else None

    async def list_rooms(self, *, wait: bool = True) -> RoomList | None:
        """Ask for the list of rooms."""
        ref = self._next_ref()
        reply = await self._request(ListRooms(ref=ref), answer_to(RoomList, ref, None), wait)
        return reply if isinstance(reply, RoomList) else None

    async def stats(self, nick: str | None = None, *, wait: bool = True) -> StatsReport | None:
        """Ask for the server's figures, or for those of `nick`'s connection (server admins only)."""
        ref = self._next_ref()
        reply = await self._request(GetStats(nick=nick, ref=ref), answer_to(StatsReport, ref, None), wait)
        return reply if isinstance(reply, StatsReport) else None

    async def moderate(self, request: ModerationRequest, *, wait: bool = True) -> Message | None:
        """Send a moderation request (`Kick`, `Ban`, `Unban`, `ListBans`, `Mute`, `Unmute`, `Op`, `Deop`,
        `SetMode`, `Invite`; its `ref` is set here) and, if `wait`, return the answer: the `Ack` of the stored
        action, the `BanList` for `ListBans`, the `RoomState` for `SetMode`. A refusal (e.g. `not_operator`)
        raises `ServerError`.
        """
        ref = self._next_ref()
        request = replace(request, ref=ref)
        self._check(request)
        if isinstance(request, ListBans):
            answer = answer_to(BanList, ref, request.room)
        elif isinstance(request, SetMode):
            answer = answer_to(RoomState, ref, request.room)
        else:
            answer = answer_to(Ack, ref, None)
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
        forward: bool = False,
    ) -> History | None:
        """Fetch stored messages of `room`, or the direct messages (with `peer`, or all when room is None).

        One page of the range between `after` and `before`: its newest messages, or with `forward` its
        oldest (`History.more` says whether the range goes on past the page that way; `fetch_forward` pages
        through it all).
        """
        ref = self._next_ref()
        request = FetchHistory(
            room=room,
            direct=room is None,
            peer=peer,
            before=before,
            after=after,
            limit=limit,
            forward=forward or None,
            ref=ref,
        )
        self._check(request)
        reply = await self._request(request, answer_to(History, ref, room), wait)
        return reply if isinstance(reply, History) else None

    async def search(
        self,
        query: str,
        *,
        room: str | None = None,
        direct: bool = False,
        nick: str | None = None,
        since: int | None = None,
        until: int | None = None,
        offset: int = 0,
        limit: int | None = None,
        wait: bool = True,
    ) -> SearchResults | None:
        """Search the stored messages we may read for `query` (docs/protocol.md, `search`: words,
        "phrases", prefix*, -excluded): in `room` only, or only our direct messages (`direct`), or (neither)
        every room we are in and our direct messages; `nick`: sent by that nick; `since`/`until`: ms since
        the epoch (`since` <= ts < `until`). Return one page of hits, best first (`limit` after `offset`;
        `SearchResults.more` says another page follows), also delivered as a `SearchResults` event. A
        refusal (`not_in_room`, `too_long`, `rate_limited`, `invalid_field` for a query with nothing to find)
        raises `ServerError`.
        """
        ref = self._next_ref()
        request = Search(
            query=query,
            room=room,
            direct=direct,
            nick=nick,
            since=since,
            until=until,
            offset=offset,
            limit=limit,
            ref=ref,
        )
        self._check(request)
        reply = await self._request(request, answer_to(SearchResults, ref, None), wait)
        return reply if isinstance(reply, SearchResults) else None

    async def typing(self, room: str, active: bool = True) -> bool:
        """Tell `room`'s other members that we started (`active`) or stopped typing; True if sent.

        Typing is a hint, never worth a message's place: nothing is sent with `ClientOptions.send_typing` off
        (privacy), while disconnected, while messages wait in the outbox or the pacing has no request to
        spare, or for a start within `ClientOptions.typing_repeat` seconds of the last one sent to that room
        (the server relays at most one per few seconds anyway). A stop is sent only after a start, and a
        message said to the room ends the start without one (the others stop showing it when it arrives).
        No answer comes back.
        """
        self._check_open()
        session = self._runner.session
        if not self.options.send_typing or session is None:
            return False
        key = fold(room)
        now = time.monotonic()
        if active:
            last = self._typing_started.get(key)
            if last is not None and now - last < self.options.typing_repeat:
                return False
            if self._delivery.outbox or self._delivery.pacer.message_wait("") > 0:
                return False  # messages first
            self._typing_started[key] = now
            self._typing_open.add(key)
        else:
            if key not in self._typing_open:
                return False
            self._typing_open.discard(key)
        request = Typing(room=room, active=active)
        self._check(request)
        try:
            session.send(request)
        except ConnectionLost:
            return False
        return True

    async def fetch_forward(
        self,
        room: str | None = None,
        *,
        after: int,
        before: int | None = None,
        peer: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[History]:
        """Page forward, oldest first, through the stored messages after id `after` (and before `before`):
        yields each page until the server says the range holds no more (`more` false).

        This is how a gap is filled, e.g. the messages a resume reported as `History.skipped`: `after` = the
        last id seen before it, `before` = the first id the resume gave. Each page is also delivered as a
        `History` event, like any page. Raises like `fetch_history` (`NotConnected`, `ServerError`...).
        """
        while True:
            page = await self.fetch_history(
                room, peer=peer, after=after, before=before, limit=limit, forward=True
            )
            if page is None:  # not reachable with wait=True; keeps the type checker honest
                return
            yield page
            if not page.more or not page.messages:
                return
            after = page.messages[-1].id

    # -- Files -------------------------------------------------------------------------------------------

    @property
    def transfers(self) -> tuple[TransferInfo, ...]:
        """Every file transfer of this run (running and ended), oldest first."""
        return self._transfers.infos()

    @property
    def file_policy(self) -> FilePolicy | None:
        """What the server takes (chunk size, window, largest file); None offline or if it takes no files."""
        return self._runner.session.welcome.files if self._runner.session is not None else None

    @property
    def files_supported(self) -> bool | None:
        """Whether the server takes files (None while no session has said)."""
        if self._runner.session is None:
            return None
        return self._runner.session.welcome.files is not None

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
        size = await asyncio.to_thread(upload_size, source)
        name = safe_name(source.name, "file")
        check_offer(name, size, room=room, to=to, limits=self.limits)
        if self.files_supported is False:
            raise FilesUnsupported("this server takes no files")
        return self._transfers.start_upload(source, size, name, room=room, to=to)

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


class Router:
    """Sends each message from the server to the part of the client it concerns; see the module docstring."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        waiters: Waiters,
        crowd: Crowd,
        liveness: Liveness,
        delivery: Delivery,
        resume: ResumeState,
        transfers: FileTransfers,
        emit: Callable[[Event], None],
    ) -> None:
        self._credentials = credentials
        self._waiters = waiters
        self._crowd = crowd
        self._liveness = liveness
        self._delivery = delivery
        self._resume = resume
        self._transfers = transfers
        self._emit = emit

    def _is_mine(self, nick: str) -> bool:
        return fold(nick) == fold(self._credentials.nick)

    def route(self, message: Message, session: Session) -> None:
        """Give `message` (read from `session`) to the part it concerns, and to the caller as an event."""
        self._waiters.answer(message)
        self._crowd.update(message, self._credentials.nick)
        match message:
            case Ping(token=token):
                self._liveness.on_ping(session, token)
            case Pong(token=token):
                self._liveness.on_pong(token)
            case Ok():
                pass  # a waiting request has seen it (its effect came as the broadcast before it)
            case Ack():
                entry = self._delivery.on_ack(message)
                if entry is not None:
                    # Our own message's id: a later replay of the room must not deliver it back to us.
                    self._resume.note_own(
                        room_key(entry.room) if entry.room is not None else DM_KEY, message.id
                    )
            case ErrorFrame():
                if message.ref is not None:
                    self._credentials.refused(message.ref)
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
            case Edited() | Deleted() | Reacted() | Unreacted():
                # An event of the conversation's stream: counted for resume, delivered once (a model applies
                # it by the rules of docs/protocol.md, section 6.3).
                key = room_key(message.room) if message.room is not None else DM_KEY
                if self._resume.note(key, message.id):
                    self._emit(message)
            case History():
                for item in message.messages:
                    if isinstance(item, FileOffered):
                        self._transfers.learn(item)
                self._emit(self._resume.filter_history(message, self._is_pending_echo))
                for request in self._resume.take_resends():  # a server that ignored hello.after
                    session.send(request)
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
                if self._is_mine(old):
                    self._credentials.nick_changed(old, new)
                self._emit(message)
            case Registration(registered=registered, ref=ref):
                self._credentials.registration_answered(ref, registered)
                self._emit(message)
            case Sessions(sessions=sessions):
                self._credentials.sessions = sessions  # another session of our nick came or went
                self._emit(message)
            case _:
                self._emit(message)

    def _is_pending_echo(self, item: Said | Told) -> bool:
        """True if a replayed message is our own, still unacknowledged, first attempt.

        Its ack (marked duplicate) follows the resend, so the message is reported once, through the outbox.
        """
        if not self._is_mine(item.nick):
            return False
        for entry in self._delivery.outbox:
            same_target = (
                entry.room is not None and isinstance(item, Said) and fold(entry.room) == fold(item.room)
            ) or (entry.peer is not None and isinstance(item, Told) and fold(entry.peer) == fold(item.to))
            if same_target and entry.text == item.text and entry.action == item.action:
                return True
        return False

    def file_stored(self, offer: FileOffered) -> None:
        """Our upload was stored: report it like a received offer, and never deliver its replay."""
        self._resume.note_own(_offer_key(offer), offer.id)
        self._emit(offer)


def _offer_key(offer: FileOffered) -> str:
    """The resume key of a file offer: its room's, or the direct messages'."""
    return room_key(offer.room) if offer.room is not None else DM_KEY
