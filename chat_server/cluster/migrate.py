"""Migrating a single server's history into a cluster: ``chat-server --cluster URLS --migrate FILE``.

Reads the history database FILE (made by a single server; opened read-only) and publishes it, oldest first,
into the cluster's log stream, which must be empty: its room messages and direct messages as `say` and `tell`
records, and the changes made to them as the records cluster mode makes for them
(chat_server.cluster.conversation): each `edited`, `deleted`, `reacted` and `unreacted` event as an `edit`,
`delete`, `react` or `unreact` record, and an operator's deletion's `moderated` entry as a `deletion_entry`
record; then each room's stored topic as a `topic` record without a nick (who set it is not stored: it is
stored, not announced); last, the registered nicks (a ``register`` record each: the nick, its scrypt hash,
salt and cost, as a registration made in the cluster: chat_server.cluster.accounts) and the rules of each
moderated room (a ``rules`` record each: its modes, its stored operators and invitations, its bans and mutes
still in force: chat_server.cluster.moderation). Every server then applies them to its copy with the
cluster's own appliers, so a migrated history has the same messages, edits, tombstones and reactions (and
events), registered nicks and room rules as the single server's.
Each message keeps its sender, text, timestamp, action flag and `client_msg_id`; each event its nick and
timestamp; every new id is a stream sequence, and a reply's `reply_to` and an event's message follow the new
ids. Every publish carries `Nats-Expected-Last-Sequence`, so the stream holds them exactly in this order or
the migration stops.

What a single server keeps of an edit is the message's current text (an `edited` event shows it), and a
deleted message's text is erased: the migrated message carries its current text (empty for a tombstone),
and each migrated `edit` record carries the current text too, so the copy ends as the single server did.

Not migrated (counted in the report): the other moderation entries (the history of who did what: the rules
they made are migrated) and file offers, which cluster mode does
not have yet (docs/cluster.md). Start the cluster's servers with new data folders afterwards: each applies
the stream to its own copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from .config import ClusterConfig
from .link import ClusterUnavailable, NatsLink

#: Messages published before their acknowledgements are awaited together.
MIGRATION_CHUNK = 500
#: Seconds one chunk's acknowledgements may take.
MIGRATION_CHUNK_TIMEOUT = 30.0
#: The origin of migrated records (no server answers them).
MIGRATION_ORIGIN = "migration"

#: Limits a migrated reaction cannot reach: the single server accepted it under its own.
_NO_LIMITS = [2**31, 2**31]
#: Conversation events, by the record kind that carries them.
_EVENT_RECORDS = {"edited": "edit", "deleted": "delete", "reacted": "react", "unreacted": "unreact"}

_ROWS = (
    "SELECT m.id, m.ts, m.room_key, m.room, m.sender, m.sender_key, m.recipient, m.recipient_key, m.text,"
    " m.action, m.client_msg_id, m.reply_to, m.deleted, m.event, f.id, m.target_id, m.target"
    " FROM messages AS m LEFT JOIN file_offers AS f ON f.id = m.id ORDER BY m.id"
)

_TOPICS = "SELECT room_key, name, topic FROM rooms WHERE topic != '' ORDER BY room_key"


class MigrationError(Exception):
    """The migration could not be done; the message says why (and what is in the stream)."""


@dataclass(slots=True)
class Migrated:
    """What the migration did."""

    room_messages: int = 0
    direct_messages: int = 0
    deleted: int = 0  # of the messages, tombstones
    events: int = 0  # edits, deletions, reactions, operators' deletion entries
    topics: int = 0
    skipped_other: int = 0  # the other moderation entries, file offers
    first_id: int = 0
    last_id: int = 0
    registered_nicks: int = 0
    moderated_rooms: int = 0

    def describe(self, stream: str) -> str:
        """One line for the operator."""
        moved = self.room_messages + self.direct_messages
        changes = self.events + self.topics
        ids = f" (ids {self.first_id}-{self.last_id})" if self.last_id else ""
        return (
            f"migrated {moved} messages and {changes} changes into the stream {stream}{ids}:"
            f" {self.room_messages} room messages, {self.direct_messages} direct messages ({self.deleted} of"
            f" them deleted), {self.events} edits, deletions and reactions, {self.topics} room topics,"
            f" {self.registered_nicks} registered nicks, the rules of {self.moderated_rooms} rooms;"
            " not migrated:"
            f" {self.skipped_other} moderation entries and file offers"
        )


def read_history(path: Path) -> tuple[list[dict[str, Any]], Migrated]:
    """The records to publish (in id order, with their old ids under ``old``; then the rooms' topics) and the
    counts."""
    if not path.is_file():
        raise MigrationError(f"no history database at {path}")
    report = Migrated()
    records: list[dict[str, Any]] = []
    texts: dict[int, str] = {}  # each message's current text, by its old id: what a migrated edit sets
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(_ROWS).fetchall()
            topics = db.execute(_TOPICS).fetchall()
    except sqlite3.Error as error:
        raise MigrationError(f"cannot read the history database {path}: {error}") from None
    for row in rows:
        old, ts, room_key, room, nick, nick_key, to, to_key, text, action, cmid, reply_to, deleted = row[:13]
        event, file_offer, target_id, target = row[13:]
        record: dict[str, Any] = {"o": MIGRATION_ORIGIN, "t": 0, "ts": ts, "nick": nick, "nick_key": nick_key}
        if event in _EVENT_RECORDS and target_id in texts:
            record.update(_event(event, target_id, texts[target_id] if event == "edited" else text))
            report.events += 1
        elif event == "delete" and target_id is None and room_key is not None:
            # An operator's deletion of someone else's message: its moderation entry (chat_server.history).
            record.update(k="deletion_entry", room_key=room_key, room=room, actor=nick, author=target)
            record.update(reason=text or None)
            report.events += 1
        elif event is not None or file_offer is not None:
            report.skipped_other += 1
            continue
        else:
            record.update(cmid=cmid, text=text, action=bool(action), reply_to=reply_to)
            if room_key is not None:
                record.update(k="say", room_key=room_key, room=room)
                report.room_messages += 1
            else:
                record.update(k="tell", to=to, to_key=to_key)
                report.direct_messages += 1
            report.deleted += deleted is not None
            texts[old] = text
        record["old"] = old
        records.append(record)
    newest = max((record["ts"] for record in records), default=0)
    for room_key, room, topic in topics:
        # Who set it is not stored: the server's own record (no nick) stores it and announces nothing.
        records.append(_topic(room_key, room, topic, newest))
        report.topics += 1
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            accounts = _accounts(db)
            rules = _rules(db)
    except sqlite3.Error as error:
        raise MigrationError(f"cannot read the history database {path}: {error}") from None
    report.registered_nicks, report.moderated_rooms = len(accounts), len(rules)
    return records + accounts + rules, report


def _tables(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _accounts(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """A ``register`` record for each registered nick (its hash, never a password: there is none)."""
    if "accounts" not in _tables(db):
        return []
    rows = db.execute(
        "SELECT nick_key, nick, salt, hash, scrypt_n, scrypt_r, scrypt_p, changed FROM accounts"
        " ORDER BY created"
    )
    return [
        {
            **_origin(ts, nick, key),
            "k": "register",
            "key": key,
            "salt": bytes(salt),
            "hash": bytes(digest),
            "cost": [n, r, p],
            "expected": None,
        }
        for key, nick, salt, digest, n, r, p, ts in rows
    ]


def _rules(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """A ``rules`` record for each room with stored rules: modes, grants, bans and mutes in force."""
    tables = _tables(db)
    if not {"room_modes", "room_grants", "room_restrictions"} <= tables:
        return []
    now = int(time.time() * 1000)
    rooms: dict[str, dict[str, Any]] = {}

    def room(key: str) -> dict[str, Any]:
        return rooms.setdefault(
            key,
            {
                **_origin(now, "", ""),
                "k": "rules",
                "room_key": key,
                "modes": None,
                "grants": [],
                "restrictions": [],
            },
        )

    for key, topic_lock, invite_only, join_key in db.execute("SELECT * FROM room_modes ORDER BY room_key"):
        room(key)["modes"] = [bool(topic_lock), bool(invite_only), join_key]
    for key, kind, account in db.execute("SELECT room_key, kind, account FROM room_grants ORDER BY room_key"):
        room(key)["grants"].append([kind, account])
    restrictions = db.execute(
        "SELECT room_key, kind, target, nick, by_nick, reason, ts, until FROM room_restrictions"
        " WHERE until IS NULL OR until > ? ORDER BY room_key, ts",
        (now,),
    )
    for key, *restriction in restrictions:
        room(key)["restrictions"].append(restriction)
    return list(rooms.values())


def _origin(ts: int, nick: str, key: str) -> dict[str, Any]:
    """The fields every record has: migrated records have no server waiting for them."""
    return {"o": MIGRATION_ORIGIN, "t": 0, "ts": ts, "nick": nick, "nick_key": key}


def _topic(room_key: str, room: str, topic: str, ts: int) -> dict[str, Any]:
    """The `topic` record of a room's stored topic."""
    return {
        "o": MIGRATION_ORIGIN,
        "t": 0,
        "ts": ts,
        "nick": "",
        "nick_key": "",
        "k": "topic",
        "room_key": room_key,
        "room": room,
        "topic": topic,
    }


def _event(event: str, target_id: int, text: str) -> dict[str, Any]:
    """The fields of the record that carries a conversation event (`id`: the message's old id, renumbered
    when published; `text`: the reaction, or an edit's message's current text)."""
    kind = _EVENT_RECORDS[event]
    fields: dict[str, Any] = {"k": kind, "id": target_id}
    if kind == "edit":
        # The single server keeps only the current text (which the message record carries); the edit sets
        # it again and marks the message edited at its time. No window: the single server allowed it.
        fields.update(text=text, window=0)
    elif kind == "delete":
        fields.update(reason=None)  # the reason is in the operator's deletion entry, if any
    else:
        fields.update(reaction=text, limits=_NO_LIMITS)
    return fields


def migrate(path: Path, config: ClusterConfig) -> Migrated:
    """Publish the history in `path` into the (empty) log stream of `config`; `MigrationError` if not."""
    records, report = read_history(path)
    link = NatsLink(config)
    try:
        link.connect()
    except ClusterUnavailable as error:
        raise MigrationError(str(error)) from None
    try:
        if link.stream_messages:
            raise MigrationError(
                f"the stream {config.stream} already holds {link.stream_messages} messages: a history is"
                " migrated into an empty stream only"
            )

        async def publish_all(js: Any) -> None:
            await _publish(js, config, records, link.last_seq, report)

        link.run(publish_all)
    finally:
        link.stop()
    return report


async def _publish(
    js: Any, config: ClusterConfig, records: list[dict[str, Any]], start: int, report: Migrated
) -> None:
    new_ids: dict[int, int] = {}
    for offset in range(0, len(records), MIGRATION_CHUNK):
        chunk = records[offset : offset + MIGRATION_CHUNK]
        futures = []
        for index, record in enumerate(chunk, start=start + offset):
            old = record.pop("old", None)  # None: a room's topic
            if old is not None:
                new_ids[old] = index + 1
            if record.get("reply_to") is not None:
                record["reply_to"] = new_ids.get(record["reply_to"])  # None: it answered a skipped one
            if record["k"] in _EVENT_RECORDS.values():
                record["id"] = new_ids[record["id"]]  # an event follows the message it changes
            headers = {"Nats-Expected-Last-Sequence": str(index)}
            futures.append(await js.publish_async(config.log_subject, msgpack.packb(record), headers=headers))
        try:
            acks = await asyncio.wait_for(asyncio.gather(*futures), MIGRATION_CHUNK_TIMEOUT)
        except Exception as error:
            raise MigrationError(
                f"the migration stopped after {offset} of {len(records)} records: {error!r}; the stream"
                f" {config.stream} keeps what was published: delete it (or name another stream) and run it"
                " again"
            ) from None
        if acks[-1].seq != start + offset + len(chunk):
            raise MigrationError(f"the stream {config.stream} is written by someone else: stopped")
    if records:
        report.first_id, report.last_id = start + 1, start + len(records)
