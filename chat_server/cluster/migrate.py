"""Migrating a single server's history into a cluster: ``chat-server --cluster URLS --migrate FILE``.

Reads the history database FILE (made by a single server; opened read-only) and publishes its room messages
and direct messages, oldest first, into the cluster's log stream, which must be empty. Each message keeps
its sender, text, timestamp, action flag and `client_msg_id`; its new id is its stream sequence, and a
reply's `reply_to` is changed to the new id of the message it answers. Every publish carries
`Nats-Expected-Last-Sequence`, so the stream holds them exactly in this order or the migration stops.

Not migrated (counted in the report): deleted messages, moderation entries, conversation events (edits,
reactions: a migrated message has its current text) and file offers, none of which cluster mode has yet
(docs/cluster.md). Start the cluster's servers with new data folders afterwards: each applies the stream to
its own copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
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

    def describe(self, stream: str) -> str:
        """One line for the operator."""
        moved = self.room_messages + self.direct_messages
        ids = f" (ids {self.first_id}-{self.last_id})" if moved else ""
        return (
            f"migrated {moved} messages into the stream {stream}{ids}: {self.room_messages} room messages,"
            f" {self.direct_messages} direct messages; not migrated: {self.skipped_deleted} deleted messages,"
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
    return records, report


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
            old = record.pop("old")
            new_ids[old] = index + 1
            if record["reply_to"] is not None:
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
    if records:
        report.first_id, report.last_id = start + 1, start + len(records)
