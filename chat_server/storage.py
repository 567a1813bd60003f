"""Durable history in SQLite: the schema, the writes the history thread makes, and the history queries.

One file holds every room message and direct message with its server-assigned id, timestamp, sender and text,
every moderation action (a row of `messages` with `event` set: it pages with the chat, in id order), plus the
room topics. The moderation state itself (bans, mutes, operators, modes) has tables of its own
(`chat_server.history.rules`). The file is in WAL mode, so readers never block the writer and the writer never
blocks readers.

Connections and threads (SQLite connections must not be shared between threads):

* `HistoryStore` owns the *writer* connection. Only the history thread (`chat_server.history.thread`) calls
  its write methods; it groups whatever requests are queued into one transaction (group commit) and commits
  before any of them is acknowledged. With `synchronous=FULL` (the default) a commit is on disk when
  `commit()` returns: an acknowledged message survives `kill -9` and power loss. `NORMAL` keeps it through a
  process crash only.
* Each connection's reader thread opens its own *read* connection lazily (`open_reader()`) for the history
  pages and searches it serves (`FetchHistory`, `Search`), and closes it when the connection ends.

The search index is a file of its own next to this one (chat_server.searchdb), written by the
``search-indexer`` thread from what this file has committed: nothing here, and nothing on the message path,
indexes.

Ids come from `INTEGER PRIMARY KEY AUTOINCREMENT`: one global, strictly increasing sequence across rooms and
direct messages that never reuses a number. A `client_msg_id` is stored with its message under a unique index
per sender, so a resend is recognised even after a restart.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.messages import FileOffered, Moderated, Said, Told
from shared.text import fold

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ts            INTEGER NOT NULL,            -- milliseconds since the Unix epoch
    room_key      TEXT,                        -- fold(room) for a room message, NULL for a direct message
    room          TEXT,                        -- the room's name as shown
    sender        TEXT NOT NULL,               -- the sender's nick as shown
    sender_key    TEXT NOT NULL,               -- fold(sender)
    recipient     TEXT,                        -- direct messages: the recipient's nick as shown
    recipient_key TEXT,                        -- fold(recipient)
    text          TEXT NOT NULL,
    action        INTEGER NOT NULL DEFAULT 0,
    client_msg_id TEXT,
    event         TEXT,                        -- moderation entries: the action (sender = the operator)
    target        TEXT,                        -- moderation entries: the nick acted on
    until         INTEGER                      -- moderation entries: when a timed ban or mute lapses (ms)
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room_key, id) WHERE room_key IS NOT NULL;
-- A client_msg_id is unique per sender and conversation (a room, or the other end of a direct message).
-- Before, it was unique per sender only: that index goes, so one id may serve a room and a DM.
DROP INDEX IF EXISTS messages_dedup;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedup_by_conversation
    ON messages (sender_key, COALESCE(room_key, '@' || recipient_key), client_msg_id)
    WHERE client_msg_id IS NOT NULL;
-- Direct messages are listed once for each of their two participants, so "my conversations" and
-- "my conversation with P" are both one index range.
CREATE TABLE IF NOT EXISTS direct_index (
    owner_key TEXT NOT NULL,
    peer_key  TEXT NOT NULL,
    id        INTEGER NOT NULL REFERENCES messages (id),
    PRIMARY KEY (owner_key, peer_key, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS direct_by_owner ON direct_index (owner_key, id);
CREATE TABLE IF NOT EXISTS rooms (
    room_key TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    topic    TEXT NOT NULL DEFAULT ''
);
-- File offers (chat_server.files): the message row holds the file's name as its text; this row says it
-- is a file. `files` holds each stored file once, under its SHA-256, whoever offered it how often.
CREATE TABLE IF NOT EXISTS file_offers (
    id     INTEGER PRIMARY KEY REFERENCES messages (id),
    size   INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    sha256       TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    stored_at    INTEGER NOT NULL,             -- ms: its latest upload (retention counts from here)
    uploader_key TEXT NOT NULL                 -- fold(nick) of its latest uploader: whose quota it uses
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_uploader ON files (uploader_key, stored_at);
"""

_COLUMNS = "m.id, m.ts, m.room, m.sender, m.recipient, m.text, m.action, m.event, m.target, m.until"
_COLUMNS += ", f.size, f.sha256"  # a file offer's (see _FILE_JOIN); NULL for every other message
Row = tuple[
    int,
    int,
    str | None,
    str,
    str | None,
    str,
    int,
    str | None,
    str | None,
    int | None,
    int | None,
    str | None,
]
#: Columns added after the first release: a database made before them gains them at start.
_ADDED_COLUMNS = (("event", "TEXT"), ("target", "TEXT"), ("until", "INTEGER"))
#: Joined to every page query: a message with a row here is a file offer.
_FILE_JOIN = " LEFT JOIN file_offers AS f ON f.id = m.id"


class HistoryError(Exception):
    """The history database failed (disk full, I/O error, corrupt file); the server keeps relaying."""


@dataclass(frozen=True, slots=True)
class StoredRoom:
    """A room known from the database: its name, topic and newest message id (0 if none)."""

    key: str
    name: str
    topic: str
    last_id: int


@dataclass(frozen=True, slots=True)
class Previous:
    """What a sender already stored under a `client_msg_id` in one conversation (see `find_previous`)."""

    id: int
    ts: int
    text: str  # a file offer's: the file name
    action: bool
    sha256: str | None  # a file offer's, else None
    size: int | None


def conversation_key(room_key: str | None, recipient_key: str | None) -> str:
    """The conversation a message belongs to: its room, or ``@`` and the other end of a direct message (as
    the dedup index computes it)."""
    return room_key if room_key is not None else f"@{recipient_key}"


def find_previous(
    db: sqlite3.Connection, sender_key: str, client_msg_id: str, conversation: str
) -> Previous | None:
    """What this sender already stored with `client_msg_id` in `conversation`, on any connection `db` (the
    history thread's, or a reader's when it checks a file offer)."""
    try:
        row = db.execute(
            "SELECT m.id, m.ts, m.text, m.action, f.sha256, f.size FROM messages AS m"
            + _FILE_JOIN
            + " WHERE m.sender_key = ? AND m.client_msg_id = ?"
            " AND COALESCE(m.room_key, '@' || m.recipient_key) = ?",
            (sender_key, client_msg_id, conversation),
        ).fetchone()
    except sqlite3.Error as error:
        raise HistoryError(f"duplicate check failed: {error}") from error
    if row is None:
        return None
    return Previous(int(row[0]), int(row[1]), str(row[2]), bool(row[3]), row[4], row[5])


@dataclass(frozen=True, slots=True)
class Page:
    """One history reply: messages oldest first; `more`: the requested range holds more messages beyond this
    page in the direction asked for; `skipped`: how many of the range a page back bounded by `after` left out.
    """

    messages: tuple[Said | Told | Moderated | FileOffered, ...]
    more: bool
    skipped: int


def connect(
    path: Path, *, synchronous: str = "FULL", busy_timeout: float = 5.0, handed_over: bool = False
) -> sqlite3.Connection:
    """Open `path` in WAL mode, in autocommit mode so transactions are explicit (`BEGIN` ... `COMMIT`).

    `busy_timeout`: how long a statement waits for a lock another process holds (e.g. a backup).
    `handed_over`: the connection is opened by one thread and then used only by another (the writer is
    opened by `ChatServer.start` so that a bad path fails at once, then owned by the history thread).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=not handed_over, timeout=busy_timeout
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        return db
    except (OSError, sqlite3.Error) as error:
        raise HistoryError(f"cannot open history database {path}: {error}") from error


class HistoryStore:
    """The writer side of the history: schema, message inserts, duplicates, topics (history thread only)."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", busy_timeout: float = 5.0) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._db = connect(path, synchronous=synchronous, busy_timeout=busy_timeout, handed_over=True)
        try:
            self._db.executescript(SCHEMA)
            _add_missing_columns(self._db)
        except sqlite3.Error as error:
            self._db.close()
            raise HistoryError(f"cannot create the history schema in {path}: {error}") from error
        self._in_transaction = False

    def add_schema(self, sql: str) -> None:
        """Create further tables (`CREATE ... IF NOT EXISTS` statements), outside any batch."""
        self.commit()
        try:
            self._db.executescript(sql)
        except sqlite3.Error as error:
            raise HistoryError(f"cannot create tables in {self.path}: {error}") from error

    def close(self) -> None:
        """Close the writer connection (a checkpoint folds the WAL back into the main file)."""
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The writer connection, for other tables of the same database (history thread only, between
        batches: `chat_server.history.accounts`)."""
        return self._db

    def open_reader(self) -> sqlite3.Connection:
        """Open a read connection for the calling thread."""
        return connect(self.path, synchronous=self._synchronous, busy_timeout=self._busy_timeout)

    # -- Transactions (group commit) -----------------------------------------------------------------------

    def begin(self) -> None:
        """Start the batch's transaction, unless one is open already."""
        if not self._in_transaction:
            self._run("BEGIN IMMEDIATE")
            self._in_transaction = True

    def commit(self) -> None:
        """Commit the batch; when this returns, its messages are durable."""
        if self._in_transaction:
            self._in_transaction = False
            self._run("COMMIT")

    def rollback(self) -> None:
        """Undo the batch after a failure (never raises)."""
        self._in_transaction = False
        # No transaction may be open, or the connection may be broken: either way nothing is left to undo.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def run(self, sql: str, parameters: Iterable[object] = ()) -> sqlite3.Cursor:
        """Execute one statement on the writer connection (for `chat_server.history.rules`' own tables)."""
        return self._run(sql, parameters)

    def _run(self, sql: str, parameters: Iterable[object] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, tuple(parameters))
        except sqlite3.Error as error:
            raise HistoryError(f"history database error: {error}") from error

    # -- Writes --------------------------------------------------------------------------------------------

    def find_previous(self, sender_key: str, client_msg_id: str, conversation: str) -> Previous | None:
        """What this sender already stored with `client_msg_id` in `conversation` (`conversation_key`)."""
        return find_previous(self._db, sender_key, client_msg_id, conversation)

    def add_room_message(
        self,
        *,
        room_key: str,
        room: str,
        sender: str,
        sender_key: str,
        text: str,
        ts: int,
        action: bool,
        client_msg_id: str | None,
    ) -> int:
        """Insert a room message in the open transaction and return its id."""
        self.begin()
        cursor = self._run(
            "INSERT INTO messages (ts, room_key, room, sender, sender_key, text, action, client_msg_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ts, room_key, room, sender, sender_key, text, int(action), client_msg_id),
        )
        return int(cursor.lastrowid or 0)

    def add_direct_message(
        self,
        *,
        sender: str,
        sender_key: str,
        recipient: str,
        recipient_key: str,
        text: str,
        ts: int,
        action: bool,
        client_msg_id: str | None,
    ) -> int:
        """Insert a direct message (and its two index entries) in the open transaction; return its id."""
        self.begin()
        cursor = self._run(
            "INSERT INTO messages (ts, sender, sender_key, recipient, recipient_key, text, action,"
            " client_msg_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ts, sender, sender_key, recipient, recipient_key, text, int(action), client_msg_id),
        )
        message_id = int(cursor.lastrowid or 0)
        self._run("INSERT INTO direct_index VALUES (?, ?, ?)", (sender_key, recipient_key, message_id))
        if recipient_key != sender_key:
            self._run("INSERT INTO direct_index VALUES (?, ?, ?)", (recipient_key, sender_key, message_id))
        return message_id

    def add_moderation(
        self,
        *,
        room_key: str,
        room: str,
        actor: str,
        action: str,
        target: str | None,
        reason: str | None,
        until: int | None,
        ts: int,
    ) -> int:
        """Insert a moderation entry of a room in the open transaction and return its id."""
        self.begin()
        cursor = self._run(
            "INSERT INTO messages (ts, room_key, room, sender, sender_key, text, event, target, until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ts, room_key, room, actor, fold(actor), reason or "", action, target, until),
        )
        return int(cursor.lastrowid or 0)

    def add_file_offer(self, message_id: int, size: int, sha256: str) -> None:
        """Mark message `message_id` (stored in the open transaction) as the offer of a file."""
        self._run("INSERT INTO file_offers (id, size, sha256) VALUES (?, ?, ?)", (message_id, size, sha256))

    def save_file(self, sha256: str, size: int, stored_at: int, uploader_key: str) -> None:
        """Record a stored file in the open transaction (a new upload of the same bytes renews it)."""
        self.begin()
        self._run(
            "INSERT INTO files (sha256, size, stored_at, uploader_key) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (sha256) DO UPDATE SET stored_at = excluded.stored_at,"
            " uploader_key = excluded.uploader_key",
            (sha256, size, stored_at, uploader_key),
        )

    def save_topic(self, room_key: str, name: str, topic: str) -> None:
        """Store a room's topic in the open transaction."""
        self.begin()
        self._run(
            "INSERT INTO rooms (room_key, name, topic) VALUES (?, ?, ?)"
            " ON CONFLICT (room_key) DO UPDATE SET topic = excluded.topic",
            (room_key, name, topic),
        )

    def load_rooms(self) -> list[StoredRoom]:
        """Every room with a stored topic or message, for the hub to know at start."""
        rooms: dict[str, StoredRoom] = {}
        for key, name, last_id in self._run(
            "SELECT room_key, room, MAX(id) FROM messages WHERE room_key IS NOT NULL GROUP BY room_key"
        ):
            rooms[key] = StoredRoom(key, name, "", int(last_id))
        for key, name, topic in self._run("SELECT room_key, name, topic FROM rooms"):
            known = rooms.get(key)
            rooms[key] = StoredRoom(key, known.name if known else name, topic, known.last_id if known else 0)
        return list(rooms.values())

    def room_page(self, room_key: str, *, after: int | None = None, limit: int, max_bytes: int) -> Page:
        """A history page of a room, read on the writer connection (used for join backfill)."""
        return room_page(self._db, room_key, after=after, limit=limit, max_bytes=max_bytes)


# -- Queries (any connection) ------------------------------------------------------------------------------


def room_page(
    db: sqlite3.Connection,
    room_key: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int,
    max_bytes: int | None = None,
    forward: bool = False,
) -> Page:
    """The messages of one room with an id below `before` and above `after` (the range), oldest first:
    the newest `limit` of the range, or with `forward` the oldest `limit` (each page also cut to `max_bytes`).

    `more`: the range holds messages beyond the page in the direction asked for (older than the first one
    given; with `forward`, newer than the last one given). `skipped`: on a page back bounded by `after` (a
    resume), how many messages of the range were left out; 0 otherwise.
    """
    where, parameters = "m.room_key = ?", list[object]([room_key])
    return _page(db, "messages AS m", where, parameters, before, after, limit, max_bytes, forward=forward)


def direct_page(
    db: sqlite3.Connection,
    owner_key: str,
    peer_key: str | None,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int,
    max_bytes: int | None = None,
    forward: bool = False,
) -> Page:
    """The direct messages of `owner_key` (with `peer_key` only, if given), like `room_page`."""
    table = "direct_index AS d JOIN messages AS m ON m.id = d.id"
    where, parameters = "d.owner_key = ?", list[object]([owner_key])
    if peer_key is not None:
        where += " AND d.peer_key = ?"
        parameters.append(peer_key)
    return _page(
        db, table, where, parameters, before, after, limit, max_bytes, id_column="d.id", forward=forward
    )


def _page(
    db: sqlite3.Connection,
    table: str,
    where: str,
    parameters: list[object],
    before: int | None,
    after: int | None,
    limit: int,
    max_bytes: int | None,
    id_column: str = "m.id",
    forward: bool = False,
) -> Page:
    if before is not None:
        where += f" AND {id_column} < ?"
        parameters.append(before)
    if after is not None:
        where += f" AND {id_column} > ?"
        parameters.append(after)
    order = "ASC" if forward else "DESC"  # the end of the range the page starts from
    try:
        fetched: list[Row] = db.execute(
            f"SELECT {_COLUMNS} FROM {table}{_FILE_JOIN} WHERE {where} ORDER BY {id_column} {order} LIMIT ?",
            (*parameters, limit + 1),
        ).fetchall()
        kept = _fit(fetched[:limit], max_bytes)
        more = len(fetched) > len(kept)  # one more row was asked for: the range goes on past the page
        skipped = 0
        if after is not None and more and not forward:
            total = db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", parameters).fetchone()[0]
            skipped = int(total) - len(kept)
    except sqlite3.Error as error:
        raise HistoryError(f"history query failed: {error}") from error
    messages = tuple(_message(row) for row in (kept if forward else reversed(kept)))
    return Page(messages=messages, more=more, skipped=skipped)


# Wire overhead of one history entry besides its strings (keys, type, ids, timestamp), with a margin.
_ENTRY_OVERHEAD = 96


def _fit(rows: list[Row], max_bytes: int | None) -> list[Row]:
    """Keep the newest rows whose encoded size fits in `max_bytes` (a history reply must fit one frame)."""
    if max_bytes is None:
        return rows
    total = 0
    for index, row in enumerate(rows):
        total += _ENTRY_OVERHEAD + sum(
            len(part.encode()) for part in (row[2], row[3], row[4], row[5], row[7], row[8], row[11]) if part
        )
        if total > max_bytes:
            return rows[:index]
    return rows


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Give a database made by an older version the columns added since (SQLite adds them in place)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
    for name, kind in _ADDED_COLUMNS:
        if name not in present:
            db.execute(f"ALTER TABLE messages ADD COLUMN {name} {kind}")


def _message(row: Row) -> Said | Told | Moderated | FileOffered:
    message_id, ts, room, sender, recipient, text, action, event, target, until, size, sha256 = row
    if sha256 is not None:
        return FileOffered(
            id=message_id,
            nick=sender,
            name=text,
            size=size or 0,
            sha256=sha256,
            ts=ts,
            room=room,
            to=None if room is not None else recipient,
        )
    if event is not None and room is not None:
        return Moderated(
            id=message_id,
            room=room,
            nick=sender,
            action=event,
            ts=ts,
            target=target,
            reason=text or None,
            until=until,
        )
    if room is not None:
        return Said(id=message_id, room=room, nick=sender, text=text, ts=ts, action=bool(action))
    return Told(id=message_id, nick=sender, to=recipient or "", text=text, ts=ts, action=bool(action))
