"""Moderation shared across the cluster: kick, ban, unban, mute, unmute, op, deop, invite, mode as records.

`SharedModeration` runs on the history thread. An operator's request is checked on the server it reaches with
the single server's rules (`Operators.gate`: in the room, one of its operators; `Operators.until`,
`check_room_for`, ...), then published to the log as a ``moderate`` record naming the room, the action, its
target and what it stores (the ban or mute, the mode). Nothing is answered yet. Every server, the origin
included, applies the record in stream order (`_apply`):

1. it re-checks what the replicated state alone decides, against the rules the earlier records made (the
   author's stored right or admin standing, an `unban` of a ban lifted meanwhile, a full table), so every
   server decides alike; a refused record changes nothing and its requester gets the single server's error;
2. it changes its copy of the room's rules (`RulesBook`: the same tables as a single server, so joins, speech
   and operator checks read the same code) and stores the `moderated` entry, whose id is the record's stream
   sequence, in the open transaction;
3. after the commit it tells its local members of the room (`moderated`), and tells a locally connected
   invited nick; the origin answers its requester (`ack`, or `room_state` for `mode`).

A kicked or banned nick leaves the cluster's roster (chat_server.cluster.presence): every server takes its
seat as it applies the record (`ClusterPresence.unseat`, in the same transaction), and after the commit tells
its local members of the room (`left`, with the single server's reason) and takes the nick's local sessions
out (`ClusterPresence.show_out`). A kick names a member of the roster, checked on the origin and again as
every server applies it (a nick that left meanwhile: `no_such_nick`, alike everywhere). An address ban puts
out every member whose join carried that address (`Seat.address`), but the room's operators and its author.

Rights of a *session* (a nick that is not registered, a room's creator) belong to one connection: an `op` or
`invite` gives the session right to the connection on the server where the nick is connected, and the stored
right (for a registered nick, decided from the replicated `accounts` table) on every server. Whether a nick in
the room is an operator by its session's right is also in the cluster's roster (`Seat.op`, set by the join
that created the room, by a join of a session given `op` before, by `op` and `deop` records), which every
server holds alike: `who` marks the same operators everywhere, a `deop` may name a session operator on
another server, and the author of a record acting by a session right is re-checked against it as every server
applies the record. A room's registered creator is crowned through the log too (a ``crown`` record: the first
registered creator of a room without stored operators keeps the right).

What the origin cannot see: the connections of other servers. An `op` or `invite` may name a nick connected
elsewhere; an address ban names the address of the nick's session here, or the address its join into the
room carried (`Seat.address`) if it is in the room on another server.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from chat_server.history.accounts import load
from chat_server.history.operators import Event, ModerationRefused, Operators
from chat_server.history.rules import Restriction, RestrictionKind, RoomRules
from chat_server.hub import Client, Room
from chat_server.replies import error_frame
from chat_server.storage import HistoryError
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Ack, Ban, Deop, Invite, Kick, Mute, Op, SetMode, Unban, Unmute
from shared.text import fold

from .messaging import Awaiting, ClusterMessages
from .presence import ClusterPresence, Seat

log = logging.getLogger(__name__)

R = TypeVar("R", Kick, Ban, Unban, Mute, Unmute, Op, Deop, Invite, SetMode)

#: What a record does locally after the commit (its announcements, the members it puts out).
Then = Callable[[], None]


def shared_request(
    check: Callable[[SharedModeration, Client, Room, RoomRules, R], None],
) -> Callable[[SharedModeration, Client, R], None]:
    """Make `check(self, client, room, rules, request)` a handler of the routing table: flush first (a
    barrier), check as a single server does that `client` is in the room and one of its operators, and
    answer a refusal."""

    @functools.wraps(check)
    def handle(self: SharedModeration, client: Client, request: R) -> None:
        self.messages.flush()
        try:
            room, rules = self.operators.gate(client, request.room)
            check(self, client, room, rules, request)
        except ModerationRefused as refused:
            client.send(error_frame(refused.code, refused.message, request.ref))
        except HistoryError as error:
            log.warning("conn=%d event=moderation_unavailable error=%s", client.id, error)
            client.send(
                error_frame(ErrorCode.HISTORY_UNAVAILABLE, "registered nicks are unavailable", request.ref)
            )

    return handle


class SharedModeration:
    """The cluster's route of the operators' requests, and the appliers of their records."""

    def __init__(self, operators: Operators, messages: ClusterMessages, roster: ClusterPresence) -> None:
        self.operators = operators
        #: Who is in which room across the cluster: a kick or ban takes the nick's seat.
        self.roster = roster
        self.moderation = operators.moderation
        self.book = operators.book
        self.hub = operators.hub
        self.messages = messages
        self.store = messages.store
        messages.applies("moderate", self._apply)
        messages.applies("crown", self._apply_crown)
        messages.applies("rules", self._apply_rules)
        self.moderation.crown = self._crown

    # -- The origin: the single server's checks, then a record ---------------------------------------------

    @shared_request
    def kick(self, client: Client, room: Room, rules: RoomRules, request: Kick) -> None:
        key = fold(request.nick)
        seat = self._member(room, key, request.nick)
        self._protect(client, key, "kick")
        self._publish(client, room, request.ref, ("kick", seat.nick, request.reason, None), subject=key)

    @shared_request
    def mute(self, client: Client, room: Room, rules: RoomRules, request: Mute) -> None:
        key = fold(request.nick)
        self._protect(client, key, "mute")
        until = self.operators.until(request.duration)
        self.operators.check_room_for(rules.mutes, key, "mutes")
        self._publish(client, room, request.ref, ("mute", request.nick, request.reason, until), subject=key)

    @shared_request
    def unmute(self, client: Client, room: Room, rules: RoomRules, request: Unmute) -> None:
        key = fold(request.nick)
        if key not in rules.mutes:
            raise ModerationRefused(ErrorCode.NO_SUCH_NICK, f"{request.nick} is not muted in {room.name}")
        self._publish(client, room, request.ref, ("unmute", request.nick, None, None), subject=key)

    @shared_request
    def ban(self, client: Client, room: Room, rules: RoomRules, request: Ban) -> None:
        key = fold(request.nick)
        self._protect(client, key, "ban")
        until = self.operators.until(request.duration)
        action: RestrictionKind
        if request.by_address:
            action, subject = "ban_address", self._address(room, key, request.nick)
            if key == client.key or subject == client.peer:
                raise ModerationRefused(ErrorCode.FORBIDDEN, "that would ban your own address")
        else:
            action, subject = "ban", key
        self.operators.check_room_for(rules.table(action), subject, "bans")
        self._publish(
            client, room, request.ref, (action, request.nick, request.reason, until), subject=subject
        )

    @shared_request
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
        self._publish(client, room, request.ref, (action, ban.nick, None, None), subject=subject)

    @shared_request
    def op(self, client: Client, room: Room, rules: RoomRules, request: Op) -> None:
        key, shown = self._named(request.nick)
        if self._registered(key):
            self.operators.check_room_for(rules.ops, key, "stored operators")
        self._publish(client, room, request.ref, ("op", shown, None, None), subject=key)

    @shared_request
    def invite(self, client: Client, room: Room, rules: RoomRules, request: Invite) -> None:
        key, shown = self._named(request.nick)
        target = self.hub.nicks.get(key)
        if target is not None and room.key in target.rooms:
            raise ModerationRefused(ErrorCode.ALREADY_IN_ROOM, f"{shown} is in {room.name} already")
        if self._registered(key):
            self.operators.check_room_for(rules.invited, key, "invitations")
        self._publish(client, room, request.ref, ("invite", shown, None, None), subject=key)

    @shared_request
    def deop(self, client: Client, room: Room, rules: RoomRules, request: Deop) -> None:
        # A session right of a nick in the room on another server is in the cluster's roster.
        seat = self.roster.seat(room.key, fold(request.nick))
        elsewhere = seat is not None and seat.op
        key, _target, account, shown = self.operators.deop_target(room, rules, request.nick, elsewhere)
        self._publish(client, room, request.ref, ("deop", shown, None, None), subject=key, account=account)

    @shared_request
    def set_mode(self, client: Client, room: Room, rules: RoomRules, request: SetMode) -> None:
        changes: list[tuple[Event, str, bool | str | None]] = []
        if request.topic_lock is not None and request.topic_lock != rules.topic_lock:
            event: Event = ("lock_topic" if request.topic_lock else "unlock_topic", None, None, None)
            changes.append((event, "topic_lock", request.topic_lock))
        if request.invite_only is not None and request.invite_only != rules.invite_only:
            changes.append(
                (
                    ("invite_only" if request.invite_only else "open", None, None, None),
                    "invite_only",
                    request.invite_only,
                )
            )
        if request.key is not None and (request.key or None) != rules.join_key:
            key = request.key or None
            changes.append((("set_key" if key else "clear_key", None, None, None), "join_key", key))
        if not changes:
            self.operators.send_room_state(client, room, request.ref)
            return
        # One record (and one entry, with its own id) per mode changed; the last one answers `room_state`.
        for index, (event, field, value) in enumerate(changes):
            last = index == len(changes) - 1
            self._publish(client, room, request.ref, event, mode=field, value=value, last=last)

    # -- Helpers of the origin -----------------------------------------------------------------------------

    def _publish(self, client: Client, room: Room, ref: int | None, event: Event, **fields: Any) -> None:
        action, target, reason, until = event
        record = {
            "k": "moderate",
            "room_key": room.key,
            "room": room.name,
            "action": action,
            "target": target,
            "reason": reason,
            "until": until,
            "by": self._authority(client, room),
            **fields,
        }
        self.messages.publish(record, Awaiting(client, ref))

    def _authority(self, client: Client, room: Room) -> str:
        """Why `client` is an operator of `room`: ``admin`` (a server admin), ``account`` (a stored right
        of its registered nick) or ``session`` (a right of this connection, known on this server only)."""
        if self.moderation.is_admin(client):
            return "admin"
        rules = self.book.rooms.get(room.key)
        if client.account is not None and rules is not None and client.account in rules.ops:
            return "account"
        return "session"

    def _address(self, room: Room, key: str, nick: str) -> str:
        """The address of the nick `key`: its session's here, or, for a nick in `room` on another server, the
        one its join carried (the roster's); `no_such_nick` if neither is known."""
        target = self.hub.nicks.get(key)
        if target is not None and target.nick is not None:
            return target.peer
        seat = self.roster.seat(room.key, key)
        if seat is None or not seat.address:
            raise ModerationRefused(
                ErrorCode.NO_SUCH_NICK, f"{nick} is not online here and not in {room.name} anywhere"
            )
        return seat.address

    def _member(self, room: Room, key: str, nick: str) -> Seat:
        """The seat of `nick` (its key `key`) in `room`, on whichever server it is; `no_such_nick` if it is
        in the room nowhere (as a single server refuses it)."""
        seat = self.roster.seat(room.key, key)
        if seat is None:
            raise ModerationRefused(ErrorCode.NO_SUCH_NICK, f"{nick} is not in {room.name}")
        return seat

    def _named(self, nick: str) -> tuple[str, str]:
        """The key of `nick` and how to show it (as its holder here writes it, if it is connected here)."""
        key = fold(nick)
        target = self.hub.nicks.get(key)
        return key, target.nick if target is not None and target.nick else nick

    def _registered(self, key: str) -> bool:
        return load(self.store.connection, key) is not None

    def _protect(self, client: Client, key: str, action: str) -> None:
        """A server admin is out of reach of room operators: checked as on a single server for a nick
        connected here; a nick connected elsewhere is an admin if its nick is registered and in `admins`
        (only its owner can hold a registered nick)."""
        if key in self.hub.nicks or self.moderation.is_admin(client):
            self.operators.protect(client, key, action)
            return
        if key in self.moderation.admins and self._registered(key):
            raise ModerationRefused(ErrorCode.FORBIDDEN, f"a room operator cannot {action} a server admin")

    def _crown(self, rules: RoomRules, client: Client) -> None:
        """The creator of a room: its session right now, here; its stored right through the log."""
        self.book.grant(rules, "op", client.id, None)
        if client.account is not None:
            self.messages.publish({"k": "crown", "room_key": rules.key, "account": client.account}, None)

    # -- Every server: applying the records ------------------------------------------------------------------

    def _apply_crown(self, _seq: int, record: dict[str, Any], _waiting: Awaiting | None) -> None:
        rules = self.book.get(record["room_key"])
        if not rules.ops:  # the first registered creator of a room without stored operators
            self.book.grant(rules, "op", None, record["account"])
            self.messages.after_commit_do(_nothing, None, None)

    def _apply_rules(self, _seq: int, record: dict[str, Any], _waiting: Awaiting | None) -> None:
        """A room's stored rules as a single server had them (`--migrate`, chat_server.cluster.migrate)."""
        rules = self.book.get(record["room_key"])
        if record["modes"] is not None:
            rules.topic_lock, rules.invite_only, rules.join_key = record["modes"]
            self.book.save_modes(rules)
        for kind, account in record["grants"]:
            if kind in ("op", "invite"):
                self.book.grant(rules, kind, None, account)
        for kind, target, nick, by, reason, ts, until in record["restrictions"]:
            if kind in ("ban", "ban_address", "mute"):
                self.book.restrict(rules, kind, target, Restriction(nick, by, ts, until, reason))
        self.messages.after_commit_do(_nothing, None, None)

    def _apply(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        room = self.hub.add_room(record["room_key"], record["room"])
        rules = self.book.get(room.key)
        requester = waiting.client if waiting is not None else None
        ref = waiting.ref if waiting is not None else None
        try:
            self._still_operator(record, room, rules)
            then = self._change(record, room, rules, requester)
        except ModerationRefused as refused:
            if requester is not None:
                self.messages.hold(requester, error_frame(refused.code, refused.message, ref), ref)
            return
        actor, ts = record["nick"], record["ts"]
        event: Event = (record["action"], record["target"], record["reason"], record["until"])
        self.operators.store_event(room, actor, event, ts, seq)

        def deliver() -> None:
            frame = self.operators.announce(room, actor, seq, event, ts)
            if requester is not None:
                if record["action"] in _MODES:
                    if record["last"]:  # the last record of one `mode` answers it
                        self.operators.send_room_state(requester, room, ref)
                elif ref is not None:
                    requester.send(encode(Ack(id=seq, ts=ts, ref=ref)))
            then(frame)

        self.messages.after_commit_do(deliver, requester, ref)

    def _still_operator(self, record: dict[str, Any], room: Room, rules: RoomRules) -> None:
        """Refuse the record if its author's right, as the replicated state shows it, is gone (a `deop` of
        its registered nick applied first): alike on every server. A session right is known only on its
        own server, which checked it when the request came."""
        by, key = record.get("by", "session"), record["nick_key"]
        seat = self.roster.seat(room.key, key)
        if (
            (by == "account" and key not in rules.ops)
            or (by == "admin" and key not in self.moderation.admins)
            or (by == "session" and (seat is None or not seat.op))
        ):
            raise ModerationRefused(ErrorCode.NOT_OPERATOR, f"you are not an operator of {room.name}")

    def _change(
        self, record: dict[str, Any], room: Room, rules: RoomRules, requester: Client | None
    ) -> Callable[[bytes], None]:
        """Re-check `record` against the rules and change them (in the open transaction); what to do after
        the commit, given the `moderated` frame. `ModerationRefused` if the rules refuse it now."""
        action, subject = record["action"], record.get("subject", "")
        actor = record["nick"]
        if action == "kick":
            self._member(room, subject, record["target"])  # it may have left since the origin checked
            reason = f"kicked by {actor}" + (f": {record['reason']}" if record["reason"] else "")
            return self._put_out(room, subject, reason, record["ts"])
        if action in ("ban", "ban_address", "mute"):
            kind = cast(RestrictionKind, action)
            self.operators.check_room_for(rules.table(kind), subject, "mutes" if kind == "mute" else "bans")
            restriction = Restriction(
                record["target"], actor, record["ts"], record["until"], record["reason"]
            )
            self.book.restrict(rules, kind, subject, restriction)
            if kind == "mute":
                return _nothing_after
            reason = f"banned by {actor}" + (f": {record['reason']}" if record["reason"] else "")
            if kind == "ban_address":
                return self._put_out_from(room, subject, record["nick_key"], reason, record["ts"])
            if subject == record["nick_key"]:
                return _nothing_after  # a ban never puts its author out
            return self._put_out(room, subject, reason, record["ts"])
        if action in ("unban", "unban_address", "unmute"):
            lifted = cast(
                RestrictionKind, {"unban": "ban", "unban_address": "ban_address"}.get(action, "mute")
            )
            if self.book.lift(rules, lifted, subject) is None:  # lifted by an earlier record meanwhile
                shown = record["target"]
                missing = (
                    f"{shown} is not muted in {room.name}"
                    if lifted == "mute"
                    else f"no ban of {shown} in {room.name}"
                )
                raise ModerationRefused(ErrorCode.NO_SUCH_NICK, missing)
            return _nothing_after
        if action in ("op", "invite"):
            holder = self.hub.nicks.get(subject)  # the nick's session right lives on its own server
            account = subject if self._registered(subject) else None
            if account is not None:
                table = rules.ops if action == "op" else rules.invited
                self.operators.check_room_for(
                    table, account, "stored operators" if action == "op" else "invitations"
                )
            self.book.grant(
                rules, "op" if action == "op" else "invite", holder.id if holder else None, account
            )
            if action == "op":
                self.roster.set_op(room.key, subject, True)
            if action == "op" or holder is None:
                return _nothing_after
            invited: Client = holder

            def tell_invited(frame: bytes) -> None:  # the invited nick hears of it too
                if room.key not in invited.rooms:
                    invited.send(frame)

            return tell_invited
        if action == "deop":
            holder = self.hub.nicks.get(subject)
            self.book.revoke(rules, "op", holder.id if holder else None, record["account"])
            self.roster.set_op(room.key, subject, False)
            return _nothing_after
        if action in _MODES:
            if record["mode"] not in ("topic_lock", "invite_only", "join_key"):
                raise ModerationRefused(ErrorCode.INVALID_FIELD, f"unknown mode {record['mode']!r}")
            setattr(rules, record["mode"], record["value"])
            self.book.save_modes(rules)
            return _nothing_after
        raise ModerationRefused(ErrorCode.INVALID_FIELD, f"unknown moderation action {action!r}")

    def _put_out(self, room: Room, key: str, reason: str, ts: int) -> Callable[[bytes], None]:
        """Take the seat of the nick `key` in `room` now (in the record's transaction); after the commit, its
        `left` to this server's members and its sessions here out of the room."""
        seat = self.roster.unseat(room.key, key)
        if seat is None:
            return _nothing_after  # banned while in the room nowhere

        def show_out(_frame: bytes) -> None:
            self.roster.show_out(room.key, key, seat, reason, ts)

        return show_out

    def _put_out_from(
        self, room: Room, address: str, author: str, reason: str, ts: int
    ) -> Callable[[bytes], None]:
        """An address ban: take the seats of the room's members that joined from `address` (its operators
        excepted, and the ban's `author`), from the roster every server holds alike; after the commit, their
        `left` and their sessions here out."""
        seats = self.roster.seats(room.key)
        banned = [
            key
            for key, seat in seats.items()
            if seat.address == address and key != author and not self.roster.is_op(room.key, key, seat)
        ]
        outs = [self._put_out(room, key, reason, ts) for key in banned]

        def show_out(frame: bytes) -> None:
            for out in outs:
                out(frame)

        return show_out


#: The actions of `mode` (each its own record).
_MODES = frozenset({"lock_topic", "unlock_topic", "invite_only", "open", "set_key", "clear_key"})


def _nothing() -> None:
    """No local delivery: the record's rows commit with the batch."""


def _nothing_after(_frame: bytes) -> None:
    """Nothing to do after the announcement."""
