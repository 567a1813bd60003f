"""Room membership, away messages and sign-offs shared by the servers of a cluster (history thread only).

On a single server the hub is the whole truth: who is in which room, who is away. In cluster mode each
server's hub holds only its own clients, and `ClusterPresence` keeps, besides them, the *roster*: for each
room, every nick in it anywhere in the cluster (its seat: which server holds it, the log's sequence of its
join), in the order of the joins in the log; and every nick's away message. So `room_state`, `who` and the
room list's counts (`Room.elsewhere`) are the same on every server.

Every change is a record of the cluster's log (chat_server.cluster.messaging), applied by every server in
stream order, as the brief of issue 19 (docs/cluster.md, "Design") says:

* ``join``, ``leave``, ``away``: the server the client is on checks the request as a single server does
  (chat_server.history.rooms, chat_server.history.chat), then publishes it; nothing changes yet. Each server
  applies it when the log brings it back: the seat, the local hub (on the client's own server: the client
  enters its room and gets `room_state` and backfill), and the frame (`joined`, `left`, `away_changed`) to its
  own clients that should hear of it. The requester is answered then. Each applier is a *barrier*
  (`ClusterMessages.barrier`), as a join is on a single server: the messages before it in the log are
  committed and delivered first, so every member on every server sees the change at the same place among
  the room's messages, and a joiner gets each message once (in its backfill or live).
* ``signoff``: the last session of a nick ended on its server, which takes it out of its own hub at once
  (the nick is free there) and publishes the sign-off; every server removes its seats and tells its clients
  that shared a room with it (`signed_off`, once each).
* ``gone``: a server died (`kill -9`): its entry in the servers bucket (chat_server.cluster.link) expired
  after `server_lease`. Every second the ``nats`` thread compares the servers that hold seats with the live
  ones and reports the dead (`Vanished`); the history thread publishes one ``gone`` record per dead server,
  with the `Nats-Msg-Id` ``gone:ORIGIN``, so JetStream keeps one even when several survivors publish it.
  Applying it signs off each of its nicks (one `signed_off` each). A server that restarts has a new origin:
  it publishes ``gone`` for its previous life's origin (kept in `cluster_self`) as it starts.

A client whose requests come while one of its presence records is still on its way (a `say` pipelined
right after a `join`) has them *held* here and applied, in order, once the record is applied: the client
sees what a single server does (its `say` is accepted, after its `join`).

A nick that moves (a client failing over with its resume token: chat_server.cluster.nicks): its old server
ends the old session and publishes nothing; the new server's joins find the seat held by the old server and
move it (`origin`), announcing nothing: the others see the member once. Seats left with the old server
(rooms the client did not join again) are signed off by it after `MOVE_GRACE` seconds.

The roster lives in the local SQLite copy (`cluster_seats`, `cluster_away`), written in the same transaction
as the log's position (`cluster_log.applied`): a restarted server has exactly the roster of the records it
applied, and goes on from there (docs/cluster.md argues it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chat_server.history.accounts import load
from chat_server.history.chat import Chat, Disconnect
from chat_server.history.presence import AWAY_ABSENT, Returning
from chat_server.hub import Client, Room
from chat_server.replies import answer, clip
from chat_server.routes import Bound
from shared.codec import encode
from shared.messages import AwayChanged, Joined, Left, Member, SignedOff

from .link import Published, Replicated
from .messaging import Awaiting, ClusterMessages
from .nicks import NickLost

if TYPE_CHECKING:
    from .link import NatsLink

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_seats (
    room_key TEXT NOT NULL,
    nick_key TEXT NOT NULL,
    room     TEXT NOT NULL,     -- the room's name as shown
    nick     TEXT NOT NULL,
    origin   TEXT NOT NULL,     -- the server holding the nick (its id in the servers bucket)
    since    INTEGER NOT NULL,  -- the log's sequence of the join: the room's people are listed in this order
    op       INTEGER NOT NULL,  -- an operator of the room by a session right (its creator, or given `op`)
    address  TEXT NOT NULL DEFAULT '',  -- the address its session joined from (for address bans)
    PRIMARY KEY (room_key, nick_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cluster_away (
    nick_key TEXT PRIMARY KEY,
    message  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cluster_absent (
    nick_key  TEXT PRIMARY KEY,
    left_id   INTEGER NOT NULL,  -- the log's sequence when it went: its direct messages resume after it
    auto_away INTEGER NOT NULL   -- its away message is the server's (cleared when it comes back)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cluster_self (
    stream TEXT PRIMARY KEY,
    origin TEXT NOT NULL        -- this server's id when it last started: gone once it starts again
) WITHOUT ROWID;
"""

#: Seconds between two comparisons of the servers holding seats with the live ones (``nats`` thread).
ROUND = 1.0
#: Seconds a nick that moved to another server keeps the seats it did not take there, before its old server
#: signs them off (the client joins its rooms again right after its failover login).
MOVE_GRACE = 15.0
#: The reason in the `signed_off` of the members of a server that died.
GONE_REASON = "their server went away"
#: The origin of the seats of an always-on nick none of whose sessions is connected to any server (absent):
#: no server holds them, so no server's death signs it off.
ABSENT = ""


@dataclass(slots=True)
class Seat:
    """One nick in one room, anywhere in the cluster."""

    nick: str
    origin: str
    since: int
    #: An operator of the room by a right of its session (the room's creator, or given `op`): known to every
    #: server alike, as the records that give and take it (join, `op`, `deop`) are applied in the log's order.
    #: A stored right of a registered nick is in the room's rules (`RoomRules.ops`), not here.
    op: bool
    #: The address its session joined from, which only its own server sees: in the record, so an address ban
    #: made on any server puts out the same members everywhere (chat_server.cluster.moderation).
    address: str = ""


@dataclass(slots=True)
class Joining(Awaiting):
    """A join published and not applied yet: how the joiner asked for its backfill."""

    after: int | None = None
    backfill: int | None = None


@dataclass(slots=True)
class Coming(Awaiting):
    """An absent nick's login, published and not applied yet: where its session resumes each room."""

    after: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Vanished:
    """Internal request (``nats`` thread -> history thread), once a `ROUND`: the servers that hold seats and
    are not alive any more (empty most of the time: the round also reconciles this server's own seats)."""

    origins: frozenset[str]


class ClusterPresence:
    """The cluster's roster and the presence records' publishing and applying (history thread only)."""

    def __init__(self, chat: Chat, messages: ClusterMessages) -> None:
        self.hub = chat.hub
        self.store = chat.store
        self.rooms = chat.rooms
        self.moderation = chat.moderation
        self._messages = messages
        self.origin = messages.origin
        #: Room key -> nick key -> seat, each room's in the log's order of the joins.
        self._seats: dict[str, dict[str, Seat]] = {}
        #: Room key -> its name as shown, for every room with seats (the hub forgets rooms nobody here is in).
        self._names: dict[str, str] = {}
        #: Nick key -> away message, for every nick of the cluster that has one.
        self._away: dict[str, str] = {}
        #: The servers holding seats, replaced whole when it changes (read by the ``nats`` thread's round).
        self.seated_origins: frozenset[str] = frozenset()
        self._per_origin: Counter[str] = Counter()  # how many seats each server holds
        self._in_flight: dict[Client, int] = {}  # records of a client published and not applied yet
        self._joins: dict[int, Client] = {}  # token -> joiner, for joins in flight
        self._held: dict[Client, list[Any]] = {}  # its requests that came meanwhile, in order
        self._ready: list[Client] = []  # clients whose held requests may be applied now
        self._tokens: dict[int, Client] = {}  # the token of each record in flight -> its requester
        self._leaving: dict[int, str] = {}  # token -> nick key, for sign-offs in flight
        self._vanishing: dict[int, str] = {}  # token -> origin, for `gone` records in flight
        self._moved: dict[str, float] = {}  # nick key -> when its session here was taken over elsewhere
        #: `always_on`: a registered nick whose last session ends stays in its rooms, absent.
        self.always_on = chat.config.always_on
        #: The absent nicks of the cluster: where each one's direct messages resume, whether its away is ours.
        self._absent: dict[str, Returning] = {}
        #: Their keys, replaced whole when it changes (read by readers claiming a nick: `is_absent`).
        self.absent_nicks: frozenset[str] = frozenset()
        #: The routing table, for the held requests (set by chat_server.cluster.node).
        self.routes: dict[type, Bound] = {}
        for kind, applier in (
            ("join", self._apply_join),
            ("leave", self._apply_leave),
            ("away", self._apply_away),
            ("signoff", self._apply_signoff),
            ("gone", self._apply_gone),
            ("absent", self._apply_absent),
            ("back", self._apply_back),
        ):
            messages.applies(kind, applier)
        self.store.add_schema(SCHEMA)
        columns = {row[1] for row in self.store.run("PRAGMA table_info(cluster_seats)").fetchall()}
        if "address" not in columns:  # a copy made before seats had addresses
            self.store.run("ALTER TABLE cluster_seats ADD COLUMN address TEXT NOT NULL DEFAULT ''")
        self._load()

    # -- Start ---------------------------------------------------------------------------------------------

    def _load(self) -> None:
        """Read the roster as the records applied so far left it; publish this server's previous life gone."""
        rows = self.store.run(
            "SELECT room_key, nick_key, room, nick, origin, since, op, address FROM cluster_seats"
            " ORDER BY since"
        ).fetchall()
        for room_key, nick_key, name, nick, origin, since, op, address in rows:
            seat = Seat(nick, origin, int(since), bool(op), address)
            self._seats.setdefault(room_key, {})[nick_key] = seat
            self._names[room_key] = name
            self._count_origin(origin, 1)
            # Every seat is another server's (this one has a new origin at each start).
            self.hub.count_elsewhere(self.hub.add_room(room_key, name), 1)
        self._away = dict(self.store.run("SELECT nick_key, message FROM cluster_away").fetchall())
        for key, left_id, auto_away in self.store.run(
            "SELECT nick_key, left_id, auto_away FROM cluster_absent"
        ).fetchall():
            self._absent[key] = Returning(left_id=int(left_id), auto_away=bool(auto_away))
        self.absent_nicks = frozenset(self._absent)
        stream = self._messages.stream
        row = self.store.run("SELECT origin FROM cluster_self WHERE stream = ?", (stream,)).fetchone()
        self.store.run(
            "INSERT INTO cluster_self (stream, origin) VALUES (?, ?)"
            " ON CONFLICT (stream) DO UPDATE SET origin = excluded.origin",
            (stream, self.origin),
        )
        if row is not None and row[0] != self.origin:
            # Its previous life's members are gone: the record comes after every record it published then
            # (some may not be applied here yet), so none of its seats is left.
            self._vanish(str(row[0]))

    # -- Publishing (the `SharedPresence` of chat_server.history.rooms) -----------------------------------

    def join(
        self, client: Client, key: str, name: str, after: int | None, backfill: int | None, ref: int | None
    ) -> None:
        """`client` may join the room `key`: publish the join."""
        rules = self.moderation.book.rooms.get(key)
        record = {
            "k": "join",
            "room_key": key,
            "room": name,
            "member": client.nick,
            "member_key": client.key,
            "op": rules is not None and client.id in rules.session_ops,  # given `op` before it joined
            "address": client.peer,
        }
        token = self._publish(client, record, Joining(client, ref, after=after, backfill=backfill))
        self._joins[token] = client

    def joining(self, client: Client) -> int:
        """How many joins of `client` are on their way (they count against `max_rooms_per_client`)."""
        return (
            sum(1 for joiner in self._joins.values() if joiner is client) if client in self._in_flight else 0
        )

    def leave(self, client: Client, room: Room, reason: str | None, ref: int | None) -> None:
        """`client` leaves `room`: publish the leave."""
        record = {"k": "leave", "room_key": room.key, "member_key": client.key, "reason": reason}
        self._publish(client, record, Awaiting(client, ref))

    def away(self, client: Client, message: str | None, ref: int | None) -> None:
        """`client`'s nick sets (or clears) its away message: publish it."""
        record = {"k": "away", "member": client.nick, "member_key": client.key, "message": message}
        self._publish(client, record, Awaiting(client, ref))

    def signed_off(self, client: Client, reason: str) -> None:
        """The last session of `client`'s nick here ended: publish its sign-off (unless the nick moved to
        another server: its seats go with it). With `always_on`, a registered nick (its password verified)
        goes absent instead: it stays in its rooms."""
        key = client.key or ""
        if key in self._moved:
            return
        self._sign_off(
            client.nick or "", key, reason, absent=client.account is not None and client.account == key
        )

    def _sign_off(self, nick: str, key: str, reason: str, absent: bool) -> None:
        kind = "absent" if absent and self.always_on else "signoff"
        record = {"k": kind, "member": nick, "member_key": key, "reason": reason}
        self._leaving[self._messages.publish(record, None)] = key

    def is_absent(self, key: str) -> bool:
        """Is the nick `key` absent in the cluster (any thread: `absent_nicks` is replaced whole)?"""
        return key in self.absent_nicks

    def returning(self, client: Client, after: dict[str, int]) -> tuple[Returning, set[str]] | None:
        """`client` logged in (its password verified) with a nick that is absent in the cluster: it takes the
        nick's place, as on a single server (publish it: a ``back`` record). Where its direct messages
        resume, and the keys of the rooms it stays in (its session enters them when the record is applied,
        from `after`'s id for a room it names, else with the usual backfill; the others see no arrival);
        None if the nick is not absent."""
        key = client.key or ""
        left = self._absent.get(key)
        if left is None:
            return None
        rooms = {
            room_key
            for room_key, seats in self._seats.items()
            if key in seats and seats[key].origin == ABSENT
        }
        record = {"k": "back", "member": client.nick, "member_key": key}
        self._publish(client, record, Coming(client, None, after=after))
        return left, rooms

    def _publish(self, client: Client, record: dict[str, Any], waiting: Awaiting) -> int:
        token = self._messages.publish(record, waiting)
        self._tokens[token] = client
        self._in_flight[client] = self._in_flight.get(client, 0) + 1
        return token

    def _vanish(self, origin: str) -> None:
        record = {"k": "gone", "server": origin, "absent": self.always_on}
        self._vanishing[self._messages.publish(record, None, msg_id=f"gone:{origin}")] = origin

    # -- Reading -------------------------------------------------------------------------------------------

    def people(self, room: Room) -> list[Client | Member]:
        """The people of `room` across the cluster, in the log's order of their joins: this server's
        clients, and a `Member` for each nick on another server."""
        listed: list[Client | Member] = []
        for key, seat in self._seats.get(room.key, {}).items():
            if seat.origin == self.origin:
                holder = self.hub.nicks.get(key)
                if holder is not None and room.key in holder.rooms:
                    listed.append(holder)
                    continue
            listed.append(
                Member(nick=seat.nick, away=self._away.get(key), op=self.is_op(room.key, key, seat))
            )
        return listed

    def is_op(self, room_key: str, nick_key: str, seat: Seat) -> bool:
        """Is the nick seated in `seat` an operator of the room, as every server sees it: by its session's
        right (`Seat.op`), a stored right of its registered nick, or as a server admin (a registered nick
        listed in `admins`: only its owner can hold it)."""
        if seat.op:
            return True
        rules = self.moderation.book.rooms.get(room_key)
        if rules is not None and nick_key in rules.ops:
            return True
        return nick_key in self.moderation.admins and self._registered(nick_key)

    def _registered(self, nick_key: str) -> bool:
        return load(self.store.connection, nick_key) is not None

    def set_op(self, room_key: str, nick_key: str, op: bool) -> None:
        """The seated nick gets (or loses) its session's operator right in the room (an `op` or `deop` record,
        applied alike on every server; in the open transaction). Nothing if it is in the room nowhere."""
        seat = self.seat(room_key, nick_key)
        if seat is not None and seat.op != op:
            seat.op = op
            self.store.begin()
            self.store.run(
                "UPDATE cluster_seats SET op = ? WHERE room_key = ? AND nick_key = ?",
                (int(op), room_key, nick_key),
            )

    def renamed(self, old_key: str, new_key: str, new: str) -> None:
        """A `nick` record: the nick's seats, away message and standing go to its new nick (every server
        alike, in the open transaction), each seat keeping its place in its room's order."""
        for room_key, seats in list(self._seats.items()):
            if old_key not in seats:
                continue
            seat = seats[old_key]
            seat.nick = new
            if new_key != old_key:
                self._seats[room_key] = {new_key if k == old_key else k: s for k, s in seats.items()}
        if new_key != old_key and old_key in self._away:
            self._away[new_key] = self._away.pop(old_key)
        self.store.begin()
        self.store.run(
            "UPDATE cluster_seats SET nick_key = ?, nick = ? WHERE nick_key = ?", (new_key, new, old_key)
        )
        if new_key != old_key:
            self.store.run("UPDATE cluster_away SET nick_key = ? WHERE nick_key = ?", (new_key, old_key))

    def seats(self, room_key: str) -> dict[str, Seat]:
        """Every nick in the room `room_key` across the cluster (nick key -> seat; do not change it)."""
        return self._seats.get(room_key, {})

    def _neighbours(self, key: str, origin: str) -> list[Client]:
        """This server's clients sharing a room with the nick `key` seated by `origin` (not the nick's own
        sessions)."""
        found: dict[int, Client] = {}
        for room_key, seats in self._seats.items():
            seat = seats.get(key)
            room = self.hub.rooms.get(room_key)
            if seat is None or seat.origin != origin or room is None:
                continue
            for member in room.members:
                if member.key != key:
                    found.setdefault(member.id, member)
        return list(found.values())

    # -- Applying the log (every server) --------------------------------------------------------------------

    def _settled(self, waiting: Awaiting | None, record: dict[str, Any]) -> Client | None:
        """The record of `waiting` is applied: the requester, if it still holds the record's nick here."""
        if waiting is None:
            return None
        client = waiting.client
        self._tokens.pop(record["t"], None)
        self._joins.pop(record["t"], None)
        self._one_less(client)
        holder = self.hub.nicks.get(record["member_key"])
        return client if holder is not None and client in holder.sessions else None

    def _one_less(self, client: Client) -> None:
        count = self._in_flight.get(client, 0) - 1
        if count > 0:
            self._in_flight[client] = count
            return
        self._in_flight.pop(client, None)
        if client in self._held:
            self._ready.append(client)

    def _apply_join(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        self._messages.barrier(seq)
        client = self._settled(waiting, record)
        key, name, nick_key, nick, origin, ts = (
            record[field] for field in ("room_key", "room", "member_key", "member", "o", "ts")
        )
        seats = self._seats.setdefault(key, {})
        self._names[key] = name
        was_empty = not seats
        seat = seats.get(nick_key)
        new = seat is None  # else a member already (a repeated join), or moving in from another server
        moved_from = seat.origin if seat is not None and seat.origin != origin else None
        op, address = bool(record.get("op")), record.get("address", "")
        if seat is None:
            seat = seats[nick_key] = Seat(nick, origin, seq, was_empty or op, address)
            self._count_origin(origin, 1)
        elif moved_from is not None:
            self._count_origin(moved_from, -1)
            self._count_origin(origin, 1)
            seat.op = seat.op or op  # a session right moves with the nick (its new server grants it below)
        seat.origin, seat.nick, seat.address = origin, nick, address
        self._save_seat(key, name, nick_key, seat)
        ours = origin == self.origin and client is not None
        if ours:
            self._moved.pop(nick_key, None)  # it is here again
        if client is not None and ours and isinstance(waiting, Joining):
            if moved_from is not None and nick_key in self._away:
                with self.hub.lock:  # the nick's away message came with it
                    for session in client.sessions:
                        session.away = self._away[nick_key]
            self.rooms.enter(
                client,
                key,
                name,
                waiting.after,
                waiting.backfill,
                waiting.ref,
                was_empty=was_empty,
                announce=new,
                ts=ts,
            )
            if moved_from is not None and seat.op:  # its session right came with it
                self.moderation.book.grant(self.moderation.book.get(key), "op", client.id, None)
        room = self.hub.add_room(key, name)
        if origin != self.origin and (new or moved_from is not None):
            self.hub.count_elsewhere(room, 1)
        if moved_from is not None:
            self._unseat_here(room, nick_key, moved_from)
        if new and not ours and not self._here(nick_key, key, origin):
            # Another server's member (or one of ours that left meanwhile: its sign-off follows in the log).
            self.hub.publish(room, encode(Joined(room=room.name, nick=nick, ts=ts, op=seat.op)))

    def _here(self, nick_key: str, room_key: str, origin: str) -> bool:
        """True if `origin` is this server and the nick is in the room here already (seated again after
        the others found this server dead: its clients never left)."""
        holder = self.hub.nicks.get(nick_key) if origin == self.origin else None
        return holder is not None and room_key in holder.rooms

    def _unseat_here(self, room: Room, nick_key: str, origin: str) -> None:
        """The seat of `nick_key` in `room` is no longer `origin`'s: count it, or take our client out."""
        if origin != self.origin:
            self.hub.count_elsewhere(room, -1)
            return
        holder = self.hub.nicks.get(nick_key)
        if holder is not None and room.key in holder.rooms:
            self.hub.leave(holder, room)  # its session here was taken over: it is closing

    def _apply_leave(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        self._messages.barrier(seq)
        client = self._settled(waiting, record)
        self.put_out(record["room_key"], record["member_key"], record["reason"], record["ts"], record["o"])
        if client is not None and waiting is not None:
            answer(client, waiting.ref)

    def put_out(
        self, room_key: str, nick_key: str, reason: str | None, ts: int, origin: str | None = None
    ) -> bool:
        """Take the nick `nick_key` out of the room `room_key` on this server, as every server does when it
        applies the same record: `unseat`, then `show_out`. False if it was not in the room (or, with
        `origin`, not seated by that server: a leave published before it moved)."""
        seat = self.unseat(room_key, nick_key, origin)
        if seat is None:
            return False
        self.show_out(room_key, nick_key, seat, reason, ts)
        return True

    def seat(self, room_key: str, nick_key: str) -> Seat | None:
        """The seat of the nick `nick_key` in the room `room_key`, wherever in the cluster it is."""
        return self._seats.get(room_key, {}).get(nick_key)

    def unseat(self, room_key: str, nick_key: str, origin: str | None = None) -> Seat | None:
        """The roster's half of putting a nick out of a room: its seat goes, in the open transaction (with
        the log's position). The seat it had, or None if it had none (or, with `origin`, none of that
        server's).

        Appliers of other records that put a member out (a kick, a ban: chat_server.cluster.moderation)
        call it as they apply the record, and `show_out` once the batch is committed."""
        seat = self.seat(room_key, nick_key)
        if seat is None or (origin is not None and seat.origin != origin):
            return None
        self._unseat(room_key, nick_key)
        return seat

    def show_out(self, room_key: str, nick_key: str, seat: Seat, reason: str | None, ts: int) -> None:
        """The members' half: this server's members of the room (the nick's own sessions here included) get
        `left` with `reason`, and the nick's sessions here leave the room."""
        room = self.hub.rooms.get(room_key)
        if room is not None:
            left = Left(
                room=room.name, nick=seat.nick, ts=ts, reason=None if reason is None else clip(reason)
            )
            self.hub.publish(room, encode(left))
            self._unseat_here(room, nick_key, seat.origin)
            self.moderation.left(room)

    def _apply_away(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        self._messages.barrier(seq)
        client = self._settled(waiting, record)
        key, message, origin = record["member_key"], record["message"], record["o"]
        self._set_away(key, message)
        holder = self.hub.nicks.get(key) if origin == self.origin else None
        sessions = list(holder.sessions) if holder is not None else []
        with self.hub.lock:
            for session in sessions:
                session.away = message
        changed = encode(AwayChanged(nick=record["member"], ts=record["ts"], message=message))
        self.hub.send_all([*sessions, *self._neighbours(key, origin)], changed)
        if waiting is not None and client is not None:
            answer(client, waiting.ref)

    def _apply_signoff(self, seq: int, record: dict[str, Any], _waiting: Awaiting | None) -> None:
        self._messages.barrier(seq)
        if record["o"] == self.origin:
            self._leaving.pop(record["t"], None)
        self._remove(record["member_key"], record["member"], record["o"], record["reason"], record["ts"])

    def _apply_gone(self, seq: int, record: dict[str, Any], _waiting: Awaiting | None) -> None:
        self._messages.barrier(seq)
        origin = record["server"]
        if record["o"] == self.origin:
            self._vanishing.pop(record["t"], None)
        if origin == self.origin:
            self._seat_again()
            return
        nicks = {
            key: seat.nick
            for seats in self._seats.values()
            for key, seat in seats.items()
            if seat.origin == origin
        }
        if nicks:
            log.info("event=server_gone server=%s nicks=%d", origin, len(nicks))
        for key, nick in nicks.items():
            if record.get("absent") and self._registered(key):  # always-on: it stays in its rooms
                self._go_absent(seq, key, nick, origin, record["ts"])
            else:
                self._remove(key, nick, origin, GONE_REASON, record["ts"])

    def _apply_absent(self, seq: int, record: dict[str, Any], _waiting: Awaiting | None) -> None:
        self._messages.barrier(seq)
        if record["o"] == self.origin:
            self._leaving.pop(record["t"], None)
        self._go_absent(seq, record["member_key"], record["member"], record["o"], record["ts"])

    def _go_absent(self, seq: int, key: str, nick: str, origin: str, ts: int) -> None:
        """The nick `key`, seated by `origin`, has no session left there and is always-on: its seats stay,
        held by nobody (`ABSENT`); its away message becomes the server's if it had none of its own (its
        neighbours here hear it); its direct messages resume after `seq` when it comes back."""
        for room_key, seats in self._seats.items():
            seat = seats.get(key)
            if seat is None or seat.origin != origin:
                continue
            self._count_origin(origin, -1)
            seat.origin = ABSENT
            name = self._names.get(room_key, room_key)
            self._save_seat(room_key, name, key, seat)
            if origin == self.origin:  # a member here until now: counted with the others' from now on
                room = self.hub.add_room(room_key, name)  # the hub forgot it if nobody here is left in it
                holder = self.hub.nicks.get(key)
                if holder is not None and room.key in holder.rooms:
                    self.hub.leave(holder, room)
                self.hub.count_elsewhere(room, 1)
        auto_away = key not in self._away
        self._absent[key] = Returning(left_id=seq, auto_away=auto_away)
        self.absent_nicks = frozenset(self._absent)
        self.store.begin()
        self.store.run(
            "INSERT INTO cluster_absent (nick_key, left_id, auto_away) VALUES (?, ?, ?)"
            " ON CONFLICT (nick_key) DO UPDATE SET"
            " left_id = excluded.left_id, auto_away = excluded.auto_away",
            (key, seq, int(auto_away)),
        )
        if auto_away:
            self._set_away(key, AWAY_ABSENT)
            self.hub.send_all(
                self._neighbours(key, ABSENT), encode(AwayChanged(nick=nick, ts=ts, message=AWAY_ABSENT))
            )

    def _apply_back(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        """An absent nick logged in again, on the record's server: its seats are that server's again (the
        others see no arrival), the server's away message goes (its neighbours hear it), and its session
        there enters its rooms."""
        self._messages.barrier(seq)
        client = self._settled(waiting, record)
        key, origin = record["member_key"], record["o"]
        left = self._absent.pop(key, None)
        if left is None:
            return  # back already (two logins at once: the nick bucket lets one through)
        self.absent_nicks = frozenset(self._absent)
        self.store.begin()
        self.store.run("DELETE FROM cluster_absent WHERE nick_key = ?", (key,))
        if left.auto_away and self._away.get(key) == AWAY_ABSENT:
            self._set_away(key, None)
            back = encode(AwayChanged(nick=record["member"], ts=record["ts"], message=None))
            self.hub.send_all(self._neighbours(key, ABSENT), back)
        comer = client if origin == self.origin and isinstance(waiting, Coming) else None
        resume = waiting.after if isinstance(waiting, Coming) else {}
        if comer is not None and key in self._away:
            with self.hub.lock:  # its own away message stays with it
                for session in comer.sessions:
                    session.away = self._away[key]
        for room_key, seats in self._seats.items():
            seat = seats.get(key)
            if seat is None or seat.origin != ABSENT:
                continue
            seat.origin = origin
            self._count_origin(origin, 1)
            name = self._names.get(room_key, room_key)
            self._save_seat(room_key, name, key, seat)
            if origin != self.origin:
                continue
            room = self.hub.add_room(room_key, name)
            self.hub.count_elsewhere(room, -1)
            if comer is not None:  # it hears of each room as of a join of its own, as on a single server
                op = seat.op or self.moderation.is_operator(comer, room_key)
                comer.send(encode(Joined(room=room.name, nick=comer.nick or "", ts=record["ts"], op=op)))
                after = resume.get(room_key)
                self.rooms.enter(
                    comer, room_key, room.name, after, None, None, was_empty=False, announce=False
                )
                if seat.op:  # its session right stayed with the nick
                    self.moderation.book.grant(self.moderation.book.get(room_key), "op", comer.id, None)

    def _seat_again(self) -> None:
        """The other servers found this one dead (NATS was away from it for longer than `server_lease`) and
        signed its members off: drop its seats and publish a join for each of its members' rooms again
        (the others see them join again; its own clients see nothing, they never left)."""
        log.warning("event=declared_gone (NATS was away too long): seating this server's members again")
        for room_key, seats in list(self._seats.items()):
            for nick_key in [key for key, seat in seats.items() if seat.origin == self.origin]:
                self._unseat(room_key, nick_key)
        with self.hub.lock:
            holders = [(client, list(client.rooms.values())) for client in self.hub.nicks.values()]
        for holder, rooms in holders:
            for room in rooms:
                rules = self.moderation.book.rooms.get(room.key)
                record = {
                    "k": "join",
                    "room_key": room.key,
                    "room": room.name,
                    "member": holder.nick,
                    "member_key": holder.key,
                    "op": rules is not None and holder.id in rules.session_ops,
                    "address": holder.peer,
                }
                self._messages.publish(record, None)

    def _remove(self, key: str, nick: str, origin: str, reason: str | None, ts: int) -> None:
        """Sign the nick `key` off from every room where `origin` seated it: its neighbours here hear it."""
        rooms = [
            room_key
            for room_key, seats in self._seats.items()
            if (seat := seats.get(key)) is not None and seat.origin == origin
        ]
        neighbours = self._neighbours(key, origin)
        for room_key in rooms:
            self._unseat(room_key, key)
            room = self.hub.rooms.get(room_key)
            if room is not None:
                self._unseat_here(room, key, origin)
                self.moderation.left(room)
        if not any(key in seats for seats in self._seats.values()) and self._away.pop(key, None) is not None:
            self.store.begin()
            self.store.run("DELETE FROM cluster_away WHERE nick_key = ?", (key,))
        self.hub.send_all(neighbours, encode(SignedOff(nick=nick, ts=ts, reason=reason)))

    # -- The roster's rows ---------------------------------------------------------------------------------

    def _set_away(self, key: str, message: str | None) -> None:
        """The nick `key`'s away message (None: back), in the roster and its table."""
        self.store.begin()
        if message:
            self._away[key] = message
            self.store.run(
                "INSERT INTO cluster_away (nick_key, message) VALUES (?, ?)"
                " ON CONFLICT (nick_key) DO UPDATE SET message = excluded.message",
                (key, message),
            )
        else:
            self._away.pop(key, None)
            self.store.run("DELETE FROM cluster_away WHERE nick_key = ?", (key,))

    def _save_seat(self, room_key: str, name: str, nick_key: str, seat: Seat) -> None:
        self.store.begin()
        self.store.run(
            "INSERT INTO cluster_seats (room_key, nick_key, room, nick, origin, since, op, address)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room_key, nick_key) DO UPDATE SET"
            " nick = excluded.nick, origin = excluded.origin, op = excluded.op, address = excluded.address",
            (room_key, nick_key, name, seat.nick, seat.origin, seat.since, int(seat.op), seat.address),
        )

    def _unseat(self, room_key: str, nick_key: str) -> None:
        seats = self._seats.get(room_key, {})
        seat = seats.pop(nick_key, None)
        if not seats:
            self._seats.pop(room_key, None)
            self._names.pop(room_key, None)
        if seat is not None:
            self._count_origin(seat.origin, -1)
        self.store.begin()
        self.store.run("DELETE FROM cluster_seats WHERE room_key = ? AND nick_key = ?", (room_key, nick_key))

    def _count_origin(self, origin: str, change: int) -> None:
        """`change` more (or fewer) seats held by `origin`; `seated_origins` follows when a server comes or
        goes (a new frozenset, one assignment: the ``nats`` thread reads it). Absent seats are nobody's."""
        if origin == ABSENT:
            return
        count = self._per_origin[origin] + change
        if count > 0:
            self._per_origin[origin] = count
        else:
            self._per_origin.pop(origin, None)
        if (count > 0) != (origin in self.seated_origins):
            self.seated_origins = frozenset(self._per_origin)

    # -- Requests of the link, and holding a client's requests ----------------------------------------------

    def hold(self, handler: Callable[[Client, Any], None]) -> Callable[[Client, Any], None]:
        """`handler`, except that a request of a client with presence records in flight waits for them."""

        def held(client: Client, request: Any) -> None:
            if client in self._in_flight:
                self._held.setdefault(client, []).append(request)
                return
            handler(client, request)

        return held

    def disconnected(self, handler: Callable[[Client, Any], None]) -> Callable[[Client, Any], None]:
        """The `Disconnect` handler: what the client still had held is dropped (it is gone)."""

        def disconnect(client: Client, request: Disconnect) -> None:
            self._held.pop(client, None)
            self._in_flight.pop(client, None)
            self._joins = {token: joiner for token, joiner in self._joins.items() if joiner is not client}
            handler(client, request)

        return disconnect

    def replicated(self, apply: Callable[[Client, Replicated], None]) -> Callable[[Client, Replicated], None]:
        """The `Replicated` handler: apply the records, then the requests they held."""

        def replicated(link: Client, request: Replicated) -> None:
            apply(link, request)
            self._release()

        return replicated

    def published(self, settle: Callable[[Client, Published], None]) -> Callable[[Client, Published], None]:
        """The `Published` handler: a presence record the log did not take is refused (by `settle`), and
        its requester's held requests go on."""

        def published(link: Client, request: Published) -> None:
            settle(link, request)
            for token, _seq, error in request.outcomes:
                if error is None:
                    continue
                client = self._tokens.pop(token, None)
                if client is not None:
                    self._one_less(client)
                self._joins.pop(token, None)
                self._leaving.pop(token, None)  # the round publishes it again
                self._vanishing.pop(token, None)
            self._release()

        return published

    def nick_lost(self, lose: Callable[[Client, NickLost], None]) -> Callable[[Client, NickLost], None]:
        """The `NickLost` handler: the nick moved to another server, whose joins take its seats."""

        def nick_lost(link: Client, request: NickLost) -> None:
            self._moved[request.key] = time.monotonic()
            lose(link, request)

        return nick_lost

    def vanished(self, _link: Client, request: Vanished) -> None:
        """Once a round: publish `gone` for the dead servers; sign off this server's seats of nicks that are
        no longer here (a sign-off the log could not take, a nick moved elsewhere after `MOVE_GRACE`)."""
        for origin in request.origins - {self.origin} - set(self._vanishing.values()):
            if origin in self.seated_origins:
                log.warning("event=server_vanished server=%s", origin)
                self._vanish(origin)
        now = time.monotonic()
        leaving = set(self._leaving.values())
        mine = {
            key: seat.nick
            for seats in self._seats.values()
            for key, seat in seats.items()
            if seat.origin == self.origin
        }
        for key, nick in mine.items():
            if (
                key in self.hub.nicks
                or key in leaving
                or now - self._moved.get(key, -MOVE_GRACE) <= MOVE_GRACE
            ):
                continue
            self._sign_off(nick, key, "connection lost", absent=self._registered(key))
        self._moved = {key: since for key, since in self._moved.items() if now - since <= MOVE_GRACE}

    def _release(self) -> None:
        """Apply the held requests of the clients whose records are all applied now, in order."""
        while self._ready:
            client = self._ready.pop(0)
            if client in self._in_flight:
                continue
            for request in self._held.pop(client, []):
                handler, needs_login = self.routes[type(request)]
                if needs_login and client.key is None:
                    continue
                try:
                    handler(client, request)  # held again if it published a record of its own
                except Exception:
                    log.exception("conn=%d event=request_failed request=%r", client.id, request)

    # -- The ``nats`` thread's round -------------------------------------------------------------------------

    async def start_rounds(self, link: NatsLink) -> None:
        """Start the round on the loop (once the servers bucket is open)."""
        link.keep(self._rounds(link))

    async def _rounds(self, link: NatsLink) -> None:
        missing: dict[str, float] = {}  # a server holding seats -> since when its entry is missing
        while True:
            await asyncio.sleep(ROUND)  # the period of the comparison, not a synchronisation
            try:
                seated = self.seated_origins  # first: every one of these had announced itself before
                alive = await link.alive_servers()
                now = time.monotonic()
                missing = {origin: missing.get(origin, now) for origin in seated - alive}
                # A server whose refresh came late (a loaded machine) is back within a third of the lease;
                # and back from an outage, the others refresh their entries within as long: only then is a
                # server that is still missing dead.
                grace = link.config.server_lease / 3
                settled = now - link.connected_since > grace + ROUND
                dead = (
                    [origin for origin, since in missing.items() if now - since >= grace] if settled else []
                )
                link.report(Vanished(frozenset(dead)))
            except Exception as error:  # NATS away for a moment: the next round tries again
                log.warning("event=presence_round_failed error=%r", error)
