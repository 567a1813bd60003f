"""Always-on presence (history thread only): a registered nick that stays while none of its sessions is there.

With the server's `always_on` setting, when the last session of a registered nick (its password verified)
ends, the nick does not sign off: its `Client` stays in the hub as an *absent* session (`Client.absent`), a
member of the nick's rooms with the away message `AWAY_ABSENT` (unless it had one of its own), and the others
see it there. Its send queue is closed, so what the rooms and the nick's direct messages send it is dropped
there (one closed-queue check per frame, only for absent nicks); everything is stored as usual. Direct
messages to an absent nick, or to a registered nick that has no session at all, are stored and acknowledged
(never `no_such_nick`). The nick's next login takes the absent session's place (`Hub.replace`), the others
see no arrival; it gets its rooms as a new session does, and the direct messages stored since it went
(unless its `hello` says where it stands with `direct_after`).

The absent nicks are stored (table `always_on`), so they are still there after a restart of the server: the
nick, its rooms, its away message, and the newest message id when it went (where its direct messages resume).
A room that would refuse the nick at the restart (a ban, a key, invite-only) is not rejoined. An unregistered
nick is never kept: a direct message to it while it is offline is refused with `no_such_nick`, as always.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from chat_server.hub import Client, Hub
from chat_server.sender.thread import SendQueue
from chat_server.storage import HistoryError, HistoryStore
from shared.text import fold

from .accounts import load as load_account
from .moderation import Moderation

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS always_on (
    account TEXT PRIMARY KEY,   -- the registered nick's key (shared.text.fold)
    nick    TEXT NOT NULL,      -- the nick as shown
    rooms   TEXT NOT NULL,      -- the names of the rooms it stays in, one per line
    away    TEXT,               -- its away message when it went (NULL: none of its own)
    left_id INTEGER NOT NULL    -- the newest message id when it went: its direct messages resume after it
) WITHOUT ROWID;
"""

#: The away message of an absent nick that had none of its own (others see it in `room_state`, `away_changed`
#: and the `ack` of a direct message to it).
AWAY_ABSENT = "not connected: messages are kept for later"


@dataclass(frozen=True, slots=True)
class Returning:
    """What a login that takes an absent nick's place needs: where its direct messages resume, and whether
    its away message was the one the server set (cleared on return)."""

    left_id: int
    auto_away: bool


class Presence:
    """The absent nicks of an always-on server (history thread only)."""

    def __init__(
        self,
        hub: Hub,
        store: HistoryStore,
        moderation: Moderation,
        enabled: bool,
        newest_id: Callable[[], int],
    ) -> None:
        self.hub = hub
        self.store = store
        self.enabled = enabled
        self._moderation = moderation
        self._newest = newest_id
        #: Absent sessions have negative ids, never a connection's.
        self._ids = itertools.count(-1, -1)
        #: Where each absent nick's direct messages resume, and whether its away message is the server's.
        self._left: dict[str, Returning] = {}
        store.add_schema(SCHEMA)
        if enabled:
            self._load()

    # -- Going and coming back -----------------------------------------------------------------------------

    def keep(self, client: Client) -> bool:
        """The last session of `client`'s nick ends: keep the nick (True), or let it sign off (False)."""
        if not self.enabled or client.account is None or client.key is None or client.key != client.account:
            return False
        auto_away = client.away is None
        with self.hub.lock:
            client.absent = True
            client.resume_token = None  # the next login gives the password: it takes the nick's place
            if auto_away:
                client.away = AWAY_ABSENT
        left = Returning(left_id=self._newest_id(), auto_away=auto_away)
        self._left[client.key] = left
        self._save(client, left)
        return True

    def absent(self, account: str, nick: str) -> Client:
        """An absent session for the registered nick `account` that has none (a direct message to it)."""
        ghost = self._ghost(account, nick, AWAY_ABSENT)
        left = Returning(left_id=self._newest_id(), auto_away=True)
        self._left[account] = left
        self._save(ghost, left)
        return ghost

    def returning(self, absent: Client) -> Returning:
        """A login takes the place of `absent`: forget it here and in the table."""
        key = absent.key or ""
        left = self._left.pop(key, Returning(left_id=self._newest_id(), auto_away=False))
        try:
            self.store.connection.execute("DELETE FROM always_on WHERE account = ?", (key,))
        except sqlite3.Error as error:
            log.warning("event=always_on_not_stored account=%r error=%s", key, error)
        return left

    def registered_nick(self, key: str) -> str | None:
        """The nick as registered, if `key` is a registered nick (for a direct message to one with no
        session); None if it is not, or the registrations cannot be read."""
        if not self.enabled:
            return None
        try:
            row = self.store.connection.execute(
                "SELECT nick FROM accounts WHERE nick_key = ?", (key,)
            ).fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else str(row[0])

    def _newest_id(self) -> int:
        try:
            return self._newest()
        except HistoryError:
            return 0  # the direct messages then resume from the first (bounded by max_backfill)

    # -- Storage -------------------------------------------------------------------------------------------

    def _ghost(self, account: str, nick: str, away: str | None) -> Client:
        sendq = SendQueue(soft=1, hard=1, soft_seconds=1.0)
        sendq.close(None)
        ghost = Client(next(self._ids), "", sendq, lambda _last, _abort: None, b"")
        with self.hub.lock:
            ghost.absent = True
            ghost.account = account
            ghost.away = away
        if not self.hub.register(ghost, nick):
            raise HistoryError(f"the nick {nick!r} is held")  # not at start: nobody is logged in yet
        return ghost

    def _save(self, client: Client, left: Returning) -> None:
        rooms = "\n".join(room.name for room in client.rooms.values())
        away = None if left.auto_away else client.away
        try:
            self.store.connection.execute(
                "INSERT INTO always_on (account, nick, rooms, away, left_id) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (account) DO UPDATE SET nick = excluded.nick, rooms = excluded.rooms,"
                " away = excluded.away, left_id = excluded.left_id",
                (client.key, client.nick, rooms, away, left.left_id),
            )
        except sqlite3.Error as error:
            # Kept in memory all the same; only a restart of the server forgets it.
            log.warning("event=always_on_not_stored nick=%r error=%s", client.nick, error)

    def _load(self) -> None:
        try:
            rows = self.store.connection.execute(
                "SELECT account, nick, rooms, away, left_id FROM always_on"
            ).fetchall()
        except sqlite3.Error as error:
            log.warning("event=always_on_unavailable error=%s", error)
            return
        for account, nick, rooms, away, left_id in rows:
            if load_account(self.store.connection, account) is None:
                continue  # the registration was dropped meanwhile (by the operator): nothing to keep
            ghost = self._ghost(account, nick, away if away is not None else AWAY_ABSENT)
            self._left[account] = Returning(left_id=int(left_id), auto_away=away is None)
            for name in [name for name in str(rooms).split("\n") if name]:
                key = fold(name)
                room = self.hub.rooms.get(key)
                if self._moderation.admission(ghost, key, room.name if room else name, None) is not None:
                    continue
                room = self.hub.add_room(key, room.name if room else name)
                was_empty = not room.members
                self.hub.enter(ghost, room)
                self._moderation.entered(ghost, room, was_empty)
        if rows:
            log.info("event=always_on_loaded nicks=%d", len(self._left))
