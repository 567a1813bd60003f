"""Migrating a single server's history into a cluster: ``chat-server --cluster URLS --migrate FILE``.

Reads the history database FILE (made by a single server; opened read-only) and publishes its room messages
and direct messages, oldest first, into the cluster's log stream, which must be empty. Each message keeps
its sender, text, timestamp, action flag and `client_msg_id`; its new id is its stream sequence, and a
reply's `reply_to` is changed to the new id of the message it answers. After the messages come the
registered nicks (a ``register`` record each: the nick, its scrypt hash, salt and cost, as a registration
made in the cluster) and the rules of each moderated room (a ``rules`` record each: its modes, its stored
operators and invitations, its bans and mutes still in force), which every server applies to its copy as it
applies the cluster's own records (chat_server.cluster.accounts, chat_server.cluster.moderation). Every
publish carries `Nats-Expected-Last-Sequence`, so the stream holds them exactly in this order or the
migration stops.

Not migrated (counted in the report): deleted messages, moderation entries (the history of who did what:
the rules they made are migrated), conversation events (edits, reactions: a migrated message has its
current text) and file offers. Start the cluster's servers with new data folders afterwards: each applies
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

_ROWS = (
    "SELECT m.id, m.ts, m.room_key, m.room, m.sender, m.sender_key, m.recipient, m.recipient_key, m.text,"
    " m.action, m.client_msg_id, m.reply_to, m.deleted, m.event, f.id FROM messages AS m"
    " LEFT JOIN file_offers AS f ON f.id = m.id ORDER BY m.id"
)


class MigrationError(Exception):
    """The migration could not be done; the message says why (and what is in the stream)."""


@dataclass(slots=True)
class Migrated:
    """What the migration did."""

    room_messages: int = 0
    direct_messages: int = 0
    skipped_deleted: int = 0
    skipped_other: int = 0  # moderation entries, conversation events, file offers
    first_id: int = 0
    last_id: int = 0
    registered_nicks: int = 0
    moderated_rooms: int = 0

    def describe(self, stream: str) -> str:
        """One line for the operator."""
        moved = self.room_messages + self.direct_messages
        ids = f" (ids {self.first_id}-{self.last_id})" if moved else ""
        return (
            f"migrated {moved} messages into the stream {stream}{ids}: {self.room_messages} room messages,"
            f" {self.direct_messages} direct messages; {self.registered_nicks} registered nicks, the rules"
            f" of {self.moderated_rooms} rooms; not migrated: {self.skipped_deleted} deleted messages,"
            f" {self.skipped_other} moderation entries, edits, reactions and file offers"
        )


def read_history(path: Path) -> tuple[list[dict[str, Any]], Migrated]:
    """The records to publish (in id order, with their old ids under ``old``) and the skipped counts."""
    if not path.is_file():
        raise MigrationError(f"no history database at {path}")
    report = Migrated()
    records: list[dict[str, Any]] = []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(_ROWS).fetchall()
    except sqlite3.Error as error:
        raise MigrationError(f"cannot read the history database {path}: {error}") from None
    for row in rows:
        old, ts, room_key, room, nick, nick_key, to, to_key, text, action, cmid, reply_to, deleted = row[:13]
        event, file_offer = row[13], row[14]
        if event is not None or file_offer is not None:
            report.skipped_other += 1
            continue
        if deleted is not None:
            report.skipped_deleted += 1
            continue
        record: dict[str, Any] = {
            "o": MIGRATION_ORIGIN,
            "t": 0,
            "ts": ts,
            "nick": nick,
            "nick_key": nick_key,
            "cmid": cmid,
            "text": text,
            "action": bool(action),
            "reply_to": reply_to,
            "old": old,
        }
        if room_key is not None:
            record.update(k="say", room_key=room_key, room=room)
            report.room_messages += 1
        else:
            record.update(k="tell", to=to, to_key=to_key)
            report.direct_messages += 1
        records.append(record)
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
            old = record.pop("old", None)
            if old is not None:  # a message (registered nicks and rules come after them)
                new_ids[old] = index + 1
            if record.get("reply_to") is not None:
                record["reply_to"] = new_ids.get(record["reply_to"])  # None: it answered a skipped one
            headers = {"Nats-Expected-Last-Sequence": str(index)}
            futures.append(await js.publish_async(config.log_subject, msgpack.packb(record), headers=headers))
        try:
            acks = await asyncio.wait_for(asyncio.gather(*futures), MIGRATION_CHUNK_TIMEOUT)
        except Exception as error:
            raise MigrationError(
                f"the migration stopped after {offset} of {len(records)} messages: {error!r}; the stream"
                f" {config.stream} keeps what was published: delete it (or name another stream) and run it"
                " again"
            ) from None
        if acks[-1].seq != start + offset + len(chunk):
            raise MigrationError(f"the stream {config.stream} is written by someone else: stopped")
    if new_ids:
        report.first_id, report.last_id = start + 1, start + len(new_ids)
