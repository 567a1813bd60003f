"""The chat rules: what each request does to rooms, nicks and history, and who hears about it.

`Chat.handle` runs on the history thread only (see `chat_server.sequencer`), one request at a time, in the
order the requests were queued. That single thread is what makes the ordering guarantees simple:

* Room messages and direct messages are *durable* requests. Each is inserted into the open transaction and
  its deliveries (the `ack` to the sender, the `said`/`told` to the others) wait in `_pending` until
  `flush()` commits the batch. So nobody hears of a message that is not on disk, and acks go out in id order.
* Every other request (join, leave, nick, topic, away, moderation, login, disconnect) is a *barrier*: it
  calls `flush()` first, so the membership a message is fanned out to is the membership at the moment it
  was stored. A join reads its backfill after the flush, so the joiner gets each message exactly once: in
  the backfill if it was stored before the join, as a `said` if after. A moderation action commits its rule
  change and its `moderated` history entry itself, then announces it (`chat_server.moderation`).

History pages asked for with `fetch_history` are the exception: `chat_server.pages` serves them on the
asking connection's reader thread, with that thread's own read connection, so long pages never delay the
history thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import (
    MODERATION_REQUESTS,
    PROTOCOL_VERSION,
    Ack,
    AwayChanged,
    ChangeNick,
    Hello,
    History,
    Join,
    Joined,
    Leave,
    Left,
    ListRooms,
    NickChanged,
    RoomList,
    RoomSummary,
    Said,
    Say,
    SetAway,
    SetTopic,
    SignedOff,
    Tell,
    Told,
    TopicChanged,
    Welcome,
    Who,
)
from shared.schema import Message
from shared.text import fold

from .accounts import Accounts, Enroll, Proof, Rename, Standing, Unenroll
from .config import ServerConfig
from .fileoffers import Settle, StoreFile, store_file_offer
from .hub import Client, Hub, Room
from .moderation import Moderation
from .replies import REPLY_MARGIN, clip, error_frame, now_ms
from .roomstate import RoomStates
from .storage import HistoryError, HistoryStore, Page

log = logging.getLogger(__name__)

# Log a failing history database at most this often (seconds), not once per message.
_HISTORY_LOG_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class Login:
    """Internal request: a connection sent its `hello`; `proof` if it gave a nick password."""

    hello: Hello
    proof: Proof | None = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Internal request: a connection ended; announce it, forget it, then send `last` and close its outbox."""

    reason: str
    last: bytes | None = None
    #: False when the server is stopping: nobody is told about each of the others leaving.
    announce: bool = True


Request = Message | Login | Disconnect | Rename | Enroll | Unenroll | StoreFile | Settle


@dataclass(slots=True)
class _Stored:
    """A durable request's deliveries, held back until its transaction commits."""

    sender: Client
    ack: bytes
    ref: int | None
    relay: bytes | None = None
    room: Room | None = None  # fan out `relay` to this room (minus the sender) ...
    recipient: Client | None = None  # ... or send it to this one client


class Chat:
    """Applies requests to the hub and the history, in order (history thread only)."""

    def __init__(self, hub: Hub, store: HistoryStore, config: ServerConfig) -> None:
        self.hub = hub
        self.store = store
        self.config = config
        self._pending: list[_Stored] = []
        self._last_ts = 0
        self._history_logged_at = -_HISTORY_LOG_INTERVAL
        self._reply_bytes = config.max_frame - REPLY_MARGIN
        self._room_states = RoomStates(config.max_list, self._reply_bytes)
        self.accounts = Accounts(hub, store)
        for known in store.load_rooms():
            hub.add_room(known.key, known.name, known.topic, known.last_id)
        self.moderation = Moderation(hub, store, config, self._ts, self._send_room_state)

    def _ts(self) -> int:
        # Timestamps never go backwards, so id order and time order agree even if the clock is stepped back.
        self._last_ts = max(self._last_ts, now_ms())
        return self._last_ts

    # -- Dispatch ------------------------------------------------------------------------------------------

    def handle(self, client: Client, request: Request) -> None:
        """Apply one request from `client`."""
        if isinstance(request, Disconnect):
            self._disconnect(client, request)
        elif isinstance(request, Login):
            self._login(client, request)
        elif isinstance(request, StoreFile):
            self.flush()  # a barrier: the offer's id follows every message stored before it
            store_file_offer(self.hub, self.store, client, request, self._ts(), self.moderation.silenced)
        elif isinstance(request, Settle):
            request.done.set()  # everything this connection sent before is applied
        elif client.key is None:
            return  # the login was refused; the connection is closing
        elif isinstance(request, Say):
            self._say(client, request)
        elif isinstance(request, Tell):
            self._tell(client, request)
        elif isinstance(request, Join):
            self._join(client, request.room, request.after, request.backfill, request.ref, request.key)
        elif isinstance(request, Leave):
            self._leave(client, request)
        elif isinstance(request, Rename):
            self._change_nick(client, request.request, request.proof)
        elif isinstance(request, ChangeNick):
            self._change_nick(client, request, None)
        elif isinstance(request, Enroll):
            self.flush()
            client.send(self.accounts.enroll(client, request))
        elif isinstance(request, Unenroll):
            self.flush()
            client.send(self.accounts.unenroll(client, request))
        elif isinstance(request, SetTopic):
            self._set_topic(client, request)
        elif isinstance(request, SetAway):
            self._set_away(client, request)
        elif isinstance(request, ListRooms):
            self._list_rooms(client, request)
        elif isinstance(request, Who):
            self._who(client, request)
        elif isinstance(request, MODERATION_REQUESTS):
            self.flush()
            self.moderation.handle(client, request)
        else:
            client.send(error_frame(ErrorCode.UNKNOWN_TYPE, f"{type(request).__name__} is not handled here"))

    # -- Group commit --------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Commit the open transaction, then deliver every held-back ack and message in order."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            self.store.commit()
        except HistoryError as error:
            self._history_failed(error, pending)
            return
        run: list[tuple[Client, bytes, bytes]] = []  # consecutive messages of one room
        run_room: Room | None = None
        for stored in pending:
            if stored.room is not None and stored.relay is not None:
                if stored.room is not run_room and run_room is not None:
                    self.hub.publish_messages(run_room, run)
                    run = []
                run_room = stored.room
                run.append((stored.sender, stored.ack, stored.relay))
                continue
            if run_room is not None:
                self.hub.publish_messages(run_room, run)
                run, run_room = [], None
            stored.sender.send(stored.ack)
            if stored.recipient is not None and stored.relay is not None:
                stored.recipient.send(stored.relay)
        if run_room is not None:
            self.hub.publish_messages(run_room, run)

    def _history_failed(self, error: HistoryError, pending: list[_Stored]) -> None:
        self.store.rollback()
        now = time.monotonic()
        if now - self._history_logged_at >= _HISTORY_LOG_INTERVAL:
            self._history_logged_at = now
            log.error("event=history_failed error=%s (messages are refused until it recovers)", error)
        for stored in pending:
            stored.sender.send(
                error_frame(ErrorCode.HISTORY_UNAVAILABLE, "the message could not be stored", stored.ref)
            )

    # -- Login and logout ----------------------------------------------------------------------------------

    def _login(self, client: Client, login: Login) -> None:
        try:
            self._log_in(client, login.hello, login.proof)
        finally:
            client.login_settled.set()  # the welcome or the refusal is queued: the reader may go on

    def _log_in(self, client: Client, hello: Hello, proof: Proof | None) -> None:
        self.flush()
        claim = self._claim(client, hello.nick, proof, hello.ref)
        if isinstance(claim, bytes):
            client.close(claim, False)  # fatal: without a nick there is no session
            return
        if not self.hub.register(client, hello.nick):
            # Fatal here although nick_taken is not fatal after login: without a nick there is no session.
            taken = error_frame(ErrorCode.NICK_TAKEN, f"nick {hello.nick!r} is in use", hello.ref, fatal=True)
            client.close(taken, False)
            return
        self.accounts.settle(client, claim)
        log.info("conn=%d event=login nick=%r client=%r", client.id, hello.nick, hello.client)
        client.send(
            encode(
                Welcome(
                    version=PROTOCOL_VERSION,
                    nick=hello.nick,
                    server=self.config.server_name,
                    ts=self._ts(),
                    limits=self.config.limits,
                    ping_interval=max(1, round(self.config.ping_interval)),
                    motd=self.config.motd,
                    files=self.config.files.policy(),
                    ref=hello.ref,
                )
            )
        )
        rooms = (self.config.default_room,) if hello.rooms is None else hello.rooms
        limit = self.config.max_rooms_per_client
        refused = 0
        for name in rooms:
            if len(client.rooms) >= limit and fold(name) not in client.rooms:
                refused += 1  # one error for all of them below: a hello is free, its replies must be bounded
                continue
            self._join(client, name, None, None, None)
        if refused:
            message = f"you are in {limit} rooms already; {refused} more not joined"
            client.send(error_frame(ErrorCode.TOO_MANY_ROOMS, message, hello.ref))

    def _disconnect(self, client: Client, request: Disconnect) -> None:
        self.flush()
        if client.key is not None and request.announce:
            others = [peer for peer in self.hub.neighbours(client) if peer is not client]
            reason = clip(request.reason, self.config.max_reason)
            signed_off = encode(SignedOff(nick=client.nick or "", ts=self._ts(), reason=reason))
            self.hub.send_all(others, signed_off)
        if client.key is not None:
            for room in list(client.rooms.values()):
                self.hub.leave(client, room)
                self.moderation.left(room)
            self.hub.unregister(client)
            log.info("conn=%d event=logout nick=%r reason=%r", client.id, client.nick, request.reason)
        self._room_states.forget(client)
        self.moderation.forget(client)
        client.outbox.close(request.last)

    # -- Rooms ---------------------------------------------------------------------------------------------

    def _join(
        self,
        client: Client,
        name: str,
        after: int | None,
        backfill: int | None,
        ref: int | None,
        room_key: str | None = None,
    ) -> None:
        self.flush()
        key = fold(name)
        room = self.hub.rooms.get(key)
        if room is None or key not in client.rooms:
            if len(client.rooms) >= self.config.max_rooms_per_client:
                limit = self.config.max_rooms_per_client
                client.send(error_frame(ErrorCode.TOO_MANY_ROOMS, f"you are in {limit} rooms already", ref))
                return
            refusal = self.moderation.admission(client, key, room.name if room else name, room_key)
            if refusal is not None:
                client.send(error_frame(*refusal, ref))
                return
            room = self.hub.add_room(key, name)
            was_empty = not room.members
            self.hub.enter(client, room)
            self.moderation.entered(client, room, was_empty)
            op = self.moderation.is_operator(client, key)
            self.hub.publish(
                room, encode(Joined(room=room.name, nick=client.nick or "", ts=self._ts(), op=op))
            )
        self._send_room_state(client, room, ref)
        bound = self.config.max_backfill
        try:
            if room.last_id == 0:
                # Nothing was ever stored in this room (last_id is loaded at start and set on every insert):
                # skip the query. A login wave into new rooms then costs no SQLite work per login.
                page = Page(messages=(), more=False, skipped=0)
            elif after is not None:
                page = self.store.room_page(key, after=after, limit=bound, max_bytes=self._reply_bytes)
            else:
                count = self.config.backfill if backfill is None else min(backfill, bound)
                page = self.store.room_page(key, limit=count, max_bytes=self._reply_bytes)
        except HistoryError as error:
            log.warning("conn=%d event=backfill_failed room=%r error=%s", client.id, room.name, error)
            client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, "history is unavailable", ref))
            return
        client.send(
            encode(
                History(room=room.name, messages=page.messages, more=page.more, skipped=page.skipped, ref=ref)
            )
        )

    def _send_room_state(self, client: Client, room: Room, ref: int | None) -> None:
        moderation = self.moderation
        client.send(
            self._room_states.frame(
                room,
                ref,
                is_op=moderation.operator_test(room.key),
                rules=moderation.rules(room.key),
                show_key=moderation.is_operator(client, room.key),
            )
        )

    def _member_room(self, client: Client, name: str, ref: int | None) -> Room | None:
        room = client.rooms.get(fold(name))
        if room is None:
            client.send(error_frame(ErrorCode.NOT_IN_ROOM, f"you are not in {name!r}", ref))
        return room

    def _leave(self, client: Client, request: Leave) -> None:
        self.flush()
        room = self._member_room(client, request.room, request.ref)
        if room is None:
            return
        left = Left(room=room.name, nick=client.nick or "", ts=self._ts(), reason=request.reason)
        self.hub.publish(room, encode(left))
        self.hub.leave(client, room)
        self.moderation.left(room)

    def _set_topic(self, client: Client, request: SetTopic) -> None:
        self.flush()
        room = self._member_room(client, request.room, request.ref)
        if room is None:
            return
        if self.moderation.topic_locked(client, room):
            message = f"the topic of {room.name} is locked: only its operators set it"
            client.send(error_frame(ErrorCode.NOT_OPERATOR, message, request.ref))
            return
        try:
            self.store.save_topic(room.key, room.name, request.topic)
            self.store.commit()
        except HistoryError as error:
            self._history_failed(error, [])
            client.send(
                error_frame(ErrorCode.HISTORY_UNAVAILABLE, "the topic could not be stored", request.ref)
            )
            return
        with self.hub.lock:
            room.topic = request.topic
        changed = TopicChanged(room=room.name, topic=request.topic, nick=client.nick or "", ts=self._ts())
        self.hub.publish(room, encode(changed))

    def _who(self, client: Client, request: Who) -> None:
        room = self.hub.rooms.get(fold(request.room))
        if room is None:
            client.send(error_frame(ErrorCode.NO_SUCH_ROOM, f"no room {request.room!r}", request.ref))
            return
        if room.key not in client.rooms and self.moderation.closed(client, room):
            message = f"{room.name} is closed (key or invite-only): join it to see who is there"
            client.send(error_frame(ErrorCode.FORBIDDEN, message, request.ref))
            return
        self._send_room_state(client, room, request.ref)

    def _list_rooms(self, client: Client, request: ListRooms) -> None:
        summaries: list[RoomSummary] = []
        size = 0
        for name, topic, count in self.hub.summaries():
            if not count and not topic and not self._has_history(name):
                continue
            size += 32 + len(name.encode()) + len(topic.encode())
            if len(summaries) >= self.config.max_list or size > self._reply_bytes:
                break
            summaries.append(RoomSummary(name=name, topic=topic, members=count))
        client.send(encode(RoomList(rooms=tuple(summaries), ref=request.ref)))

    def _has_history(self, name: str) -> bool:
        room = self.hub.rooms.get(fold(name))
        return room is not None and room.last_id > 0

    # -- People --------------------------------------------------------------------------------------------

    def _claim(self, client: Client, nick: str, proof: Proof | None, ref: int | None) -> Standing | bytes:
        """How `client` stands with `nick` (free, or its own registered nick), or the error refusing it."""
        fatal = client.key is None  # during login every refusal ends the connection
        try:
            standing = self.accounts.standing(client, fold(nick), proof)
        except HistoryError as error:
            log.warning("conn=%d event=accounts_unavailable error=%s", client.id, error)
            message = "registered nicks are unavailable"
            return error_frame(ErrorCode.HISTORY_UNAVAILABLE, message, ref, fatal=fatal)
        if standing is Standing.REFUSED:
            # The proof was checked against an older registration (changed since): the password is stale.
            what = "give its password" if proof is None else "its registration changed meanwhile; try again"
            return error_frame(
                ErrorCode.NICK_REGISTERED, f"nick {nick!r} is registered: {what}", ref, fatal=fatal
            )
        return standing

    def _change_nick(self, client: Client, request: ChangeNick, proof: Proof | None) -> None:
        self.flush()
        old = client.nick or ""
        claim = self._claim(client, request.nick, proof, request.ref)
        if isinstance(claim, bytes):
            client.send(claim)
            return
        if not self.hub.register(client, request.nick):
            client.send(error_frame(ErrorCode.NICK_TAKEN, f"nick {request.nick!r} is in use", request.ref))
            return
        self.accounts.settle(client, claim)
        changed = encode(NickChanged(old=old, new=request.nick, ts=self._ts()))
        if request.nick == old:
            client.send(changed)  # nothing changed: confirm to the user, announce nothing
            return
        log.info("conn=%d event=nick old=%r new=%r", client.id, old, request.nick)
        self.hub.send_all(self.hub.neighbours(client), changed)

    def _set_away(self, client: Client, request: SetAway) -> None:
        self.flush()
        message = request.message or None  # an empty message means "back", like None
        with self.hub.lock:
            client.away = message
        changed = encode(AwayChanged(nick=client.nick or "", ts=self._ts(), message=message))
        self.hub.send_all(self.hub.neighbours(client), changed)

    # -- Messages (durable) --------------------------------------------------------------------------------

    def _duplicate(self, client: Client, client_msg_id: str | None, ref: int | None) -> bool:
        if client_msg_id is None or client.key is None:
            return False
        found = self.store.find_duplicate(client.key, client_msg_id)
        if found is None:
            return False
        message_id, ts = found
        ack = Ack(id=message_id, ts=ts, client_msg_id=client_msg_id, duplicate=True, ref=ref)
        self._pending.append(_Stored(client, encode(ack), ref))
        return True

    def _say(self, client: Client, request: Say) -> None:
        room = self._member_room(client, request.room, request.ref)
        if room is None:
            return
        if (muted := self.moderation.silenced(client, room)) is not None:
            client.send(error_frame(ErrorCode.MUTED, muted, request.ref))
            return
        ts = self._ts()
        try:
            if self._duplicate(client, request.client_msg_id, request.ref):
                return
            message_id = self.store.add_room_message(
                room_key=room.key,
                room=room.name,
                sender=client.nick or "",
                sender_key=client.key or "",
                text=request.text,
                ts=ts,
                action=request.action,
                client_msg_id=request.client_msg_id,
            )
        except HistoryError as error:
            self._failed_write(client, error, request.ref)
            return
        room.last_id = message_id
        said = Said(
            id=message_id,
            room=room.name,
            nick=client.nick or "",
            text=request.text,
            ts=ts,
            action=request.action,
        )
        ack = Ack(id=message_id, ts=ts, client_msg_id=request.client_msg_id, ref=request.ref)
        self._pending.append(_Stored(client, encode(ack), request.ref, relay=encode(said), room=room))

    def _tell(self, client: Client, request: Tell) -> None:
        recipient = self.hub.nicks.get(fold(request.to))
        if recipient is None or recipient.nick is None or recipient.key is None:
            client.send(error_frame(ErrorCode.NO_SUCH_NICK, f"{request.to!r} is not online", request.ref))
            return
        ts = self._ts()
        try:
            if self._duplicate(client, request.client_msg_id, request.ref):
                return
            message_id = self.store.add_direct_message(
                sender=client.nick or "",
                sender_key=client.key or "",
                recipient=recipient.nick,
                recipient_key=recipient.key,
                text=request.text,
                ts=ts,
                action=request.action,
                client_msg_id=request.client_msg_id,
            )
        except HistoryError as error:
            self._failed_write(client, error, request.ref)
            return
        told = Told(
            id=message_id,
            nick=client.nick or "",
            to=recipient.nick,
            text=request.text,
            ts=ts,
            action=request.action,
        )
        ack = Ack(id=message_id, ts=ts, client_msg_id=request.client_msg_id, ref=request.ref)
        self._pending.append(
            _Stored(client, encode(ack), request.ref, relay=encode(told), recipient=recipient)
        )

    def _failed_write(self, client: Client, error: HistoryError, ref: int | None) -> None:
        # The whole open transaction is lost: every message held back in it is refused, not just this one.
        pending, self._pending = self._pending, []
        self._history_failed(error, [*pending, _Stored(client, b"", ref)])
