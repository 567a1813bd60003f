"""The search index: an SQLite FTS5 index of the stored messages, in a file of its own next to the history.

`history.sqlite3` gets `history-search.sqlite3` beside it (`index_path`): one FTS5 table, ``messages_fts``,
with each message's text and its sender's folded nick (so a search by sender is one more term for FTS5, not a
look at every match), keyed by the message's id, and the id of the newest message indexed. It is derived data:
deleted (while the server is stopped), it is built again at the next start.

The index follows edits and deletions: an ``edited`` event gives the message the words of its current text, a
``deleted`` event removes the message. That is why the table keeps its own copy of the text: an FTS5 table
without one (``content=''``) cannot forget a message's words unless given them again, and after an edit the
history no longer has them. Its file is written with ``secure_delete``, so a deleted text's pages are
overwritten; its words may stay in FTS5's older segments until they are merged (docs/security.md).

Why a file of its own, written by a thread of its own (``search-indexer``, chat_server.indexer) after the
history has committed, rather than by a trigger in the history's own transaction: FTS5 costs about 100 µs of
CPU per message indexed (measured: docs/performance.md, "Search"). In the history's transaction that is paid
by the history thread for every message stored, and it showed: W1 at 10,000 msg/s fell from 1.0 to 1.8 µs of
server CPU per delivery and delivered under half of the load. In another file, the indexer never takes the
history's write lock (SQLite has one writer per file); it reads the history on a read connection (WAL: readers
and the writer never wait for each other), and FTS5 runs in C with the GIL released, on the other core.

A search (chat_server.reader.search) runs on the asking connection's reader thread, on its history read
connection with this file attached (``search``): the index gives the matching ids, newest first, the history
gives their rows, checked against what the searcher may read, and the reader ranks the newest of them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .storage import HistoryError, connect

#: The index's schema (in its own file). Moderation entries and conversation events (`event` set) are not
#: indexed: a moderation entry's text is a reason, and searches are of what people said.
INDEX_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    text,                                    -- the message's text as it now reads
    sender,                                  -- fold(sender): `search` by nick is a term of the match
    tokenize='unicode61 remove_diacritics 2',
    columnsize=0                             -- no per-message word counts: nothing ranks with FTS5's bm25
);
CREATE TABLE IF NOT EXISTS indexed (
    id INTEGER NOT NULL                      -- the newest message id indexed (every one up to it is)
);
"""
#: The index file's format (its ``PRAGMA user_version``). A file of another format (the first, contentless
#: index of the unreleased search branch) is emptied and built again.
INDEX_VERSION = 2
#: Bytes of the history and of the index a search's read connection maps into memory (``PRAGMA mmap_size``):
#: the pages a search looks at are read from the shared page cache without a system call and a copy each
#: (measured: docs/performance.md, "Search"). Address space, not memory: the kernel shares the pages.
SEARCH_MMAP_BYTES = 1 << 30
#: The name the index's file is attached under on a reader's history connection.
SCHEMA_NAME = "search"


#: Copies messages of the attached history into the index (a WHERE clause follows; deleted ones never).
_COPY = (
    "INSERT INTO messages_fts (rowid, text, sender)"
    " SELECT id, text, sender_key FROM history.messages WHERE deleted IS NULL AND"
)


def index_path(history: Path) -> Path:
    """Where the index of the history file `history` lives: ``history-search.sqlite3`` next to it."""
    return history.with_name(f"{history.stem}-search{history.suffix or '.sqlite3'}")


class IndexWriter:
    """The writer side of the index (the ``search-indexer`` thread only): adds the messages the history has
    committed since the newest one indexed, a batch at a time.

    Its connection opens the index and attaches the history (``history``) to read it: a batch is copied from
    one file to the other by SQLite (``INSERT ... SELECT``), with no Python object made per message (a third
    less CPU per message than fetching the rows and inserting them: docs/performance.md, "Search"). Its
    transactions are deferred: they write the index only, and read the history as any reader does (WAL), never
    taking its write lock."""

    def __init__(self, path: Path, history: Path) -> None:
        self.path = path
        self._db = connect(path, synchronous="NORMAL")  # derived data: rebuilt if a crash loses the end
        try:
            self._db.execute("PRAGMA secure_delete=ON")  # a deleted message's text is overwritten
            if self._db.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
                self._db.executescript(
                    "DROP TABLE IF EXISTS messages_fts; DROP TABLE IF EXISTS indexed;"
                    f" PRAGMA user_version={INDEX_VERSION};"
                )
            self._db.executescript(INDEX_SCHEMA)
            row = self._db.execute("SELECT id FROM indexed").fetchone()
            if row is None:
                self._db.execute("INSERT INTO indexed (id) VALUES (0)")
            self._db.execute("ATTACH DATABASE ? AS history", (str(history),))
        except sqlite3.Error as error:
            self._db.close()
            raise HistoryError(f"cannot open the search index {path}: {error}") from error
        #: The newest message id indexed.
        self.last_id = 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close the writer connection."""
        self._db.close()

    def newest(self) -> int:
        """The newest message id in the history (0: none)."""
        try:
            row = self._db.execute("SELECT MAX(id) FROM history.messages").fetchone()
        except sqlite3.Error as error:
            raise HistoryError(f"history query failed: {error}") from error
        return int(row[0] or 0)

    def reset(self) -> None:
        """Forget everything indexed (the history is not the one indexed: it holds fewer messages)."""

        def forget() -> int:
            self._db.execute("DELETE FROM messages_fts")
            return 0

        self.last_id = self._run(forget)

    def add(self, limit: int) -> int:
        """Index up to `limit` rows the history stored after the newest one indexed, in one transaction: new
        messages are added, and each ``edited`` or ``deleted`` event among the rows takes its message out
        and puts it back as it now reads (not at all, if deleted). Return how many rows (moderation entries
        and other events included) were passed."""
        first, passed = self.last_id, 0

        def batch() -> int:
            nonlocal passed
            row = self._db.execute(
                "SELECT COUNT(*), MAX(id) FROM"
                " (SELECT id FROM history.messages WHERE id > ? ORDER BY id LIMIT ?)",
                (first, limit),
            ).fetchone()
            passed, newest = int(row[0]), int(row[1] or first)
            if not passed:
                return first
            self._db.execute(_COPY + " id > ? AND id <= ? AND event IS NULL", (first, newest))
            changed = self._db.execute(
                "SELECT target_id FROM history.messages WHERE id > ? AND id <= ?"
                " AND event IN ('edited', 'deleted') AND target_id IS NOT NULL ORDER BY id",
                (first, newest),
            ).fetchall()
            for (target,) in changed:
                self._db.execute("DELETE FROM messages_fts WHERE rowid = ?", (target,))
                self._db.execute(_COPY + " id = ? AND event IS NULL", (target,))
            return newest

        self.last_id = self._run(batch)
        return passed

    def _run(self, work: Callable[[], int]) -> int:
        """Run `work` in one (deferred) transaction and record the newest id indexed it returns; return it."""
        try:
            self._db.execute("BEGIN")
            newest = work()
            self._db.execute("UPDATE indexed SET id = ?", (newest,))
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise HistoryError(f"cannot write the search index {self.path}: {error}") from error
        return newest


def attach(db: sqlite3.Connection, path: Path) -> None:
    """Attach the index at `path` to the history connection `db` as ``search`` (once per connection), both
    files mapped into memory (`SEARCH_MMAP_BYTES`)."""
    attached = {row[1] for row in db.execute("PRAGMA database_list")}
    if SCHEMA_NAME in attached:
        return
    try:
        db.execute(f"ATTACH DATABASE ? AS {SCHEMA_NAME}", (str(path),))
        db.execute(f"PRAGMA main.mmap_size={SEARCH_MMAP_BYTES}")
        db.execute(f"PRAGMA {SCHEMA_NAME}.mmap_size={SEARCH_MMAP_BYTES}")
    except sqlite3.Error as error:
        raise HistoryError(f"cannot open the search index {path}: {error}") from error


@dataclass(frozen=True, slots=True)
class Found:
    """One search hit: the message's id, time, room (None: direct), sender, recipient and text."""

    id: int
    ts: int
    room: str | None
    sender: str
    recipient: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Scope:
    """What one search may look at: the rooms (folded names) and whose direct messages, then the filters."""

    room_keys: tuple[str, ...]
    #: The searcher's folded nick: the direct messages it sent or received are searched (None: none).
    direct_owner: str | None
    sender_key: str | None = None
    since: int | None = None
    until: int | None = None


def newest_id(db: sqlite3.Connection) -> int:
    """The newest message id the history connection `db` sees (0: none)."""
    try:
        row = db.execute("SELECT MAX(id) FROM messages").fetchone()
    except sqlite3.Error as error:
        raise HistoryError(f"history query failed: {error}") from error
    return int(row[0] or 0)


def search(db: sqlite3.Connection, expression: str, scope: Scope, *, scan: int) -> list[Found]:
    """The messages matching the FTS5 `expression` (built by chat_server.reader.search, never the user's text)
    within `scope`, on a history connection with the index attached: the newest `scan` of them, newest first.
    The reader ranks them (chat_server.reader.search, `rank`).

    Only the newest `scan` matches are looked at, so a query for a word in half a million messages costs about
    as much as one for a rarer word; and no FTS5 ranking function runs, since FTS5's bm25 reads every match of
    each word in the whole index for its rarity, which cost a query for a common word about 30 ms
    (docs/performance.md, "Search").
    """
    where, parameters, access = ["m.deleted IS NULL"], list[object](), []
    if scope.room_keys:
        access.append(f"m.room_key IN ({', '.join('?' * len(scope.room_keys))})")
        parameters.extend(scope.room_keys)
    if scope.direct_owner is not None:
        # Its direct messages: those it sent or received (what `direct_index` files under it).
        access.append("(m.room_key IS NULL AND (m.sender_key = ? OR m.recipient_key = ?))")
        parameters.extend((scope.direct_owner, scope.direct_owner))
    if not access:
        return []
    where.append(f"({' OR '.join(access)})")
    match = f"text : ({expression})"
    if scope.sender_key is not None:
        # The sender as a term of the match (FTS5 intersects it with the words: only the sender's matches are
        # looked at), and exactly, since a term is made of the nick's words ("a_b" and "a-b" are "a b").
        if any(character.isalnum() for character in scope.sender_key):
            match += ' AND sender : "' + scope.sender_key.replace('"', '""') + '"'
        where.append("m.sender_key = ?")
        parameters.append(scope.sender_key)
    if scope.since is not None:
        where.append("m.ts >= ?")
        parameters.append(scope.since)
    if scope.until is not None:
        where.append("m.ts < ?")
        parameters.append(scope.until)
    sql = (
        "SELECT m.id, m.ts, m.room, m.sender, m.recipient, m.text"
        f" FROM {SCHEMA_NAME}.messages_fts JOIN messages AS m ON m.id = messages_fts.rowid"
        f" WHERE messages_fts MATCH ? AND {' AND '.join(where)}"
        " ORDER BY messages_fts.rowid DESC LIMIT ?"
    )
    try:
        rows = db.execute(sql, (match, *parameters, scan)).fetchall()
    except sqlite3.Error as error:
        raise HistoryError(f"search failed: {error}") from error
    return [Found(int(r[0]), int(r[1]), r[2], str(r[3]), r[4], str(r[5])) for r in rows]
