"""A nick's attention (history thread only): how far it has read each room and direct conversation (read
markers), and what should call for it (notification levels and keywords).

A marker names a conversation (a room, or the direct messages with one peer) and the id of the newest
message read in it; it only moves forward. For a registered nick (`Client.account`, once its password was
verified) it is stored in the table below, so it survives a restart of the client and of the server; for an
unregistered nick it lives in the connection (`Client.read_markers`) and goes with it (a resumed session
keeps it). Where it is kept is one of two `AttentionStore`s, chosen per request by `Attention.kept`:
`SessionStore` (an unregistered nick's, in `Client.attention`) or `DatabaseStore` (a registered nick's,
the tables below); `Attention` itself holds the rules and the answers, the same for both. A nick keeps at most
`read_markers_per_nick` of them: past that, the one that moved least
recently is dropped (nothing is refused; a dropped marker reads as "never marked").

Notification levels (`notify`: all, mentions or none, per room or direct conversation) and keywords
(`keywords`: words that highlight a message as a mention of the nick does) are kept the same way, a
registered nick's stored, an unregistered nick's for its session, so every session of a nick agrees. Only
levels that differ from the default are kept (`mentions` for a room, `all` for direct messages), at most
`notify_levels_per_nick`; at most `max_keywords` keywords. Both limits refuse with `too_long`.

A read marker rides the group commit, as a message does: it is written into the open transaction and its
`read_marker` answer is held until that batch commits (`Messages.after_commit`), so an answered marker is on
disk and a client that marks a busy room once a second costs no commit of its own. `notify` and `keywords`
are rare: each is a barrier like every other request that is not a message (the open batch is committed
first, then the change), answered once on disk.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable
from typing import Protocol

from chat_server.hub import Client, member_room
from chat_server.replies import error_frame
from chat_server.storage import HistoryError, HistoryStore, conversation_key
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import (
    MarkRead,
    NotifyLevel,
    NotifySettings,
    ReadMarker,
    ReadPosition,
    SetKeywords,
    SetNotify,
)
from shared.text import fold

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS read_markers (
    account      TEXT NOT NULL,     -- the registered nick's key (shared.text.fold)
    conversation TEXT NOT NULL,     -- a room's key, or "@" and the peer's key (storage.conversation_key)
    name         TEXT NOT NULL,     -- the room's or the peer's name as last marked (for `welcome`)
    id           INTEGER NOT NULL,  -- the newest message read
    moved        INTEGER NOT NULL,  -- the order markers moved in (the oldest is dropped past the limit)
    PRIMARY KEY (account, conversation)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS read_markers_by_age ON read_markers (account, moved);
CREATE TABLE IF NOT EXISTS notify_levels (
    account      TEXT NOT NULL,     -- the registered nick's key
    conversation TEXT NOT NULL,     -- as in read_markers
    name         TEXT NOT NULL,     -- the room's or the peer's name as last given
    level        TEXT NOT NULL,     -- all, mentions or none (never the conversation's default)
    PRIMARY KEY (account, conversation)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keywords (
    account  TEXT PRIMARY KEY,      -- the registered nick's key
    keywords TEXT NOT NULL          -- the keywords, one per line (a keyword is one line)
) WITHOUT ROWID;
"""

#: A room's notification level when none was set, and a direct conversation's.
ROOM_DEFAULT, DIRECT_DEFAULT = "mentions", "all"


def level_record(conversation: str, name: str, level: str) -> NotifyLevel:
    """The wire record of a notification level: a room's, or (``@``...) a peer's."""
    if conversation.startswith("@"):
        return NotifyLevel(peer=name, level=level)
    return NotifyLevel(room=name, level=level)


def position(conversation: str, name: str, last_read: int) -> ReadPosition:
    """The wire record of a marker: a room's, or (a conversation key starting with ``@``) a peer's."""
    if conversation.startswith("@"):
        return ReadPosition(peer=name, id=last_read)
    return ReadPosition(room=name, id=last_read)


class AttentionStore(Protocol):
    """Where a nick's markers, levels and keywords are kept (history thread only).

    The writes (`move`, `set_level`, `set_keywords`) go into the open transaction (the caller commits) and
    may raise `HistoryError`; the reads answer "nothing
    kept" when the database cannot be read (logged), so a login or a join never fails on them."""

    def move(self, client: Client, conversation: str, name: str, last_read: int) -> int:
        """Move the marker forward (never backwards; within the open batch); returns where it stands now."""
        ...

    def set_level(self, client: Client, conversation: str, name: str, level: str | None) -> None:
        """Keep a conversation's level (None: forget it, the default applies)."""
        ...

    def set_keywords(self, client: Client, words: tuple[str, ...]) -> None:
        """Replace the nick's keywords."""
        ...

    def levels(self, client: Client) -> dict[str, NotifyLevel]:
        """The levels that are not the default, by conversation."""
        ...

    def keywords(self, client: Client) -> tuple[str, ...]:
        """The nick's keywords."""
        ...

    def markers(self, client: Client, most: int) -> tuple[ReadPosition, ...]:
        """At most `most` markers, the most recently moved first."""
        ...

    def read_up_to(self, client: Client, conversation: str) -> int | None:
        """The marker of one conversation, or None."""
        ...


class SessionStore:
    """An unregistered nick's attention: kept in its session (`Client.attention`), gone with it."""

    def __init__(self, per_nick: int) -> None:
        self.per_nick = per_nick

    def move(self, client: Client, conversation: str, name: str, last_read: int) -> int:
        markers = client.attention.read_markers
        known = markers.get(conversation)
        if known is not None and known.id >= last_read:
            return known.id
        markers.pop(conversation, None)  # re-added last: the most recently moved
        markers[conversation] = position(conversation, name, last_read)
        while len(markers) > self.per_nick:
            del markers[next(iter(markers))]
        return last_read

    def set_level(self, client: Client, conversation: str, name: str, level: str | None) -> None:
        if level is None:
            client.attention.levels.pop(conversation, None)
        else:
            client.attention.levels[conversation] = level_record(conversation, name, level)

    def set_keywords(self, client: Client, words: tuple[str, ...]) -> None:
        client.attention.keywords = words

    def levels(self, client: Client) -> dict[str, NotifyLevel]:
        return dict(client.attention.levels)

    def keywords(self, client: Client) -> tuple[str, ...]:
        return client.attention.keywords

    def markers(self, client: Client, most: int) -> tuple[ReadPosition, ...]:
        return tuple(reversed(client.attention.read_markers.values()))[:most]

    def read_up_to(self, client: Client, conversation: str) -> int | None:
        known = client.attention.read_markers.get(conversation)
        return known.id if known is not None else None


class DatabaseStore:
    """A registered nick's attention (`Client.account`): kept in the history database, so it survives a
    restart of the client and of the server, and every session of the nick reads the same."""

    def __init__(self, store: HistoryStore, per_nick: int) -> None:
        self.store = store
        self.per_nick = per_nick
        store.add_schema(SCHEMA)
        (last,) = store.run("SELECT COALESCE(MAX(moved), 0) FROM read_markers").fetchone()
        #: Numbers the moves, so "the most recently moved" is exact (two moves in one millisecond too).
        self._moves = itertools.count(int(last) + 1)

    def move(self, client: Client, conversation: str, name: str, last_read: int) -> int:
        assert client.account is not None
        return self.move_for(client.account, conversation, name, last_read)

    def move_for(self, account: str, conversation: str, name: str, last_read: int) -> int:
        """`move` for the registered nick `account`, in the open transaction (committed with the batch)."""
        store = self.store
        store.begin()
        store.run(
            "INSERT INTO read_markers VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, conversation) DO UPDATE"
            " SET name = excluded.name, id = excluded.id, moved = excluded.moved WHERE excluded.id > id",
            (account, conversation, name, last_read, next(self._moves)),
        )
        (count,) = store.run("SELECT COUNT(*) FROM read_markers WHERE account = ?", (account,)).fetchone()
        if count > self.per_nick:
            store.run(
                "DELETE FROM read_markers WHERE account = ? AND conversation IN (SELECT conversation FROM"
                " read_markers WHERE account = ? ORDER BY moved, conversation LIMIT ?)",
                (account, account, count - self.per_nick),
            )
        row = store.run(
            "SELECT id FROM read_markers WHERE account = ? AND conversation = ?", (account, conversation)
        ).fetchone()
        return int(row[0]) if row is not None else last_read

    def set_level(self, client: Client, conversation: str, name: str, level: str | None) -> None:
        assert client.account is not None
        self.set_level_for(client.account, conversation, name, level)

    def set_level_for(self, account: str, conversation: str, name: str, level: str | None) -> None:
        """`set_level` for the registered nick `account`, in the open transaction."""
        self.store.begin()
        if level is None:
            self.store.run(
                "DELETE FROM notify_levels WHERE account = ? AND conversation = ?", (account, conversation)
            )
        else:
            self.store.run(
                "INSERT OR REPLACE INTO notify_levels VALUES (?, ?, ?, ?)",
                (account, conversation, name, level),
            )

    def set_keywords(self, client: Client, words: tuple[str, ...]) -> None:
        assert client.account is not None
        self.set_keywords_for(client.account, words)

    def set_keywords_for(self, account: str, words: tuple[str, ...]) -> None:
        """`set_keywords` for the registered nick `account`, in the open transaction."""
        self.store.begin()
        self.store.run("DELETE FROM keywords WHERE account = ?", (account,))
        if words:
            self.store.run("INSERT INTO keywords VALUES (?, ?)", (account, "\n".join(words)))

    def levels(self, client: Client) -> dict[str, NotifyLevel]:
        assert client.account is not None
        return self.levels_of(client.account)

    def levels_of(self, account: str) -> dict[str, NotifyLevel]:
        """`levels` of the registered nick `account`."""
        try:
            rows = self.store.run(
                "SELECT conversation, name, level FROM notify_levels WHERE account = ? ORDER BY conversation",
                (account,),
            ).fetchall()
        except HistoryError as error:
            log.warning("event=notify_levels_unavailable account=%r error=%s", account, error)
            return {}
        return {conversation: level_record(conversation, name, level) for conversation, name, level in rows}

    def keywords(self, client: Client) -> tuple[str, ...]:
        assert client.account is not None
        return self.keywords_of(client.account)

    def keywords_of(self, account: str) -> tuple[str, ...]:
        """`keywords` of the registered nick `account`."""
        try:
            row = self.store.run("SELECT keywords FROM keywords WHERE account = ?", (account,)).fetchone()
        except HistoryError as error:
            log.warning("event=keywords_unavailable account=%r error=%s", account, error)
            return ()
        return tuple(row[0].split("\n")) if row is not None else ()

    def markers(self, client: Client, most: int) -> tuple[ReadPosition, ...]:
        try:
            rows = self.store.run(
                "SELECT conversation, name, id FROM read_markers WHERE account = ?"
                " ORDER BY moved DESC LIMIT ?",
                (client.account, most),
            ).fetchall()
        except HistoryError as error:
            log.warning("conn=%d event=read_markers_unavailable error=%s", client.id, error)
            return ()
        return tuple(position(conversation, name, int(last)) for conversation, name, last in rows)

    def read_up_to(self, client: Client, conversation: str) -> int | None:
        try:
            row = self.store.run(
                "SELECT id FROM read_markers WHERE account = ? AND conversation = ?",
                (client.account, conversation),
            ).fetchone()
        except HistoryError:
            return None
        return int(row[0]) if row is not None else None


class Attention:
    """Applies `mark_read`, `notify` and `keywords`, and answers what a login and a join need to know."""

    def __init__(
        self,
        store: HistoryStore,
        flush: Callable[[], None],
        after_commit: Callable[[Client, bytes, int | None, bytes | None, tuple[Client, ...]], None],
        write_failed: Callable[[Client, HistoryError, int | None], None],
        per_nick: int,
        *,
        levels_per_nick: int = 256,
        max_keywords: int = 32,
    ) -> None:
        self.store = store
        self._flush = flush
        self._after_commit = after_commit
        self._write_failed = write_failed
        self.per_nick = per_nick
        self.levels_per_nick = levels_per_nick
        self.max_keywords = max_keywords
        self.in_session = SessionStore(per_nick)
        #: Where registered nicks keep theirs (cluster mode writes it from the log: chat_server.cluster).
        self.in_database = DatabaseStore(store, per_nick)

    def kept(self, client: Client) -> AttentionStore:
        """Where `client`'s nick keeps its attention: in the database once registered, else its session."""
        return self.in_session if client.account is None else self.in_database

    def check_mark(self, client: Client, request: MarkRead) -> tuple[str, str] | None:
        """The conversation and its name a `mark_read` moves, or None when it is refused (answered)."""
        ref = request.ref
        if (request.room is None) == (request.peer is None):
            client.send(error_frame(ErrorCode.INVALID_FIELD, "give exactly one of room and peer", ref))
            return None
        if request.room is not None:
            room = member_room(client, request.room, ref)
            if room is None:
                return None
            conversation, name, newest = room.key, room.name, room.last_id
        else:
            name = request.peer or ""
            conversation, newest = conversation_key(None, fold(name)), self.newest_id()
        if request.id > newest:
            message = f"message {request.id} does not exist yet (the newest is {newest})"
            client.send(error_frame(ErrorCode.INVALID_FIELD, message, ref))
            return None
        return conversation, name

    def mark_read(self, client: Client, request: MarkRead) -> None:
        """Move the marker of a room or a direct conversation forward, and answer where it stands (once the
        batch it was written in commits)."""
        ref = request.ref
        checked = self.check_mark(client, request)
        if checked is None:
            return
        conversation, name = checked
        try:
            last_read = self.kept(client).move(client, conversation, name, request.id)
        except HistoryError as error:
            self._write_failed(client, error, ref)  # the whole batch is lost: each of its requests is refused
            return
        if request.room is not None:
            answer = ReadMarker(room=name, id=last_read, ref=ref)
        else:
            answer = ReadMarker(peer=name, id=last_read, ref=ref)
        # The marker is the nick's: its other sessions hear where it now stands (without the `ref`).
        siblings = tuple(session for session in client.sessions if session is not client)
        relay = encode(dataclasses.replace(answer, ref=None)) if siblings else None
        self._after_commit(client, encode(answer), ref, relay, siblings)

    def newest_id(self) -> int:
        """The newest message id the server has given (0 before the first)."""
        row = self.store.run("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        return int(row[0]) if row is not None else 0

    # -- Notification levels and keywords ------------------------------------------------------------------

    def check_level(self, client: Client, request: SetNotify) -> tuple[str, str, str | None] | None:
        """The conversation, its name and the level to keep (None: the default) of a `notify`, or None when
        it is refused (answered)."""
        ref = request.ref
        if (request.room is None) == (request.peer is None):
            client.send(error_frame(ErrorCode.INVALID_FIELD, "give exactly one of room and peer", ref))
            return None
        if request.room is not None:
            name, conversation, default = request.room, fold(request.room), ROOM_DEFAULT
        else:
            name = request.peer or ""
            conversation, default = conversation_key(None, fold(name)), DIRECT_DEFAULT
        level = request.level if request.level != default else None  # the default is not kept
        refusal = self.over_levels(self.kept(client).levels(client), conversation, level)
        if refusal is not None:
            client.send(error_frame(ErrorCode.TOO_LONG, refusal, ref))
            return None
        return conversation, name, level

    def over_levels(self, levels: dict[str, NotifyLevel], conversation: str, level: str | None) -> str | None:
        """Why keeping `level` for `conversation` beside `levels` is past the limit, or None."""
        if level is not None and conversation not in levels and len(levels) >= self.levels_per_nick:
            return f"at most {self.levels_per_nick} conversations may have a level of their own"
        return None

    def notify(self, client: Client, request: SetNotify) -> None:
        """Set (or, with no level, reset) a conversation's notification level; answer with the settings."""
        self._flush()
        checked = self.check_level(client, request)
        if checked is None:
            return
        try:
            self.kept(client).set_level(client, *checked)
            self.store.commit()
        except HistoryError as error:
            self._failed(client, error, request.ref)
            return
        self._answer(client, request.ref)

    def check_keywords(self, client: Client, request: SetKeywords) -> tuple[str, ...] | None:
        """The keywords a `keywords` request keeps (blank ones dropped, repeats once), or None when it is
        refused (answered)."""
        words: dict[str, str] = {}
        for word in request.keywords:
            if word.strip():
                words.setdefault(fold(word.strip()), word.strip())
        if len(words) > self.max_keywords:
            message = f"at most {self.max_keywords} keywords"
            client.send(error_frame(ErrorCode.TOO_LONG, message, request.ref))
            return None
        return tuple(words.values())

    def keywords(self, client: Client, request: SetKeywords) -> None:
        """Replace the nick's keywords; answer with the settings."""
        self._flush()
        words = self.check_keywords(client, request)
        if words is None:
            return
        try:
            self.kept(client).set_keywords(client, words)
            self.store.commit()
        except HistoryError as error:
            self._failed(client, error, request.ref)
            return
        self._answer(client, request.ref)

    def _answer(self, client: Client, ref: int | None) -> None:
        levels = tuple(self.levels(client).values())
        settings = NotifySettings(levels=levels, keywords=self.nick_keywords(client), ref=ref)
        client.send(encode(settings))
        if len(client.sessions) > 1:  # the settings are the nick's: its other sessions hear of the change
            relay = encode(dataclasses.replace(settings, ref=None))
            for session in client.sessions:
                if session is not client:
                    session.send(relay)

    def _failed(self, client: Client, error: HistoryError, ref: int | None) -> None:
        log.warning("conn=%d event=attention_not_stored error=%s", client.id, error)
        self.store.rollback()
        client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, "the setting could not be stored", ref))

    # -- What a login and a join are told ------------------------------------------------------------------

    def levels(self, client: Client) -> dict[str, NotifyLevel]:
        """The nick's notification levels that are not the default, by conversation."""
        return self.kept(client).levels(client)

    def nick_keywords(self, client: Client) -> tuple[str, ...]:
        """The nick's keywords."""
        return self.kept(client).keywords(client)

    def markers(self, client: Client, most: int) -> tuple[ReadPosition, ...]:
        """The nick's markers for its `welcome`: at most `most`, the most recently moved first."""
        return self.kept(client).markers(client, most)

    def read_up_to(self, client: Client, room_key: str) -> int | None:
        """The nick's marker of a room (for a join's `history`), or None."""
        return self.kept(client).read_up_to(client, room_key)
