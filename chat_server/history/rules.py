"""Each room's rules: operators, invitations, bans, mutes and modes, in memory and in SQLite.

`RoomRules` is the state of one room; `RulesBook` holds every room's, loads them at start and writes each
change in the history thread's open transaction (`HistoryStore.run`), so a moderation action and its history
entry commit together. History thread only, like `chat_server.history.chat`: no lock.

Rights come in two kinds (docs/security.md, "Moderation"):

* *session* rights belong to one connection (its id) and end when it disconnects: the operator rights of a
  room's creator, and operator rights or invitations given to a nick that is not registered;
* *stored* rights belong to a registered nick (`Client.account`), survive restarts and reconnects, and count
  only for a client whose nick password was verified.

Bans and mutes are restrictions, not rights: they apply to a nick (or an address) whoever holds it, and lapse
by themselves at `until` (checked when used; lapsed rows are deleted at the next start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from chat_server.storage import HistoryStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS room_modes (
    room_key    TEXT PRIMARY KEY,
    topic_lock  INTEGER NOT NULL DEFAULT 0,
    invite_only INTEGER NOT NULL DEFAULT 0,
    join_key    TEXT                          -- the room key (a secret: never in history or broadcasts)
);
CREATE TABLE IF NOT EXISTS room_grants (
    room_key TEXT NOT NULL,
    kind     TEXT NOT NULL,                   -- 'op' or 'invite'
    account  TEXT NOT NULL,                   -- a registered nick's key (fold)
    PRIMARY KEY (room_key, kind, account)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS room_restrictions (
    room_key TEXT NOT NULL,
    kind     TEXT NOT NULL,                   -- 'ban' (by nick), 'ban_address' or 'mute'
    target   TEXT NOT NULL,                   -- fold(nick), or the address
    nick     TEXT NOT NULL,                   -- the nick as shown (for an address ban: whose address it was)
    by_nick  TEXT NOT NULL,
    reason   TEXT,
    ts       INTEGER NOT NULL,
    until    INTEGER,                         -- ms since the epoch; NULL: until lifted
    PRIMARY KEY (room_key, kind, target)
) WITHOUT ROWID;
"""

RestrictionKind = Literal["ban", "ban_address", "mute"]
GrantKind = Literal["op", "invite"]


@dataclass(slots=True)
class Restriction:
    """A ban or a mute: who (as shown), by whom, why, since when, until when (None: until lifted)."""

    nick: str
    by: str
    ts: int
    until: int | None = None
    reason: str | None = None

    def in_force(self, now: int) -> bool:
        """True until `until` has passed."""
        return self.until is None or now < self.until


@dataclass(slots=True)
class RoomRules:
    """One room's operators, invitations, bans, mutes and modes."""

    key: str
    topic_lock: bool = False
    invite_only: bool = False
    join_key: str | None = None
    #: Stored rights: registered nicks' keys.
    ops: set[str] = field(default_factory=set)
    invited: set[str] = field(default_factory=set)
    #: Session rights: connection ids.
    session_ops: set[int] = field(default_factory=set)
    session_invited: set[int] = field(default_factory=set)
    #: fold(nick) -> ban; address -> ban; fold(nick) -> mute.
    bans: dict[str, Restriction] = field(default_factory=dict)
    address_bans: dict[str, Restriction] = field(default_factory=dict)
    mutes: dict[str, Restriction] = field(default_factory=dict)

    def table(self, kind: RestrictionKind) -> dict[str, Restriction]:
        """The restrictions of one kind."""
        return {"ban": self.bans, "ban_address": self.address_bans, "mute": self.mutes}[kind]

    def grants(self, kind: GrantKind) -> tuple[set[str], set[int]]:
        """(stored accounts, session connection ids) holding `kind`."""
        return (self.ops, self.session_ops) if kind == "op" else (self.invited, self.session_invited)

    def prune(self, now: int) -> None:
        """Forget the bans and mutes that have lapsed."""
        for table in (self.bans, self.address_bans, self.mutes):
            for target in [t for t, entry in table.items() if not entry.in_force(now)]:
                del table[target]


class RulesBook:
    """Every room's rules (history thread only): loaded at start, written through the history store."""

    def __init__(self, store: HistoryStore, now: int) -> None:
        self.store = store
        self.rooms: dict[str, RoomRules] = {}
        #: connection id -> keys of the rooms where it holds a session right (to forget them at logout).
        self._sessions: dict[int, set[str]] = {}
        store.add_schema(SCHEMA)
        store.begin()
        store.run("DELETE FROM room_restrictions WHERE until IS NOT NULL AND until <= ?", (now,))
        store.commit()
        self._load()

    def reload(self) -> None:
        """Forget the stored state in memory and read it again (after a failed commit); sessions stay."""
        for rules in self.rooms.values():
            rules.topic_lock, rules.invite_only, rules.join_key = False, False, None
            for stored in (rules.ops, rules.invited, rules.bans, rules.address_bans, rules.mutes):
                stored.clear()
        self._load()

    def _load(self) -> None:
        for key, topic_lock, invite_only, join_key in self.store.run("SELECT * FROM room_modes"):
            rules = self.get(key)
            rules.topic_lock, rules.invite_only, rules.join_key = (
                bool(topic_lock),
                bool(invite_only),
                join_key,
            )
        for key, kind, account in self.store.run("SELECT room_key, kind, account FROM room_grants"):
            if kind in ("op", "invite"):
                self.get(key).grants(kind)[0].add(account)
        rows = self.store.run(
            "SELECT room_key, kind, target, nick, by_nick, reason, ts, until FROM room_restrictions"
        )
        for key, kind, target, nick, by, reason, ts, until in rows:
            if kind in ("ban", "ban_address", "mute"):
                self.get(key).table(kind)[target] = Restriction(nick, by, ts, until, reason)

    def get(self, room_key: str) -> RoomRules:
        """The rules of a room (empty rules for a room nobody ever moderated)."""
        rules = self.rooms.get(room_key)
        if rules is None:
            rules = self.rooms[room_key] = RoomRules(room_key)
        return rules

    # -- Changes: each writes in the open transaction; the caller commits -------------------------------

    def save_modes(self, rules: RoomRules) -> None:
        """Store a room's modes (after changing them in `rules`)."""
        self.store.begin()
        self.store.run(
            "INSERT INTO room_modes VALUES (?, ?, ?, ?) ON CONFLICT (room_key) DO UPDATE SET"
            " topic_lock = excluded.topic_lock, invite_only = excluded.invite_only,"
            " join_key = excluded.join_key",
            (rules.key, int(rules.topic_lock), int(rules.invite_only), rules.join_key),
        )

    def grant(self, rules: RoomRules, kind: GrantKind, conn_id: int | None, account: str | None) -> None:
        """Give a connection (if any: in cluster mode the nick may be on another server) and, if registered,
        its account (stored) operator rights or an invitation."""
        stored, session = rules.grants(kind)
        if conn_id is not None:
            session.add(conn_id)
            self._sessions.setdefault(conn_id, set()).add(rules.key)
        if account is not None and account not in stored:
            self.store.begin()
            self.store.run("INSERT OR IGNORE INTO room_grants VALUES (?, ?, ?)", (rules.key, kind, account))
            stored.add(account)

    def revoke(self, rules: RoomRules, kind: GrantKind, conn_id: int | None, account: str) -> None:
        """Take a right away from a connection (if online) and from the account `account`."""
        stored, session = rules.grants(kind)
        if conn_id is not None:
            session.discard(conn_id)
        if account in stored:
            self.store.begin()
            self.store.run(
                "DELETE FROM room_grants WHERE room_key = ? AND kind = ? AND account = ?",
                (rules.key, kind, account),
            )
            stored.discard(account)

    def restrict(
        self, rules: RoomRules, kind: RestrictionKind, target: str, restriction: Restriction
    ) -> None:
        """Add (or replace) a ban or a mute."""
        self.store.begin()
        self.store.run(
            "INSERT OR REPLACE INTO room_restrictions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rules.key,
                kind,
                target,
                restriction.nick,
                restriction.by,
                restriction.reason,
                restriction.ts,
                restriction.until,
            ),
        )
        rules.table(kind)[target] = restriction

    def lift(self, rules: RoomRules, kind: RestrictionKind, target: str) -> Restriction | None:
        """Remove a ban or a mute; return it (None if there was none)."""
        removed = rules.table(kind).pop(target, None)
        if removed is not None:
            self.store.begin()
            self.store.run(
                "DELETE FROM room_restrictions WHERE room_key = ? AND kind = ? AND target = ?",
                (rules.key, kind, target),
            )
        return removed

    def room_gone(self, room_key: str) -> None:
        """The hub forgot the room: end its session rights, and forget its rules if none is stored."""
        rules = self.rooms.get(room_key)
        if rules is None:
            return
        for conn_id in rules.session_ops | rules.session_invited:
            sessions = self._sessions.get(conn_id)
            if sessions is not None:
                sessions.discard(room_key)
        rules.session_ops.clear()
        rules.session_invited.clear()
        stored = (rules.ops, rules.invited, rules.bans, rules.address_bans, rules.mutes)
        if not any(stored) and not (rules.topic_lock or rules.invite_only or rules.join_key is not None):
            del self.rooms[room_key]

    def move_session(self, old_id: int, new_id: int) -> None:
        """A connection was replaced by a resumed login (`resume_token`): its session rights move with it."""
        keys = self._sessions.pop(old_id, set())
        for key in keys:
            rules = self.rooms.get(key)
            if rules is None:
                continue
            for granted in (rules.session_ops, rules.session_invited):
                if old_id in granted:
                    granted.discard(old_id)
                    granted.add(new_id)
        if keys:
            self._sessions.setdefault(new_id, set()).update(keys)

    def forget_session(self, conn_id: int) -> None:
        """A connection ended: its session rights end with it."""
        for key in self._sessions.pop(conn_id, ()):
            rules = self.rooms.get(key)
            if rules is not None:
                rules.session_ops.discard(conn_id)
                rules.session_invited.discard(conn_id)
