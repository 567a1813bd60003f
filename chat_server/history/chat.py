"""The chat on the history thread: its parts, and the login, logout, nicks and away it applies itself.

`Chat` runs on the history thread only (see `chat_server.history.thread`), one request at a time, in the order
the requests were queued. It holds the parts the routing table (chat_server.routes) sends requests to:
messages to `Messages` (chat_server.history.messaging), rooms to `Rooms` (chat_server.history.rooms), the
operators' requests to `Operators` (chat_server.history.operators), registered nicks to `Accounts`
(chat_server.history.accounts); it applies the login, the logout, nick changes and away messages itself. That
single thread is what makes the ordering guarantees simple:

* Room messages and direct messages are *durable* requests. Each is inserted into the open transaction and
  its deliveries (the `ack` to the sender, the `said`/`told` to the others) wait in `Messages` until
  `flush()` commits the batch. So nobody hears of a message that is not on disk, and acks go out in id order.
* Every other request (join, leave, nick, topic, away, moderation, login, disconnect) is a *barrier*: it
  calls `flush()` first, so the membership a message is fanned out to is the membership at the moment it
  was stored. A join reads its backfill after the flush, so the joiner gets each message exactly once: in
  the backfill if it was stored before the join, as a `said` if after. A moderation action commits its rule
  change and its `moderated` history entry itself, then announces it (`chat_server.history.operators`).

History pages asked for with `fetch_history` are the exception: `chat_server.reader.pages` serves them on the
asking connection's reader thread, with that thread's own read connection, so long pages never delay the
history thread.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from chat_server.config import ServerConfig
from chat_server.hub import Client, Hub
from chat_server.metrics import Tally
from chat_server.reader import pages
from chat_server.replies import REPLY_MARGIN, answer, clip, error_frame, fatal_frame, now_ms
from chat_server.storage import HistoryError, HistoryStore
from chat_server.tuning import Latch
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import (
    PROTOCOL_VERSION,
    AwayChanged,
    ChangeNick,
    FetchHistory,
    Hello,
    Joined,
    NickChanged,
    SessionInfo,
    Sessions,
    SetAway,
    SignedOff,
    Welcome,
)
from shared.messages.control import RateBucket, RateLimits
from shared.schema import Message
from shared.text import fold

from .accounts import Accounts, Enroll, Proof, Rename, Standing, Unenroll
from .attention import Attention
from .conversation import Conversations
from .fileoffers import Settle, StoreFile, store_file_offer
from .messaging import Messages
from .moderation import Moderation
from .operators import Operators
from .presence import AWAY_ABSENT, Presence, Returning
from .rooms import Rooms

log = logging.getLogger(__name__)

#: Random bytes in a session's resume token (128 bits; sent as 32 hex digits).
RESUME_TOKEN_BYTES = 16


@dataclass(frozen=True, slots=True)
class Login:
    """Internal request: a connection sent its `hello`; `proof` if it gave a nick password."""

    hello: Hello
    proof: Proof | None = None
    #: False for the second try of a login that waited for its nick's leaving holder: no more waiting.
    retry: bool = True


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Internal request: a connection ended; announce it, forget it, then send `last` and close its sendq."""

    reason: str
    last: bytes | None = None
    #: False when the server is stopping: nobody is told about each of the others leaving.
    announce: bool = True
    #: Set by the history thread once applied (the nick is free): the reader closes the socket only then.
    applied: Latch = field(default_factory=Latch, compare=False)


#: Makes the history thread's `Messages` (hub, store, clock, moderation, tally).
MessagesFactory = Callable[[Hub, HistoryStore, Callable[[], int], Moderation, Tally], Messages]

Request = Message | Login | Disconnect | Rename | Enroll | Unenroll | StoreFile | Settle


class Chat:
    """Applies requests to the hub and the history, in order (history thread only)."""

    def __init__(
        self,
        hub: Hub,
        store: HistoryStore,
        config: ServerConfig,
        tally: Tally | None = None,
        messages: MessagesFactory = Messages,
    ) -> None:
        self.hub = hub
        self.store = store
        self.config = config
        #: The server's counters (chat_server.metrics): logins and login refusals are counted here.
        self.tally = tally if tally is not None else Tally()
        self._last_ts = 0
        self.accounts = Accounts(hub, store)
        for known in store.load_rooms():
            hub.add_room(known.key, known.name, known.topic, known.last_id)
        self.moderation = Moderation(hub, store, config, self._ts)
        #: `Messages`, or in cluster mode its subclass whose store is the log stream (chat_server.cluster).
        self.messages = messages(hub, store, self._ts, self.moderation, self.tally)
        self.conversations = Conversations(hub, store, config, self._ts, self.messages, self.moderation)
        reply_bytes = config.max_frame - REPLY_MARGIN
        self.attention = Attention(
            store,
            self.messages.flush,
            self.messages.after_commit,
            self.messages.write_failed,
            config.read_markers_per_nick,
            levels_per_nick=config.notify_levels_per_nick,
            max_keywords=config.max_keywords,
        )
        self.rooms = Rooms(
            hub, store, config, self._ts, self.messages, self.moderation, self.attention, reply_bytes
        )
        self.operators = Operators(
            self.moderation, hub, store, config, self._ts, self.rooms.send_room_state, self.messages.flush
        )
        # In cluster mode an absent nick is the cluster's, not one server's (chat_server.cluster.presence).
        always_on = config.always_on and not config.cluster.enabled
        self.presence = Presence(hub, store, self.moderation, always_on, self.attention.newest_id)
        self.messages.offline = self._offline
        #: The rate limits announced in every `welcome` (built once: the config does not change).
        self.rates = announced_rates(config)

    def _ts(self) -> int:
        # Timestamps never go backwards, so id order and time order agree even if the clock is stepped back.
        self._last_ts = max(self._last_ts, now_ms())
        return self._last_ts

    # -- Requests of the connection's own life ------------------------------------------------------------

    def flush(self) -> None:
        """Commit the open transaction, then deliver every held-back ack and message (`Messages.flush`)."""
        self.messages.flush()

    # -- Login and logout ----------------------------------------------------------------------------------

    def login(self, client: Client, login: Login) -> None:
        """A connection sent its `hello` (the reader checked its passwords): welcome it, or refuse it."""
        try:
            self._log_in(client, login.hello, login.proof, login.retry)
        finally:
            client.login_settled.set()  # the welcome or the refusal is queued: the reader may go on

    def _log_in(self, client: Client, hello: Hello, proof: Proof | None, retry: bool) -> None:
        self.flush()
        claim = self._claim(client, hello.nick, proof, hello.ref)
        if isinstance(claim, bytes):
            client.close(claim, False)  # fatal: without a nick there is no session
            return
        client.agent = hello.client
        resumed = self._resume(client, hello)
        added = False  # one more session of a nick already logged in
        returning: Returning | None = None  # an always-on nick's first session since it went
        staying: set[str] = set()  # and, in cluster mode, the rooms it stayed in (its session enters them)
        registered = resumed or self.hub.register(client, hello.nick)
        shared = self.rooms.shared
        if registered and not resumed and shared is not None and claim is Standing.OWNER:
            # Cluster mode: an always-on nick absent from every server; this login takes its place.
            after = {fold(name): last for name, last in (hello.after or {}).items()}
            comeback = shared.returning(client, after)
            if comeback is not None:
                returning, staying = comeback
        if not registered:
            holder = self.hub.holder(hello.nick)
            if holder is not None and holder.absent and claim is Standing.OWNER:
                # An always-on nick none of whose sessions was connected: this login takes its place.
                returning = self._come_back(client, holder)
                added = True
            elif holder is not None and claim is Standing.OWNER and holder.account == fold(hello.nick):
                # The owner of a registered nick logs in once more: one more session, up to the maximum.
                if not self._add_session(client, holder, hello, retry):
                    return
                added = True
            elif retry and holder is not None and (holder.ending or holder.input_waiting()):
                # The holder is leaving (its reader stopped), or has input we have not read yet (perhaps
                # its `quit`, or the end of its stream): the nick is probably about to be free. The reader
                # waits (bounded) for the holder's logout and asks once more (docs/protocol.md).
                self._wait_for(client, holder)
                return
            else:
                self.tally.count("refusals", ErrorCode.NICK_TAKEN.value)
                # Fatal here although nick_taken is not fatal after login: without a nick there is no session.
                taken = error_frame(
                    ErrorCode.NICK_TAKEN, f"nick {hello.nick!r} is in use", hello.ref, fatal=True
                )
                client.close(taken, False)
                return
        if client.resume_token is None:
            client.resume_token = secrets.token_hex(RESUME_TOKEN_BYTES)
        self.accounts.settle(client, claim)
        client.since = self._ts()
        self.tally.count("logins", "")
        event = "resume" if resumed else "login"  # never the token: it is a secret (docs/security.md)
        log.info("conn=%d event=%s nick=%r client=%r", client.id, event, client.nick, hello.client)
        client.send(
            encode(
                Welcome(
                    version=PROTOCOL_VERSION,
                    nick=client.nick or hello.nick,
                    server=self.config.server_name,
                    ts=self._ts(),
                    limits=self.config.limits,
                    ping_interval=max(1, round(self.config.ping_interval)),
                    # Rounded down: a client that keeps within the announced figure is never cut off.
                    ping_timeout=max(1, int(self.config.ping_timeout)),
                    rates=self.rates,
                    motd=self.config.motd,
                    files=self.config.files.policy(),
                    ref=hello.ref,
                    resume_token=client.resume_token,
                    read_markers=self.attention.markers(client, self.config.max_list),
                    notify_levels=tuple(self.attention.levels(client).values()),
                    keywords=self.attention.nick_keywords(client),
                    session=client.id,
                    sessions=session_infos(client),
                    servers=self.messages.servers(),
                )
            )
        )
        if resumed and len(client.sessions) > 1:
            self._sessions_changed(client.sessions, skip=client)  # the resumed session has a new id
        if added:
            self._sessions_changed(client.sessions, skip=client)
            # The new session is in its nick's rooms: it hears of each as of a join of its own (the others
            # hear nothing), then gets its `room_state` and backfill below.
            for room in list(client.rooms.values()):
                op = self.moderation.is_operator(client, room.key)
                client.send(encode(Joined(room=room.name, nick=client.nick or "", ts=self._ts(), op=op)))
        rooms = (self.config.default_room,) if hello.rooms is None else hello.rooms
        # hello.after resumes rooms as `join {after}` does: each listed room, from the id after the one given.
        resume = {fold(name): last for name, last in (hello.after or {}).items()}
        limit = self.config.max_rooms_per_client
        refused = 0
        listed = {fold(name) for name in rooms}
        names = [*rooms, *(name for name in hello.after or {} if fold(name) not in listed)]
        if added:
            # A further session is in its nick's rooms already: each that `hello` does not name comes last,
            # with its `room_state` and backfill as for a join.
            named = {fold(name) for name in names}
            names += [room.name for key, room in list(client.rooms.items()) if key not in named]
        if staying:
            names = [name for name in names if fold(name) not in staying]
        # Each name of `rooms` as given (a repeated one is answered again, as a repeated join is), then the
        # rooms only `after` names.
        for name in names:
            key = fold(name)
            if len(client.rooms) + len(staying) >= limit and key not in client.rooms:
                refused += 1  # one error for all of them below: a hello is free, its replies must be bounded
                continue
            self.rooms.join_room(client, name, resume.get(key), None, None)
        if refused:
            message = f"you are in {limit} rooms already; {refused} more not joined"
            client.send(error_frame(ErrorCode.TOO_MANY_ROOMS, message, hello.ref))
        if hello.direct_after is not None:
            self._resume_direct(client, hello.direct_after)
        elif returning is not None:
            self._resume_direct(client, returning.left_id)  # the direct messages stored while it was away

    def _come_back(self, client: Client, absent: Client) -> Returning:
        """`client` takes the place of the session an always-on nick kept while it was away: the others see
        no arrival (only its away message going, if the server had set it)."""
        returning = self.presence.returning(absent)
        self.hub.replace(absent, client)
        log.info("conn=%d event=returned nick=%r", client.id, client.nick)
        if returning.auto_away:
            with self.hub.lock:
                client.away = None
            back = encode(AwayChanged(nick=client.nick or "", ts=self._ts(), message=None))
            self.hub.send_all([peer for peer in self.hub.neighbours(client) if peer is not client], back)
        return returning

    def _offline(self, key: str) -> Client | None:
        """For a direct message to `key` while no session of it is connected: the session an always-on
        server keeps for a registered nick (made now if it has none); None otherwise (`no_such_nick`)."""
        nick = self.presence.registered_nick(key)
        return None if nick is None else self.presence.absent(key, nick)

    def _add_session(self, client: Client, holder: Client, hello: Hello, retry: bool) -> bool:
        """Make `client` one more session of `holder`'s registered nick; False (the login refused, or
        waiting for a leaving session) if the nick has `max_sessions_per_nick` sessions already."""
        most = self.config.max_sessions_per_nick
        if len(holder.sessions) < most:
            self.hub.attach(client, holder)
            count = len(client.sessions)
            log.info("conn=%d event=session_added nick=%r sessions=%d", client.id, client.nick, count)
            return True
        leaving = next((s for s in holder.sessions if s.ending or s.input_waiting()), None)
        if retry and leaving is not None:
            self._wait_for(client, leaving)  # one of them is leaving: its place is probably about to be free
            return False
        self.tally.count("refusals", ErrorCode.TOO_MANY_SESSIONS.value)
        message = f"nick {hello.nick!r} has {most} sessions already (max_sessions_per_nick)"
        client.close(error_frame(ErrorCode.TOO_MANY_SESSIONS, message, hello.ref, fatal=True), False)
        return False

    def _wait_for(self, client: Client, holder: Client) -> None:
        """`client`'s reader waits (bounded) for `holder`'s logout, then asks once more (`Login.retry`)."""
        if holder.logged_out is None:
            holder.logged_out = Latch()
        client.nick_wait = holder.logged_out

    def _sessions_changed(self, sessions: list[Client], skip: Client | None = None) -> None:
        """Tell every session of a nick (but `skip`) the nick's sessions, now that one came or went."""
        if not sessions:
            return
        frame = encode(Sessions(sessions=session_infos(sessions[0]), ts=self._ts()))
        for session in sessions:
            if session is not skip:
                session.send(frame)

    def _resume_direct(self, client: Client, after: int) -> None:
        """Send the direct messages after `after` (`hello.direct_after`): the answer to `fetch_history
        {direct, after}` (chat_server.reader.pages), the newest `max_backfill` of them with `skipped` counting
        any left out, read here on the writer's connection, and without a `ref`."""
        request = FetchHistory(direct=True, after=after, limit=self.config.max_backfill)
        client.send(pages.fetch_history(client, request, self.store.connection, self.hub, self.config))

    def _resume(self, client: Client, hello: Hello) -> bool:
        """If `hello` shows the resume token of the session holding its nick, `client` takes that session.

        The stale connection is closed with `session_replaced`; `client` takes its place in each of its
        rooms, so the others see no departure and no arrival. A wrong token (or none) changes nothing: the
        login goes on as usual, and meets `nick_taken` if the nick is held.
        """
        holder = self.hub.holder(hello.nick)
        token = hello.resume_token
        if holder is None or token is None:
            return False
        # Each session of the nick has its own token: the one shown names the session to take over.
        matches = [
            session
            for session in holder.sessions
            if session is not client
            and session.resume_token is not None
            and hmac.compare_digest(token.encode(), session.resume_token.encode())
        ]
        if not matches:
            return False
        old = matches[0]
        self.hub.replace(old, client)
        self.moderation.moved(old, client)
        client.attention = old.attention
        log.info("conn=%d event=session_replaced by=%d nick=%r", old.id, client.id, client.nick)
        old.close(
            fatal_frame(ErrorCode.SESSION_REPLACED, "this session was resumed by a new connection"), False
        )
        return True

    def disconnect(self, client: Client, request: Disconnect) -> None:
        """A connection ended: announce it, forget it, free its nick, then close its sendq."""
        try:
            self._sign_off(client, request)
        finally:
            request.applied.set()
            if client.logged_out is not None:
                client.logged_out.set()  # a login waiting for this nick asks again

    def _sign_off(self, client: Client, request: Disconnect) -> None:
        self.flush()
        if client.key is not None and len(client.sessions) > 1:
            # One session of several ends: the nick stays (in its rooms, for the others); only its other
            # sessions hear of it.
            siblings = [session for session in client.sessions if session is not client]
            self.hub.detach(client)
            self._sessions_changed(siblings)
            log.info("conn=%d event=session_end nick=%r reason=%r", client.id, client.nick, request.reason)
        if client.key is not None and len(client.sessions) == 1 and self.presence.keep(client):
            # An always-on nick's last session ended: the nick stays (in its rooms, for its direct messages).
            if request.announce and client.away == AWAY_ABSENT:
                others = [peer for peer in self.hub.neighbours(client) if peer is not client]
                gone = AwayChanged(nick=client.nick or "", ts=self._ts(), message=client.away)
                self.hub.send_all(others, encode(gone))
            log.info("conn=%d event=absent nick=%r reason=%r", client.id, client.nick, request.reason)
            self.rooms.forget(client)
            self.moderation.forget(client)
            client.sendq.close(request.last)
            return
        reason = clip(request.reason, self.config.max_reason)
        shared = self.rooms.shared
        if client.key is not None and request.announce and shared is None:
            others = [peer for peer in self.hub.neighbours(client) if peer is not client]
            signed_off = encode(SignedOff(nick=client.nick or "", ts=self._ts(), reason=reason))
            self.hub.send_all(others, signed_off)
        if client.key is not None:
            for room in list(client.rooms.values()):
                self.hub.leave(client, room)
                self.moderation.left(room)
            self.hub.unregister(client)
            log.info("conn=%d event=logout nick=%r reason=%r", client.id, client.nick, request.reason)
            if shared is not None and request.announce:
                # Cluster mode: the others (on every server) hear of it when the log brings it back.
                shared.signed_off(client, reason)
        self.rooms.forget(client)
        self.moderation.forget(client)
        client.sendq.close(request.last)

    # -- People --------------------------------------------------------------------------------------------

    def _claim(self, client: Client, nick: str, proof: Proof | None, ref: int | None) -> Standing | bytes:
        """How `client` stands with `nick` (free, or its own registered nick), or the error refusing it."""
        fatal = client.key is None  # during login every refusal ends the connection
        try:
            standing = self.accounts.standing(client, fold(nick), proof)
        except HistoryError as error:
            log.warning("conn=%d event=accounts_unavailable error=%s", client.id, error)
            if fatal:
                self.tally.count("refusals", ErrorCode.HISTORY_UNAVAILABLE.value)
            message = "registered nicks are unavailable"
            return error_frame(ErrorCode.HISTORY_UNAVAILABLE, message, ref, fatal=fatal)
        if standing is Standing.REFUSED:
            # The proof was checked against an older registration (changed since): the password is stale.
            what = "give its password" if proof is None else "its registration changed meanwhile; try again"
            if fatal:
                self.tally.count("refusals", ErrorCode.NICK_REGISTERED.value)
            return error_frame(
                ErrorCode.NICK_REGISTERED, f"nick {nick!r} is registered: {what}", ref, fatal=fatal
            )
        return standing

    def store_file(self, client: Client, request: StoreFile) -> None:
        """An upload is complete: store its offer (a barrier: its id follows every message stored before)."""
        self.flush()
        store_file_offer(self.hub, self.store, client, request, self._ts(), self.moderation.silenced)

    def settle(self, client: Client, request: Settle) -> None:
        """Everything `client` sent before is applied: its reader may check membership now."""
        request.done.set()

    def enroll(self, client: Client, request: Enroll) -> None:
        """Register `client`'s nick with the password hash its reader made (chat_server.history.accounts)."""
        self.flush()
        client.send(self.accounts.enroll(client, request))

    def unenroll(self, client: Client, request: Unenroll) -> None:
        """Remove the registration whose password the reader checked."""
        self.flush()
        client.send(self.accounts.unenroll(client, request))

    def rename(self, client: Client, request: Rename) -> None:
        """A `nick` whose password (if any) the reader checked: take the new nick, or refuse it."""
        self._change_nick(client, request.request, request.proof)

    def _change_nick(self, client: Client, request: ChangeNick, proof: Proof | None) -> None:
        self.flush()
        old = client.nick or ""
        if len(client.sessions) > 1 and fold(request.nick) != client.key:
            others = len(client.sessions) - 1
            message = f"{old} has {others} other session(s): end them before changing the nick"
            client.send(error_frame(ErrorCode.FORBIDDEN, message, request.ref))
            return
        claim = self._claim(client, request.nick, proof, request.ref)
        if isinstance(claim, bytes):
            client.send(claim)
            return
        if not self.hub.register(client, request.nick):
            client.send(error_frame(ErrorCode.NICK_TAKEN, f"nick {request.nick!r} is in use", request.ref))
            return
        with self.hub.lock:
            for session in client.sessions:  # a change of letter case: the nick's other sessions too
                session.nick = client.nick
        self.accounts.settle(client, claim)
        changed = encode(NickChanged(old=old, new=request.nick, ts=self._ts()))
        if request.nick == old:
            client.send(changed)  # nothing changed: confirm to the user, announce nothing
            answer(client, request.ref)
            return
        log.info("conn=%d event=nick old=%r new=%r", client.id, old, request.nick)
        self.hub.send_all(self.hub.neighbours(client), changed)
        answer(client, request.ref)

    def set_away(self, client: Client, request: SetAway) -> None:
        """Set (or clear) `client`'s away message; everyone sharing a room with it hears `away_changed`."""
        self.flush()
        message = request.message or None  # an empty message means "back", like None
        if self.rooms.shared is not None:
            self.rooms.shared.away(client, message, request.ref)  # applied when the log brings it back
            return
        with self.hub.lock:
            for session in client.sessions:  # away belongs to the nick
                session.away = message
        changed = encode(AwayChanged(nick=client.nick or "", ts=self._ts(), message=message))
        self.hub.send_all(self.hub.neighbours(client), changed)
        answer(client, request.ref)


def session_infos(client: Client) -> tuple[SessionInfo, ...]:
    """Every session of `client`'s nick as `welcome.sessions` and `sessions` list them, the oldest first."""
    return tuple(
        SessionInfo(id=session.id, client=session.agent, since=session.since) for session in client.sessions
    )


def announced_rates(config: ServerConfig) -> RateLimits:
    """The per-connection rate limits of `config` as `welcome` announces them (docs/protocol.md).

    The refill time is rounded up, so a client that paces itself by it never goes faster than the server
    refills.
    """

    def bucket(rate: float, burst: int) -> RateBucket:
        return RateBucket(burst=burst, refill_ms=min(math.ceil(burst / rate * 1000), MAX_UINT_ANNOUNCED))

    return RateLimits(
        requests=bucket(config.rate_messages, config.rate_burst),
        text_bytes=bucket(config.rate_bytes, config.rate_bytes_burst),
        joins=bucket(config.rate_joins, config.rate_joins_burst),
        nicks=bucket(config.rate_nicks, config.rate_nicks_burst),
        searches=bucket(config.rate_searches, config.rate_searches_burst),
        edits=bucket(config.rate_edits, config.rate_edits_burst),
        reactions=bucket(config.rate_reactions, config.rate_reactions_burst),
    )


#: The largest integer every client can represent exactly (JavaScript's 2^53 - 1).
MAX_UINT_ANNOUNCED = 2**53 - 1
