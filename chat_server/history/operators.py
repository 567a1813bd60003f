"""The operators' requests: kick, ban, unban, mute, unmute, op, deop, invite, mode, and the ban list.

`Operators` runs on the history thread only: each request's row in the routing table (chat_server.routes)
names its handler here. Every handler is wrapped by `operator_request`, which flushes (a barrier), checks that
the asker is in the room and one of its operators, and turns a refusal into an `error` frame.
Whether the asker is an operator of the room is `Moderation`'s call (chat_server.history.moderation); each
action changes the room's rules (chat_server.history.rules) and stores a `moderated` history entry in the same
transaction, then is announced to the room; the operator's request is answered with an `ack` (or, for `mode`,
a `room_state`). A refused request is answered with an `error` frame and changes nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from chat_server.config import ServerConfig
from chat_server.hub import Client, Hub, Room
from chat_server.replies import REPLY_MARGIN, clip, error_frame
from chat_server.storage import HistoryError, HistoryStore
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import (
    Ack,
    Ban,
    BanEntry,
    BanList,
    Deop,
    Invite,
    Kick,
    Left,
    ListBans,
    Moderated,
    Mute,
    Op,
    SetMode,
    Unban,
    Unmute,
)
from shared.text import fold

from .moderation import Moderation
from .rules import Restriction, RestrictionKind, RoomRules

log = logging.getLogger(__name__)

#: The longest duration a ban or mute may be given, in seconds (ten years); longer ones are refused.
MAX_DURATION = 10 * 366 * 24 * 3600

#: One action to store and announce: (action, target nick, reason, until).
Event = tuple[str, str | None, str | None, int | None]
_Listed = tuple[Restriction, str | None]


class ModerationRefused(Exception):
    """A moderation request is refused: `code` and `message` go back in an `error` frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


R = TypeVar("R", Kick, Ban, Unban, ListBans, Mute, Unmute, Op, Deop, Invite, SetMode)


def operator_request(
    apply: Callable[[Operators, Client, Room, RoomRules, R], None],
) -> Callable[[Operators, Client, R], None]:
    """Make `apply(self, client, room, rules, request)` a handler of the routing table: flush first (a
    barrier), check that `client` is in the room and one of its operators, and answer a refusal."""

    @functools.wraps(apply)
    def handle(self: Operators, client: Client, request: R) -> None:
        self.flush()
        try:
            room, rules = self.gate(client, request.room)
            apply(self, client, room, rules, request)
        except ModerationRefused as refused:
            client.send(error_frame(refused.code, refused.message, request.ref))

    return handle


class Operators:
    """Applies the operators' requests to the room rules, the history and the hub (history thread only)."""

    def __init__(
        self,
        moderation: Moderation,
        hub: Hub,
        store: HistoryStore,
        config: ServerConfig,
        clock: Callable[[], int],
        send_room_state: Callable[[Client, Room, int | None], None],
        flush: Callable[[], None],
    ) -> None:
        self.moderation = moderation
        self.flush = (
            flush  # commits the open transaction (chat_server.history.messaging): every request here is
        )
        # a barrier
        self.book = moderation.book
        self.hub = hub
        self.store = store
        self.config = config
        self.clock = clock  # the chat's timestamps (ms), which never go backwards
        self.send_room_state = send_room_state  # the answer to `mode`
        self._reply_bytes = config.max_frame - REPLY_MARGIN

    def gate(self, client: Client, name: str) -> tuple[Room, RoomRules]:
        """The room `name` and its rules (lapsed bans and mutes pruned), if `client` is in it and one of its
        operators; else `ModerationRefused`."""
        room = client.rooms.get(fold(name))
        if room is None:
            raise ModerationRefused(ErrorCode.NOT_IN_ROOM, f"you are not in {name!r}")
        if not self.moderation.is_operator(client, room.key):
            raise ModerationRefused(ErrorCode.NOT_OPERATOR, f"you are not an operator of {room.name}")
        rules = self.book.get(room.key)
        rules.prune(self.clock())
        return room, rules

    # -- Requests (each a row of the routing table) -------------------------------------------------------

    @operator_request
    def list_bans(self, client: Client, room: Room, rules: RoomRules, request: ListBans) -> None:
        """Answer with the room's bans (bounded by `max_list` and the frame size)."""
        client.send(self._ban_list(room, rules, request.ref))

    @operator_request
    def kick(self, client: Client, room: Room, rules: RoomRules, request: Kick) -> None:
        target = self.member(room, request.nick)
        self.protect(client, target.key or "", "kick")
        event: Event = ("kick", target.nick, request.reason, None)
        self._act(client, room, request.ref, [event], _nothing)
        reason = f"kicked by {client.nick}" + (f": {request.reason}" if request.reason else "")
        self.remove(room, [target], reason)

    @operator_request
    def mute(self, client: Client, room: Room, rules: RoomRules, request: Mute) -> None:
        key = fold(request.nick)
        self.protect(client, key, "mute")
        until = self.until(request.duration)
        self.check_room_for(rules.mutes, key, "mutes")
        mute = Restriction(request.nick, client.nick or "", self.clock(), until, request.reason)
        event: Event = ("mute", request.nick, request.reason, until)
        self._act(client, room, request.ref, [event], lambda: self.book.restrict(rules, "mute", key, mute))

    @operator_request
    def unmute(self, client: Client, room: Room, rules: RoomRules, request: Unmute) -> None:
        key = fold(request.nick)
        if key not in rules.mutes:
            raise ModerationRefused(ErrorCode.NO_SUCH_NICK, f"{request.nick} is not muted in {room.name}")
        event: Event = ("unmute", request.nick, None, None)
        self._act(client, room, request.ref, [event], lambda: self.book.lift(rules, "mute", key))

    @operator_request
    def op(self, client: Client, room: Room, rules: RoomRules, request: Op) -> None:
        target = self.online(request.nick)
        if target.account is not None:
            self.check_room_for(rules.ops, target.account, "stored operators")
        event: Event = ("op", target.nick, None, None)
        self._act(
            client,
            room,
            request.ref,
            [event],
            lambda: self.book.grant(rules, "op", target.id, target.account),
        )

    @operator_request
    def invite(self, client: Client, room: Room, rules: RoomRules, request: Invite) -> None:
        target = self.online(request.nick)
        if room.key in target.rooms:
            raise ModerationRefused(ErrorCode.ALREADY_IN_ROOM, f"{target.nick} is in {room.name} already")
        if target.account is not None:
            self.check_room_for(rules.invited, target.account, "invitations")
        event: Event = ("invite", target.nick, None, None)

        def grant() -> None:
            self.book.grant(rules, "invite", target.id, target.account)

        for frame in self._act(client, room, request.ref, [event], grant):
            target.send(frame)  # the invited nick hears of it too

    @operator_request
    def ban(self, client: Client, room: Room, rules: RoomRules, request: Ban) -> None:
        key = fold(request.nick)
        self.protect(client, key, "ban")
        until = self.until(request.duration)
        restriction = Restriction(request.nick, client.nick or "", self.clock(), until, request.reason)
        kind: RestrictionKind
        if request.by_address:
            target = self.online(request.nick)
            kind, subject, action = "ban_address", target.peer, "ban_address"
            if target is client or subject == client.peer:
                raise ModerationRefused(ErrorCode.FORBIDDEN, "that would ban your own address")
        else:
            kind, subject, action = "ban", key, "ban"
        table = rules.table(kind)
        self.check_room_for(table, subject, "bans")
        event: Event = (action, request.nick, request.reason, until)
        self._act(
            client, room, request.ref, [event], lambda: self.book.restrict(rules, kind, subject, restriction)
        )
        if kind == "ban":
            banned = [m for m in room.members if m.key == key and m is not client]
        else:
            banned = [
                m
                for m in room.members
                if m.peer == subject and m is not client and not self.moderation.is_operator(m, room.key)
            ]
        reason = f"banned by {client.nick}" + (f": {request.reason}" if request.reason else "")
        self.remove(room, banned, reason)

    @operator_request
    def unban(self, client: Client, room: Room, rules: RoomRules, request: Unban) -> None:
        if (request.nick is None) == (request.address is None):
            raise ModerationRefused(ErrorCode.INVALID_FIELD, "give exactly one of 'nick' and 'address'")
        kind: RestrictionKind
        if request.nick is not None:
            kind, subject, action = "ban", fold(request.nick), "unban"
        else:
            kind, subject, action = "ban_address", request.address or "", "unban_address"
        ban = rules.table(kind).get(subject)
        if ban is None:
            shown = request.nick if request.nick is not None else request.address
            raise ModerationRefused(ErrorCode.NO_SUCH_NICK, f"no ban of {shown} in {room.name}")
        event: Event = (action, ban.nick, None, None)
        self._act(client, room, request.ref, [event], lambda: self.book.lift(rules, kind, subject))

    @operator_request
    def deop(self, client: Client, room: Room, rules: RoomRules, request: Deop) -> None:
        _key, target, account, shown = self.deop_target(room, rules, request.nick)
        conn_id = target.id if target is not None else None
        revoke = lambda: self.book.revoke(rules, "op", conn_id, account)  # noqa: E731
        self._act(client, room, request.ref, [("deop", shown, None, None)], revoke)

    @operator_request
    def set_mode(self, client: Client, room: Room, rules: RoomRules, request: SetMode) -> None:
        events: list[Event] = []
        topic_lock, invite_only, join_key = rules.topic_lock, rules.invite_only, rules.join_key
        if request.topic_lock is not None and request.topic_lock != topic_lock:
            topic_lock = request.topic_lock
            events.append(("lock_topic" if topic_lock else "unlock_topic", None, None, None))
        if request.invite_only is not None and request.invite_only != invite_only:
            invite_only = request.invite_only
            events.append(("invite_only" if invite_only else "open", None, None, None))
        if request.key is not None and (request.key or None) != join_key:
            join_key = request.key or None
            events.append(("set_key" if join_key else "clear_key", None, None, None))  # never the key itself

        def change() -> None:
            rules.topic_lock, rules.invite_only, rules.join_key = topic_lock, invite_only, join_key
            self.book.save_modes(rules)

        if events:
            self._act(client, room, None, events, change)
        self.send_room_state(client, room, request.ref)

    # -- Helpers -------------------------------------------------------------------------------------------

    def deop_target(
        self, room: Room, rules: RoomRules, nick: str, session_elsewhere: bool = False
    ) -> tuple[str, Client | None, str, str]:
        """Whose right a `deop` of `nick` takes: (its key, its session here or None, the account of its stored
        right, its nick as shown). Refused for a server admin, and for a nick that is not an operator of the
        room (`session_elsewhere`: in cluster mode, its session's right on another server, from the
        roster)."""
        key = fold(nick)
        target = self.hub.nicks.get(key)
        if target is not None and self.moderation.is_admin(target):
            raise ModerationRefused(
                ErrorCode.FORBIDDEN, f"{target.nick} is a server admin (set in the server's config)"
            )
        in_session = (target is not None and target.id in rules.session_ops) or session_elsewhere
        account = target.account if target is not None and target.account is not None else key
        if not in_session and account not in rules.ops:
            raise ModerationRefused(ErrorCode.NO_SUCH_NICK, f"{nick} is not an operator of {room.name}")
        shown = target.nick if target is not None and target.nick else nick
        return key, target, account, shown

    def member(self, room: Room, nick: str) -> Client:
        key = fold(nick)
        for member in room.members:
            if member.key == key:
                return member
        raise ModerationRefused(ErrorCode.NO_SUCH_NICK, f"{nick} is not in {room.name}")

    def online(self, nick: str) -> Client:
        target = self.hub.nicks.get(fold(nick))
        if target is None or target.nick is None:
            raise ModerationRefused(ErrorCode.NO_SUCH_NICK, f"{nick} is not online")
        return target

    def protect(self, client: Client, target_key: str, action: str) -> None:
        """A verified server admin is out of reach of room operators (another admin may still act on them).

        Someone merely using an admin's nick is not protected; a ban of that nick never holds the verified
        admin (admins pass every ban), so it needs no refusal either.
        """
        target = self.hub.nicks.get(target_key)
        if self.moderation.is_admin(client):
            return
        if target is not None and self.moderation.is_admin(target):
            raise ModerationRefused(ErrorCode.FORBIDDEN, f"a room operator cannot {action} a server admin")

    def until(self, duration: int | None) -> int | None:
        if duration is None:
            return None
        if not 0 < duration <= MAX_DURATION:
            raise ModerationRefused(ErrorCode.INVALID_FIELD, f"a duration is 1 to {MAX_DURATION} seconds")
        return self.clock() + duration * 1000

    def check_room_for(self, table: dict[str, Restriction] | set[str], key: str, what: str) -> None:
        limit = self.config.max_moderation_entries
        if key not in table and len(table) >= limit:
            raise ModerationRefused(
                ErrorCode.TOO_LONG, f"the room has {limit} {what} already (max_moderation_entries)"
            )

    def _act(
        self, client: Client, room: Room, ref: int | None, events: list[Event], change: Callable[[], object]
    ) -> list[bytes]:
        """Change the rules and store the events in one transaction; then announce them and ack the request.

        Returns the announced frames. On a history failure nothing changes and the operator gets an error.
        """
        ts = self.clock()
        try:
            change()
            ids = [self.store_event(room, client.nick or "", event, ts) for event in events]
            self.store.commit()
        except HistoryError as error:
            self.moderation.failed(error)
            raise ModerationRefused(ErrorCode.HISTORY_UNAVAILABLE, "the action could not be stored") from None
        frames = [
            self.announce(room, client.nick or "", message_id, event, ts)
            for message_id, event in zip(ids, events, strict=True)
        ]
        log.info("conn=%d event=moderation room=%r actions=%s", client.id, room.name, [e[:2] for e in events])
        if ref is not None:
            client.send(encode(Ack(id=ids[-1], ts=ts, ref=ref)))
        return frames

    def store_event(
        self, room: Room, actor: str, event: Event, ts: int, message_id: int | None = None
    ) -> int:
        """Store one moderation entry in the open transaction (with `message_id` if given: the cluster's
        stream sequence); its id, which becomes the room's newest."""
        action, target, reason, until = event
        stored = self.store.add_moderation(
            room_key=room.key,
            room=room.name,
            actor=actor,
            action=action,
            target=target,
            reason=reason,
            until=until,
            ts=ts,
            entry_id=message_id,
        )
        room.last_id = stored
        return stored

    def announce(self, room: Room, actor: str, message_id: int, event: Event, ts: int) -> bytes:
        """Tell the room's members of one stored moderation entry; the frame."""
        action, target, reason, until = event
        moderated = Moderated(
            id=message_id,
            room=room.name,
            nick=actor,
            action=action,
            ts=ts,
            target=target,
            reason=reason,
            until=until,
        )
        frame = encode(moderated)
        self.hub.publish(room, frame)
        return frame

    def remove(self, room: Room, members: list[Client], reason: str) -> None:
        """Put `members` out of `room`: each is announced as `left` (to them too) with `reason`."""
        for member in members:
            if room.key not in member.rooms:
                continue  # another session of a nick put out already: the nick left with it
            left = Left(room=room.name, nick=member.nick or "", ts=self.clock(), reason=clip(reason))
            self.hub.publish(room, encode(left))
            self.hub.leave(member, room)
        self.moderation.left(room)

    def _ban_list(self, room: Room, rules: RoomRules, ref: int | None) -> bytes:
        entries: list[BanEntry] = []
        size = 0
        bans: list[_Listed] = [(ban, None) for ban in rules.bans.values()]
        bans += [(ban, address) for address, ban in rules.address_bans.items()]
        bans.sort(key=lambda pair: pair[0].ts)
        more = False
        for ban, address in bans:
            size += 96 + sum(len(s.encode()) for s in (ban.nick, ban.by, ban.reason or "", address or ""))
            if size > self._reply_bytes or len(entries) >= self.config.max_list:
                more = True
                break
            entries.append(
                BanEntry(
                    nick=ban.nick, by=ban.by, ts=ban.ts, address=address, until=ban.until, reason=ban.reason
                )
            )
        return encode(BanList(room=room.name, bans=tuple(entries), more=more, ref=ref))


def _nothing() -> None:
    """A change of no rule (a kick changes membership only)."""
