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

from shared.messages import (
    DELETED_TEXT,
    ConversationEvent,
    Deleted,
    Edited,
    FileOffered,
    Moderated,
    Reacted,
    Reaction,
    Said,
    Told,
    Unreacted,
)
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
    event         TEXT,                        -- moderation entries: the action (sender = the operator);
                                               -- conversation events: edited, deleted, reacted, unreacted
    target        TEXT,                        -- moderation entries: the nick acted on
    until         INTEGER,                     -- moderation entries: when a timed ban or mute lapses (ms)
    reply_to      INTEGER,                     -- a reply: the id of the message it answers
    target_id     INTEGER,                     -- conversation events: the message changed (sender = who)
    edited        INTEGER,                     -- messages: when last edited (ms), NULL if never
    deleted       INTEGER,                     -- messages: when deleted (ms; the text is erased), else NULL
    rev           INTEGER                      -- messages: the id of the latest event applied to it
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
-- Conversation events by the message they change (only event rows are indexed: a message costs nothing).
CREATE INDEX IF NOT EXISTS messages_by_target ON messages (target_id) WHERE target_id IS NOT NULL;
-- Each message's reactions now: who put which on it, and the event that did (the order they came in).
CREATE TABLE IF NOT EXISTS reactions (
    message_id INTEGER NOT NULL,
    reaction   TEXT NOT NULL,
    nick_key   TEXT NOT NULL,
    nick       TEXT NOT NULL,
    event_id   INTEGER NOT NULL,
    PRIMARY KEY (message_id, reaction, nick_key)
) WITHOUT ROWID;
-- The previous text of edited and deleted messages: written only when the operator sets `keep_edits`.
CREATE TABLE IF NOT EXISTS message_revisions (
    message_id INTEGER NOT NULL,
    ts         INTEGER NOT NULL,               -- when it was replaced (ms)
    kind       TEXT NOT NULL,                  -- edited or deleted
    text       TEXT NOT NULL                   -- the text before that
);
"""
#: The schema's version (`PRAGMA user_version`): 0 before conversations (replies, edits, deletions and
#: reactions), 2 since. `HistoryStore` upgrades an older database in place when it opens it.
SCHEMA_VERSION = 2

_COLUMNS = "m.id, m.ts, m.room, m.sender, m.recipient, m.text, m.action, m.event, m.target, m.until"
_COLUMNS += ", f.size, f.sha256"  # a file offer's (see _FILE_JOIN); NULL for every other message
_COLUMNS += ", m.reply_to, m.target_id, m.edited, m.deleted, m.rev, t.text"  # t: an event's message
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
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    str | None,
]
#: Columns added after the first release: a database made before them gains them at start.
_ADDED_COLUMNS = (
    ("event", "TEXT"),
    ("target", "TEXT"),
    ("until", "INTEGER"),
    ("reply_to", "INTEGER"),
    ("target_id", "INTEGER"),
    ("edited", "INTEGER"),
    ("deleted", "INTEGER"),
    ("rev", "INTEGER"),
)
#: Joined to every page query: a message with a row here is a file offer; an event row's message is `t`
#: (an `edited` event is served with its message's current text, never with a text it replaced since).
_FILE_JOIN = " LEFT JOIN file_offers AS f ON f.id = m.id"
_PAGE_JOIN = _FILE_JOIN + " LEFT JOIN messages AS t ON t.id = m.target_id"
#: The conversation events (`messages.event` of a row with a `target_id`).
EVENT_KINDS = ("edited", "deleted", "reacted", "unreacted")


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
    #: The conversation events of the page's span, oldest first (None: none; `History.events`).
    events: tuple[ConversationEvent, ...] | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """A stored message that a reply, an edit, a deletion or a reaction names (see `HistoryStore.target`)."""

    id: int
    ts: int
    room_key: str | None  # None: a direct message
    room: str | None
    sender: str
    sender_key: str
    recipient: str | None
    recipient_key: str | None
    #: A plain chat message (a `said` or `told`), not a file offer, a moderation entry or an event.
    chat: bool
    #: When it was deleted (ms), None if it was not.
    deleted: int | None
    text: str

    def participant(self, key: str) -> bool:
        """True if `key` is one of the two ends of this direct message."""
        return key in (self.sender_key, self.recipient_key)


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
            _add_missing_columns(self._db)  # first: SCHEMA's new indexes name the new columns
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
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

    @property
    def in_transaction(self) -> bool:
        """Whether the batch's transaction is open (begun, not yet committed or rolled back)."""
        return self._in_transaction

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
        reply_to: int | None = None,
        message_id: int | None = None,
    ) -> int:
        """Insert a room message in the open transaction and return its id (`message_id` if given: the
        cluster's stream sequence, chat_server.cluster; else the next one)."""
        self.begin()
        cursor = self._run(
            "INSERT INTO messages (id, ts, room_key, room, sender, sender_key, text, action, client_msg_id,"
            " reply_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, ts, room_key, room, sender, sender_key, text, int(action), client_msg_id, reply_to),
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
        reply_to: int | None = None,
        message_id: int | None = None,
    ) -> int:
        """Insert a direct message (and its two index entries) in the open transaction; return its id
        (`message_id` if given, as for `add_room_message`)."""
        self.begin()
        cursor = self._run(
            "INSERT INTO messages (id, ts, sender, sender_key, recipient, recipient_key, text, action,"
            " client_msg_id, reply_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                ts,
                sender,
                sender_key,
                recipient,
                recipient_key,
                text,
                int(action),
                client_msg_id,
                reply_to,
            ),
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
        entry_id: int | None = None,
    ) -> int:
        """Insert a moderation entry of a room in the open transaction and return its id (`entry_id` if
        given: the cluster's stream sequence, as for `add_room_message`)."""
        self.begin()
        cursor = self._run(
            "INSERT INTO messages (id, ts, room_key, room, sender, sender_key, text, event, target, until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry_id, ts, room_key, room, actor, fold(actor), reason or "", action, target, until),
        )
        return int(cursor.lastrowid or 0)

    def add_file_offer(self, message_id: int, size: int, sha256: str) -> None:
        """Mark message `message_id` (stored in the open transaction) as the offer of a file."""
        self._run("INSERT INTO file_offers (id, size, sha256) VALUES (?, ?, ?)", (message_id, size, sha256))

    # -- Conversations: replies, edits, deletions, reactions ----------------------------------------------

    def target(self, message_id: int) -> Target | None:
        """The stored message `message_id` (any kind but an event), as the open transaction sees it."""
        row = self._run(
            "SELECT m.id, m.ts, m.room_key, m.room, m.sender, m.sender_key, m.recipient, m.recipient_key,"
            " m.event IS NULL AND f.id IS NULL, m.deleted, m.text, m.target_id FROM messages AS m"
            + _FILE_JOIN
            + " WHERE m.id = ?",
            (message_id,),
        ).fetchone()
        if row is None or row[11] is not None:
            return None
        return Target(
            id=row[0],
            ts=row[1],
            room_key=row[2],
            room=row[3],
            sender=row[4],
            sender_key=row[5],
            recipient=row[6],
            recipient_key=row[7],
            chat=bool(row[8]),
            deleted=row[9],
            text=row[10],
        )

    def add_event(
        self,
        target: Target,
        *,
        kind: str,
        actor: str,
        ts: int,
        text: str = "",
        event_id: int | None = None,
    ) -> int:
        """Store a conversation event about `target` (in the open transaction) and return its id (`event_id`
        if given: the cluster's stream sequence, as for `add_room_message`): in the target's room, or in the
        direct conversation of its two ends; the target's `rev` becomes its id."""
        self.begin()
        actor_key = fold(actor)
        if target.room_key is not None:
            cursor = self._run(
                "INSERT INTO messages (id, ts, room_key, room, sender, sender_key, text, event, target_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event_id, ts, target.room_key, target.room, actor, actor_key, text, kind, target.id),
            )
            event_id = int(cursor.lastrowid or 0)
        else:
            # `recipient`: the other end as seen from the actor (the author, or whoever reacted).
            mine = actor_key == target.sender_key
            other, other_key = (
                (target.recipient, target.recipient_key) if mine else (target.sender, target.sender_key)
            )
            cursor = self._run(
                "INSERT INTO messages (id, ts, sender, sender_key, recipient, recipient_key, text, event,"
                " target_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event_id, ts, actor, actor_key, other, other_key, text, kind, target.id),
            )
            event_id = int(cursor.lastrowid or 0)
            ends = {target.sender_key, target.recipient_key or target.sender_key}
            for owner in ends:
                peer = next(iter(ends - {owner}), owner)
                self._run("INSERT INTO direct_index VALUES (?, ?, ?)", (owner, peer, event_id))
        self._run("UPDATE messages SET rev = ? WHERE id = ?", (event_id, target.id))
        return event_id

    def edit_message(self, target: Target, text: str, ts: int, *, keep: bool) -> None:
        """Replace the text of `target` (in the open transaction); keep the old one only if `keep`."""
        self.begin()
        if keep:
            self._run(
                "INSERT INTO message_revisions (message_id, ts, kind, text) VALUES (?, ?, 'edited', ?)",
                (target.id, ts, target.text),
            )
        self._run("UPDATE messages SET text = ?, edited = ? WHERE id = ?", (text, ts, target.id))

    def delete_message(self, target: Target, ts: int, *, keep: bool) -> None:
        """Erase `target`'s text, its reactions and its earlier `edited` events (which name its text), keeping
        a tombstone; the old text goes to `message_revisions` only if `keep`."""
        self.begin()
        if keep:
            self._run(
                "INSERT INTO message_revisions (message_id, ts, kind, text) VALUES (?, ?, 'deleted', ?)",
                (target.id, ts, target.text),
            )
        self._run("UPDATE messages SET text = '', deleted = ? WHERE id = ?", (ts, target.id))
        self._run("DELETE FROM reactions WHERE message_id = ?", (target.id,))
        edits = "SELECT id FROM messages WHERE target_id = ? AND event = 'edited'"
        self._run(f"DELETE FROM direct_index WHERE id IN ({edits})", (target.id,))
        self._run("DELETE FROM messages WHERE target_id = ? AND event = 'edited'", (target.id,))

    def reactions(self, message_id: int) -> list[tuple[str, str, int]]:
        """The reactions of a message now: (reaction, nick_key, event id), oldest first."""
        return [
            (str(reaction), str(key), int(event))
            for reaction, key, event in self._run(
                "SELECT reaction, nick_key, event_id FROM reactions WHERE message_id = ? ORDER BY event_id",
                (message_id,),
            )
        ]

    def event_ts(self, event_id: int) -> int:
        """The timestamp of a stored event."""
        row = self._run("SELECT ts FROM messages WHERE id = ?", (event_id,)).fetchone()
        return int(row[0]) if row else 0

    def add_reaction(self, message_id: int, reaction: str, nick: str, event_id: int) -> None:
        """Record that `nick` reacted (in the open transaction)."""
        self._run(
            "INSERT INTO reactions (message_id, reaction, nick_key, nick, event_id) VALUES (?, ?, ?, ?, ?)",
            (message_id, reaction, fold(nick), nick, event_id),
        )

    def remove_reaction(self, message_id: int, reaction: str, nick_key: str) -> None:
        """Take a reaction off (in the open transaction)."""
        self._run(
            "DELETE FROM reactions WHERE message_id = ? AND reaction = ? AND nick_key = ?",
            (message_id, reaction, nick_key),
        )

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
            f"SELECT {_COLUMNS} FROM {table}{_PAGE_JOIN} WHERE {where} ORDER BY {id_column} {order} LIMIT ?",
            (*parameters, limit + 1),
        ).fetchall()
        candidates = fetched[:limit]
        reactions = _reactions(db, [row[0] for row in candidates if row[16] is not None and row[13] is None])
        kept = _fit(candidates, max_bytes, reactions)
        more = len(fetched) > len(kept)  # one more row was asked for: the range goes on past the page
        skipped = 0
        if after is not None and more and not forward:
            total = db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", parameters).fetchone()[0]
            skipped = int(total) - len(kept)
        rows = kept if forward else kept[::-1]
    except sqlite3.Error as error:
        raise HistoryError(f"history query failed: {error}") from error
    messages: list[Said | Told | Moderated | FileOffered] = []
    events: list[ConversationEvent] = []
    for row in rows:
        if row[13] is None:
            messages.append(_message(row, reactions.get(row[0])))
        elif (event := _event(row)) is not None:
            events.append(event)
    return Page(messages=tuple(messages), more=more, skipped=skipped, events=tuple(events) or None)


def _reactions(db: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[Reaction, ...]]:
    """The reactions of the messages `ids` (those with events: `rev` set), aggregated: each reaction in the
    order it first came, with who reacted in the order they did."""
    if not ids:
        return {}
    found: dict[int, dict[str, list[str]]] = {}
    marks = ",".join("?" * len(ids))
    for message_id, reaction, nick in db.execute(
        f"SELECT message_id, reaction, nick FROM reactions WHERE message_id IN ({marks}) ORDER BY event_id",
        ids,
    ):
        found.setdefault(message_id, {}).setdefault(reaction, []).append(nick)
    return {
        message_id: tuple(Reaction(reaction=r, nicks=tuple(nicks)) for r, nicks in by.items())
        for message_id, by in found.items()
    }


# Wire overhead of one history entry besides its strings (keys, type, ids, timestamp), with a margin.
_ENTRY_OVERHEAD = 96
# More overhead for an entry with conversation fields (`reply_to`, `edited`, `deleted`, `rev`, `reactions`).
_STATE_OVERHEAD = 80
# Wire overhead of one aggregated reaction besides its strings (keys, headers), with a margin.
_REACTION_OVERHEAD = 24


def _fit(
    rows: list[Row], max_bytes: int | None, reactions: dict[int, tuple[Reaction, ...]] | None = None
) -> list[Row]:
    """Keep the newest rows whose encoded size fits in `max_bytes` (a history reply must fit one frame)."""
    if max_bytes is None:
        return rows
    total = 0
    for index, row in enumerate(rows):
        total += _ENTRY_OVERHEAD + sum(
            len(part.encode())
            for part in (row[2], row[3], row[4], row[5], row[7], row[8], row[11], row[17])
            if part
        )
        if row[12] is not None or row[13] is not None or row[16] is not None:
            total += _STATE_OVERHEAD  # reply_to, edited, deleted, rev; an event's message_id
        for reaction in (reactions or {}).get(row[0], ()):
            # the record's keys and the reaction, then each nick with its string header
            total += _REACTION_OVERHEAD + len(reaction.reaction.encode())
            total += sum(len(nick.encode()) + 2 for nick in reaction.nicks)
        if total > max_bytes:
            return rows[:index]
    return rows


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Give a database made by an older version the columns added since (SQLite adds them in place)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
    if not present:
        return  # a new database: SCHEMA creates the table whole
    for name, kind in _ADDED_COLUMNS:
        if name not in present:
            db.execute(f"ALTER TABLE messages ADD COLUMN {name} {kind}")


def _event(row: Row) -> ConversationEvent | None:
    """An event row as its frame (an `edited` one with its message's current text)."""
    event_id, ts, room, sender, recipient, text, _action, kind, _target, _until = row[:10]
    message_id, current = row[13] or 0, row[17]
    to = None if room is not None else recipient
    if kind == "edited":
        if not current:
            return None  # its message was deleted since (the deletion removes these rows; never served)
        return Edited(id=event_id, message_id=message_id, nick=sender, text=current, ts=ts, room=room, to=to)
    if kind == "deleted":
        return Deleted(id=event_id, message_id=message_id, nick=sender, ts=ts, room=room, to=to)
    if kind == "reacted":
        return Reacted(
            id=event_id, message_id=message_id, nick=sender, reaction=text, ts=ts, room=room, to=to
        )
    if kind == "unreacted":
        return Unreacted(
            id=event_id, message_id=message_id, nick=sender, reaction=text, ts=ts, room=room, to=to
        )
    return None


def _message(
    row: Row, reactions: tuple[Reaction, ...] | None = None
) -> Said | Told | Moderated | FileOffered:
    message_id, ts, room, sender, recipient, text, action, event, target, until, size, sha256 = row[:12]
    reply_to, _target_id, edited, deleted, rev = row[12:17]
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
    if deleted is not None:
        text = DELETED_TEXT
    if room is not None:
        return Said(
            id=message_id,
            room=room,
            nick=sender,
            text=text,
            ts=ts,
            action=bool(action),
            reply_to=reply_to,
            edited=edited,
            deleted=True if deleted is not None else None,
            reactions=reactions,
            rev=rev,
        )
    return Told(
        id=message_id,
        nick=sender,
        to=recipient or "",
        text=text,
        ts=ts,
        action=bool(action),
        reply_to=reply_to,
        edited=edited,
        deleted=True if deleted is not None else None,
        reactions=reactions,
        rev=rev,
    )
