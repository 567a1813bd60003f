"""Room and direct messages in cluster mode: the message log is a JetStream stream (history thread only).

`ClusterMessages` is the history thread's `Messages` (chat_server.history.messaging) with one change of
route: a `say` or `tell` is checked here exactly as on a single server (membership, mute, reply target, an
earlier `client_msg_id`), then, instead of being inserted into SQLite, it is *published* to the log stream
(`NatsLink.publish`, once per batch: the pipeline). Nothing is acked yet.

Every server, the one that published included, receives the log's records in stream order through its
consumer (`Replicated` requests) and applies them here: each record is inserted into the local SQLite copy
with its stream sequence as its id, in the open transaction, with its deliveries held back exactly as a
single server holds a message's deliveries (`_Stored`), so the group commit, the fan-out and every reader of
the history (pages, backfill, resume, replies) are the single server's code. The server that published a
record recognises it (its origin id and token) and puts the sender's `ack` in the place of its own `said`.
So an ack means: JetStream stored the message (replicated), and this server's copy has it too.

The log holds records of several kinds (``k``): `say` and `tell` are applied here; each other cluster part
(chat_server.cluster) publishes its own kinds with `publish` and registers their appliers with `applies`
(`edit`, `delete`, `deletion_entry`, `react`, `unreact` and `topic`: chat_server.cluster.conversation).
An applier runs on every server, in stream order, in the open transaction: it re-checks its record against
the state the earlier records made (so every server decides alike: this is a replicated state machine, with
the log as its one order), and the server that published the record answers its requester there.

A publish JetStream answers with *duplicate* (the `Nats-Msg-Id` made from the sender, the conversation and
the `client_msg_id` is already in the stream, e.g. a resend after a failover) is acked with the original's
id and `duplicate`; one that fails or is not acknowledged within `publish_timeout` is refused with
`history_unavailable` (`Published` requests).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from chat_server.history.messaging import Messages, _Stored, direct_recipients
from chat_server.history.moderation import Moderation
from chat_server.hub import Client, Hub, member_room
from chat_server.metrics import Tally
from chat_server.replies import error_frame, fatal_frame
from chat_server.storage import HistoryError, HistoryStore, conversation_key
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Ack, Said, Say, Tell, Told
from shared.text import fold

from .link import ClusterUnavailable, NatsLink, Outbound, Published, Replicated
from .nicks import NickLost

log = logging.getLogger(__name__)

#: The table of the local copy that says how far it has applied the log (in the same transaction).
POSITION_SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_log (
    stream  TEXT PRIMARY KEY,
    applied INTEGER NOT NULL
);
"""
#: What a record of each kind stores, as the refusal of one the log could not take names it ("the nick change
#: was not stored"); a kind missing here is named by its ``k``.
STORED: dict[str, str] = {
    "say": "message",
    "tell": "message",
    "file": "file offer",
    "edit": "edit",
    "delete": "deletion",
    "deletion_entry": "moderation entry of the deletion",
    "react": "reaction",
    "unreact": "removal of the reaction",
    "topic": "topic",
    "nick": "nick change",
    "moderate": "moderation action",
    "register": "registration",
    "unregister": "unregistration",
    "read_marker": "read marker",
    "notify": "notification level",
    "keywords": "keywords",
    "join": "join",
    "leave": "leave",
    "away": "away message",
    "signoff": "sign-off",
    "back": "return of the absent nick",
}


def unstored(kind: str, error: str, connected: bool) -> str:
    """The refusal of a `kind` record the log could not take (`error`: NATS's answer, if it was reached)."""
    what = STORED.get(kind, f"{kind} record")
    if not connected:
        return f"the cluster's message log (NATS JetStream) is unreachable: the {what} was not stored"
    return f"the {what} was not stored: {error}"


@dataclass(slots=True)
class Awaiting:
    """A record this server published and has not answered yet: who asked, and its `ref`."""

    client: Client
    ref: int | None
    client_msg_id: str | None = None
    #: The kind of the record (its ``k``, set by `publish`): what a refusal says was not stored.
    kind: str = ""

    def duplicate(self, seq: int, ts: int) -> bytes:
        """The answer when JetStream found the record's `Nats-Msg-Id` stored already, as record `seq`: the
        `ack` of a resent message (a file offer answers with its own frame: chat_server.cluster.files)."""
        return encode(Ack(id=seq, ts=ts, client_msg_id=self.client_msg_id, duplicate=True, ref=self.ref))


def dedup_id(sender_key: str | None, conversation: str, client_msg_id: str | None) -> str | None:
    """The `Nats-Msg-Id` of a record carrying `client_msg_id` (None without one): one sender, one
    conversation, one `client_msg_id`, so JetStream drops a resend within its duplicate window, whichever
    server it reaches."""
    if client_msg_id is None:
        return None
    seen = f"{sender_key}\x00{conversation}\x00{client_msg_id}".encode()
    return hashlib.sha256(seen).hexdigest()


#: What applies one kind of record to this server's copy: (stream sequence, record, the request waiting
#: for it if this server published it, else None). It runs in the open transaction of the history thread and
#: must reach the same state on every server from the same records: it may re-check the record against the
#: state the earlier records made, never against anything local to this server but its own members.
Applier = Callable[[int, dict[str, Any], Awaiting | None], None]


class LocalHistoryAhead(ClusterUnavailable):
    """The local history has messages the stream does not: it cannot follow this stream."""


class ClusterMessages(Messages):
    """`Messages` whose durable store is the cluster's log stream (history thread only)."""

    def __init__(
        self,
        hub: Hub,
        store: HistoryStore,
        ts: Callable[[], int],
        moderation: Moderation,
        tally: Tally | None,
        link: NatsLink,
    ) -> None:
        super().__init__(hub, store, ts, moderation, tally)
        self.link = link
        self.stream = link.config.stream
        #: This process's id in the records it publishes (a new one at every start).
        self.origin = link.origin
        self._tokens = itertools.count(1)
        self._awaiting: dict[int, Awaiting] = {}
        self._outbound: list[Outbound] = []
        #: The record kinds this server applies, by the record's ``k``: `say` and `tell` here; the other
        #: cluster parts add theirs with `applies`.
        self.appliers: dict[str, Applier] = {"say": self._apply_say, "tell": self._apply_tell}
        store.add_schema(POSITION_SCHEMA)
        row = store.run("SELECT applied FROM cluster_log WHERE stream = ?", (self.stream,)).fetchone()
        #: The last stream sequence applied to the local copy.
        self.applied = int(row[0]) if row else 0
        newest = store.run("SELECT MAX(id) FROM messages").fetchone()[0] or 0
        if newest > self.applied:
            raise LocalHistoryAhead(
                f"the history database {store.path} has messages (up to id {newest}) that are not from the"
                f" cluster's stream {self.stream}: start a cluster server with a new data folder"
            )
        if self.applied > link.last_seq:
            raise LocalHistoryAhead(
                f"the history database {store.path} has applied the stream {self.stream} up to"
                f" {self.applied}, but the stream ends at {link.last_seq}: it is another stream"
            )

    def servers(self) -> tuple[str, ...]:
        """The other servers of the cluster, for `welcome.servers` (as the servers bucket last said)."""
        return self.link.peers

    # -- Publishing (the route of say and tell in cluster mode) -------------------------------------------

    def cluster_say(self, client: Client, request: Say) -> None:
        """Check a room message as a single server does, then publish it to the log."""
        room = member_room(client, request.room, request.ref)
        if room is None:
            return
        if (muted := self._moderation.silenced(client, room)) is not None:
            client.send(error_frame(ErrorCode.MUTED, muted, request.ref))
            return
        try:
            if request.reply_to is not None and not self._replies_within(client, request, room.key, None):
                return
            if self._answered_before(client, request, room.key):
                return
        except HistoryError as error:
            self._failed_write(client, error, request.ref)
            return
        record = {
            "k": "say",
            "room_key": room.key,
            "room": room.name,
            "text": request.text,
            "action": request.action,
            "reply_to": request.reply_to,
        }
        self._publish(client, request, room.key, record)

    def cluster_tell(self, client: Client, request: Tell) -> None:
        """Check a direct message as a single server does, then publish it to the log.

        The recipient need not be on this server: whichever server holds its nick delivers it."""
        recipient = self.hub.nicks.get(fold(request.to))
        to = recipient.nick if recipient is not None and recipient.nick is not None else request.to
        to_key = fold(to)
        try:
            if request.reply_to is not None and not self._replies_within(client, request, None, to_key):
                return
            if self._answered_before(client, request, conversation_key(None, to_key)):
                return
        except HistoryError as error:
            self._failed_write(client, error, request.ref)
            return
        record = {
            "k": "tell",
            "to": to,
            "to_key": to_key,
            "text": request.text,
            "action": request.action,
            "reply_to": request.reply_to,
        }
        self._publish(client, request, conversation_key(None, to_key), record)

    def _publish(
        self, client: Client, request: Say | Tell, conversation: str, record: dict[str, Any]
    ) -> None:
        msg_id = dedup_id(client.key, conversation, request.client_msg_id)
        record["cmid"] = request.client_msg_id
        self.publish(record, Awaiting(client, request.ref, request.client_msg_id), msg_id)

    def applies(self, kind: str, applier: Applier) -> None:
        """Apply the log's records of `kind` with `applier` (a cluster part registers its kinds)."""
        assert kind not in self.appliers, f"two appliers for {kind!r}"
        self.appliers[kind] = applier

    def publish(self, record: dict[str, Any], waiting: Awaiting | None, msg_id: str | None = None) -> int:
        """Queue `record` (its ``k`` and fields) for the log, sent at the end of the batch (`flush`).

        The record gets this server's origin and token, the time and the requester's nick (empty for the
        server's own records). `waiting` is answered by the applier when the record comes back through the
        log (every server applies it then, this one included), or with `history_unavailable` if the log
        cannot take it. `msg_id` is JetStream's de-duplication id: a second record with the same id within
        the duplicate window is not stored (`published` acks a waiting `say` or `tell` as a duplicate).
        Returns the record's token (what a `Published` outcome names it by)."""
        token = next(self._tokens)
        requester = waiting.client if waiting is not None else None
        nick = requester.nick if requester is not None else None
        key = requester.key if requester is not None else None
        record.update(o=self.origin, t=token, ts=self._ts(), nick=nick or "", nick_key=key or "")
        if waiting is not None:
            waiting.kind = record["k"]
            self._awaiting[token] = waiting
        self._outbound.append(Outbound(token, msgpack.packb(record), msg_id))
        return token

    def flush(self) -> None:
        """Commit and deliver what was applied (`Messages.flush`), then publish the batch's messages.

        Records that left nothing to deliver here (a change in a room with no member on this server) are
        committed all the same, with the position: the batch ends with everything it applied on disk."""
        super().flush()
        if self.store.in_transaction:
            try:
                self.store.commit()
            except HistoryError as error:
                self.history_failed(error, [])
        if self._outbound:
            outbound, self._outbound = self._outbound, []
            self.link.publish(outbound)

    # -- Applying the log (every server) --------------------------------------------------------------------

    def barrier(self, seq: int) -> None:
        """Commit and deliver every record applied before record `seq` (an applier calls it first when its
        record is a barrier, as a join is on a single server: chat_server.history.chat), so what the record
        sends goes out after the deliveries of every record before it, to the members as they were then."""
        before = seq - 1
        if before > self.applied:
            self._save_position(before)
            self.applied = before
        self.flush()

    def apply(self, _link: Client, request: Replicated) -> None:
        """Insert the log's records into the local copy and hold their deliveries until the commit."""
        if request.generation != self.link.generation:
            return  # read by a consumer replaced since: its successor sends them again
        applied = self.applied
        try:
            for seq, payload in request.records:
                if seq <= applied:
                    continue  # the consumer was reset and sent it again: applied already
                self._apply_record(seq, msgpack.unpackb(payload))
                if request.generation != self.link.generation:
                    # A barrier's commit failed and rewound the log (`_rewind`): whatever the record did
                    # after it is dropped too, and the records come again from the position on disk.
                    self.store.rollback()
                    self._pending = []
                    return
                applied = seq
            if applied != self.applied:
                self._save_position(applied)
        except HistoryError as error:
            # The batch is rolled back; the records come again once the consumer is reset at the position.
            log.error("event=cluster_apply_failed error=%s", error)
            pending, self._pending = self._pending, []
            super().history_failed(error, pending)
            self._rewind(always=True)
            return
        self.applied = applied

    def _save_position(self, applied: int) -> None:
        """Write how far the local copy has applied the log, in the open transaction."""
        self.store.begin()
        self.store.run(
            "INSERT INTO cluster_log (stream, applied) VALUES (?, ?)"
            " ON CONFLICT (stream) DO UPDATE SET applied = excluded.applied",
            (self.stream, applied),
        )

    def history_failed(self, error: HistoryError, pending: list[_Stored]) -> None:
        """Roll back the open transaction (`Messages.history_failed`), and with it whatever this batch
        applied of the log (an earlier request of the batch may have applied records): see `_rewind`."""
        super().history_failed(error, pending)
        self._rewind(always=False)

    def _rewind(self, *, always: bool) -> None:
        """After a rollback: the position goes back to the one on disk, and the log is read again from there
        (`always`: even if nothing applied was lost, as when applying itself failed), so the local copy has
        no gap."""
        try:
            row = self.store.run(
                "SELECT applied FROM cluster_log WHERE stream = ?", (self.stream,)
            ).fetchone()
        except HistoryError as unreadable:  # the database is down: the next failure or a restart reads it
            log.error("event=cluster_position_unreadable error=%s", unreadable)
            committed = self.applied
        else:
            committed = int(row[0]) if row else 0
        if committed != self.applied or always:
            log.warning("event=cluster_rewind from=%d to=%d", self.applied, committed)
            self.applied = committed
            self.link.refollow(committed)

    def _apply_record(self, seq: int, record: dict[str, Any]) -> None:
        waiting = self._awaiting.pop(record["t"], None) if record["o"] == self.origin else None
        applier = self.appliers.get(record["k"])
        if applier is None:
            # Written by a newer server: skipped alike by every server of this version.
            log.warning("event=cluster_record_unknown kind=%r seq=%d", record["k"], seq)
            return
        applier(seq, record, waiting)

    def _apply_say(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        sender = waiting.client if waiting is not None else None
        ts, nick, text, action, reply_to, cmid = (
            record[field] for field in ("ts", "nick", "text", "action", "reply_to", "cmid")
        )
        room = self.hub.add_room(record["room_key"], record["room"])
        self.store.add_room_message(
            room_key=room.key,
            room=record["room"],
            sender=nick,
            sender_key=record["nick_key"],
            text=text,
            ts=ts,
            action=action,
            client_msg_id=cmid,
            reply_to=reply_to,
            message_id=seq,
        )
        room.last_id = seq
        said = encode(
            Said(id=seq, room=room.name, nick=nick, text=text, ts=ts, action=action, reply_to=reply_to)
        )
        if sender is not None and waiting is not None:
            ack = encode(Ack(id=seq, ts=ts, client_msg_id=cmid, ref=waiting.ref))
            if room.key in sender.rooms:
                self._pending.append(_Stored(sender, ack, waiting.ref, relay=said, room=room))
                return
            self._pending.append(_Stored(sender, ack, waiting.ref))  # it left the room meanwhile
        self._pending.append(_Stored(None, b"", None, relay=said, room=room))

    def _apply_tell(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        sender = waiting.client if waiting is not None else None
        ts, nick, text, action, reply_to, cmid = (
            record[field] for field in ("ts", "nick", "text", "action", "reply_to", "cmid")
        )
        self.store.add_direct_message(
            sender=nick,
            sender_key=record["nick_key"],
            recipient=record["to"],
            recipient_key=record["to_key"],
            text=text,
            ts=ts,
            action=action,
            client_msg_id=cmid,
            reply_to=reply_to,
            message_id=seq,
        )
        told = encode(
            Told(id=seq, nick=nick, to=record["to"], text=text, ts=ts, action=action, reply_to=reply_to)
        )
        peer = self.hub.nicks.get(record["to_key"])
        if sender is not None:
            recipients = direct_recipients(sender, peer)  # a note to self: the ack stands in the told's place
        else:
            recipients = tuple(peer.sessions) if peer is not None else ()
        ack = b""
        if sender is not None and waiting is not None:
            away = peer.away if peer is not None and peer is not sender else None
            ack = encode(Ack(id=seq, ts=ts, client_msg_id=cmid, ref=waiting.ref, away=away))
        self._pending.append(
            _Stored(sender, ack, waiting.ref if waiting else None, relay=told, recipients=recipients)
        )

    def published(self, _link: Client, request: Published) -> None:
        """Answer the publishes the consumer will not report: duplicates (acked) and failures (refused)."""
        for token, seq, error in request.outcomes:
            waiting = self._awaiting.pop(token, None)
            if waiting is None:
                continue
            if error is not None:
                log.warning("event=cluster_publish_failed error=%s", error)
                message = unstored(waiting.kind, error, self.link.connected)
                waiting.client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, message, waiting.ref))
                continue
            target = self.store.target(seq)
            ts = target.ts if target is not None else int(time.time() * 1000)
            waiting.client.send(waiting.duplicate(seq, ts))

    def nick_lost(self, _link: Client, request: NickLost) -> None:
        """Another server took over the nick `request.key` with its session's resume token (a client that
        failed over): end the session still holding it here."""
        holder = self.hub.nicks.get(request.key)
        if holder is not None:
            log.info("conn=%d event=session_moved nick=%r", holder.id, holder.nick)
            replaced = "this session was resumed on another server of the cluster"
            holder.close(fatal_frame(ErrorCode.SESSION_REPLACED, replaced), False)
