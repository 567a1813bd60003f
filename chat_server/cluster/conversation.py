"""Edits, deletions, reactions and topics in cluster mode: conversation changes as records of the log.

`ClusterConversations` runs on the history thread only. It takes the `edit`, `delete`, `react`, `unreact`
and `set_topic` rows of the routing table in cluster mode, and applies the records they publish. Each
request goes the way of the single server (chat_server.history.conversation, whose three steps it calls),
with the log between the rule and the change:

1. The origin (the server the requester is on) finds the message the requester can see and checks the
   single server's rule against its local copy (author, `edit_window`, operator, reaction limits, mute);
   for a topic, membership and the topic lock (`Rooms.topic_room`). A refusal is answered at once. Else it
   publishes a record (``k``: `edit`, `delete`, `react`, `unreact`, `topic`) and answers nothing yet.
2. Every server applies the records in stream order, in the open transaction. The applier re-checks what
   an earlier record may have changed since the origin looked: the message may have been deleted; the
   reactions may have filled up (two reactions racing for the last slot: the first in the log wins, the
   second is refused on every server alike) or the same reaction may be there already (a duplicate). The
   limits and the edit window the origin applied travel in the record, so servers with different configs
   still decide alike. What no record of this part can change is not checked again: the author, and (for
   now) the requester's membership, mute and operator status, which the origin checked (as for `say`).
3. An accepted record is stored with its stream sequence as the event's id (`store_edit`, ... of the single
   server), and its frame waits for the commit, then goes to this server's members of the conversation.
   The origin answers its requester there: the `ack` (or `ok` for a topic), or the error of the re-check.

An operator's deletion of someone else's message stores two entries on a single server (the `deleted` event
and its `moderated` entry), and each needs an id of its own: a record has one. So the origin, when it applies
its own accepted operator deletion, publishes a second record (`deletion_entry`) for the `moderated` entry,
and acks the requester when that one comes back (with the entry's id, as a single server does). Should the
origin stop between the two, the deletion stands without its `moderated` entry (docs/cluster.md).
"""

from __future__ import annotations

import logging
from typing import Any

from chat_server.history.conversation import (
    Conversations,
    Entry,
    Refused,
    check_delete,
    check_edit,
    check_live,
    check_react,
    check_unreact,
    store_delete,
    store_deletion_entry,
    store_edit,
    store_reaction,
    where,
)
from chat_server.history.moderation import Moderation
from chat_server.history.rooms import Rooms
from chat_server.hub import Client, Room
from chat_server.replies import error_frame, now_ms
from chat_server.storage import HistoryError, Target
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Ack, Delete, Edit, Ok, React, SetTopic, TopicChanged, Unreact

from .messaging import Awaiting, ClusterMessages

log = logging.getLogger(__name__)


class ClusterConversations:
    """Publishes conversation changes to the log and applies the log's (history thread only)."""

    def __init__(
        self, messages: ClusterMessages, conversations: Conversations, rooms: Rooms, moderation: Moderation
    ) -> None:
        self._messages = messages
        self._conversations = conversations
        self._rooms = rooms
        self._moderation = moderation
        self.hub = conversations.hub
        self.store = conversations.store
        self.config = conversations.config
        for kind, applier in (
            ("edit", self._apply_edit),
            ("delete", self._apply_delete),
            ("deletion_entry", self._apply_deletion_entry),
            ("react", self._apply_react),
            ("unreact", self._apply_unreact),
            ("topic", self._apply_topic),
        ):
            messages.applies(kind, applier)

    # -- Requests: check as a single server does, then publish (the origin) ---------------------------------

    def edit(self, client: Client, request: Edit) -> None:
        """Check an edit against the local copy, then publish it."""
        window = self.config.edit_window
        try:
            target, room = self._conversations.visible(client, request.id)
            check_edit(target, client.key or "", self._conversations.muted(client, room), now_ms(), window)
        except (Refused, HistoryError) as refusal:
            self._refuse(client, refusal, request.ref)
            return
        record = {"k": "edit", "id": target.id, "text": request.text, "window": window}
        self._messages.publish(record, Awaiting(client, request.ref))

    def delete(self, client: Client, request: Delete) -> None:
        """Check a deletion (one's own, or an operator's in its room), then publish it."""
        try:
            target, room = self._conversations.visible(client, request.id)
            operator = room is not None and self._moderation.is_operator(client, room.key)
            check_delete(target, client.key or "", operator)
        except (Refused, HistoryError) as refusal:
            self._refuse(client, refusal, request.ref)
            return
        record = {"k": "delete", "id": target.id, "reason": request.reason}
        self._messages.publish(record, Awaiting(client, request.ref))

    def react(self, client: Client, request: React) -> None:
        """Check a reaction against the local copy, then publish it."""
        limits = self._conversations.reaction_limits()
        try:
            target, room = self._conversations.visible(client, request.id)
            present = self.store.reactions(target.id)
            muted = self._conversations.muted(client, room)
            check_react(present, client.key or "", request.reaction, muted, limits)
        except (Refused, HistoryError) as refusal:
            self._refuse(client, refusal, request.ref)
            return
        # A duplicate by the local copy is published too: the log decides, alike for every server (step 2).
        record = {"k": "react", "id": target.id, "reaction": request.reaction, "limits": list(limits)}
        self._messages.publish(record, Awaiting(client, request.ref))

    def unreact(self, client: Client, request: Unreact) -> None:
        """Check that the reaction is the requester's, then publish its removal."""
        try:
            target, room = self._conversations.visible(client, request.id)
            present = self.store.reactions(target.id)
            check_unreact(
                present, client.key or "", request.reaction, self._conversations.muted(client, room)
            )
        except (Refused, HistoryError) as refusal:
            self._refuse(client, refusal, request.ref)
            return
        record = {"k": "unreact", "id": target.id, "reaction": request.reaction}
        self._messages.publish(record, Awaiting(client, request.ref))

    def set_topic(self, client: Client, request: SetTopic) -> None:
        """Check a topic change as a single server does (member; operator if locked), then publish it."""
        room = self._rooms.topic_room(client, request)
        if room is None:
            return
        record = {"k": "topic", "room_key": room.key, "room": room.name, "topic": request.topic}
        self._messages.publish(record, Awaiting(client, request.ref))

    @staticmethod
    def _refuse(client: Client, refusal: Refused | HistoryError, ref: int | None) -> None:
        if isinstance(refusal, Refused):
            client.send(error_frame(refusal.code, refusal.message, ref))
        else:
            unread = f"the message could not be read: {refusal}"
            client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, unread, ref))

    # -- Applying the log's records (every server, in stream order) ----------------------------------------

    def _apply_edit(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        actor, actor_key, ts = record["nick"], record["nick_key"], record["ts"]
        try:
            target, room = self._target(record["id"])
            check_edit(target, actor_key, None, ts, record["window"])
        except Refused as refused:
            self._refused(refused, waiting)
            return
        at = where(target, actor_key, room)
        keep = self.config.keep_edits
        edited = store_edit(self.store, target, actor, record["text"], ts, at, keep=keep, event_id=seq)
        self._deliver(target, room, edited, waiting)

    def _apply_delete(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        actor, actor_key, ts = record["nick"], record["nick_key"], record["ts"]
        try:
            target, room = self._target(record["id"])
        except Refused as refused:
            self._refused(refused, waiting)
            return
        # Not the author's own: the origin checked that the actor is an operator of the room.
        moderated = target.sender_key != actor_key and room is not None
        at = where(target, actor_key, room)
        deleted = store_delete(self.store, target, actor, ts, at, keep=self.config.keep_edits, event_id=seq)
        if not moderated:
            self._deliver(target, room, deleted, waiting)
            return
        self._deliver(target, room, deleted, None)
        if waiting is not None:
            # The moderation entry needs an id of its own: the origin logs it as the next record.
            entry = {
                "k": "deletion_entry",
                "room_key": target.room_key,
                "room": target.room,
                "actor": actor,
                "author": target.sender,
                "reason": record["reason"],
            }
            self._messages.publish(entry, waiting)

    def _apply_deletion_entry(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        room = self.hub.add_room(record["room_key"], record["room"])
        actor, author = record["actor"], record["author"]
        moderated = store_deletion_entry(
            self.store, room, actor, author, record["reason"], record["ts"], entry_id=seq
        )
        log.info("event=moderation room=%r actions=[('delete', %r)] by=%r", room.name, author, actor)
        self._deliver(None, room, moderated, waiting)

    def _apply_react(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        actor, actor_key, reaction = record["nick"], record["nick_key"], record["reaction"]
        per_message, per_user = record["limits"]
        try:
            target, room = self._target(record["id"])
            present = self.store.reactions(target.id)
            already = check_react(present, actor_key, reaction, None, (per_message, per_user))
        except Refused as refused:
            self._refused(refused, waiting)
            return
        if already is not None:
            # Put there meanwhile (by another session of the nick): nothing new, a duplicate as on one server.
            if waiting is not None and waiting.ref is not None:
                ack = Ack(id=already, ts=self.store.event_ts(already), duplicate=True, ref=waiting.ref)
                self._messages.hold(waiting.client, encode(ack), waiting.ref)
            return
        at = where(target, actor_key, room)
        reacted = store_reaction(
            self.store, target, actor, reaction, record["ts"], at, added=True, event_id=seq
        )
        self._deliver(target, room, reacted, waiting)

    def _apply_unreact(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        actor, actor_key, reaction = record["nick"], record["nick_key"], record["reaction"]
        try:
            target, room = self._target(record["id"])
            check_unreact(self.store.reactions(target.id), actor_key, reaction, None)
        except Refused as refused:
            self._refused(refused, waiting)
            return
        at = where(target, actor_key, room)
        ts = record["ts"]
        unreacted = store_reaction(self.store, target, actor, reaction, ts, at, added=False, event_id=seq)
        self._deliver(target, room, unreacted, waiting)

    def _apply_topic(self, _seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        room = self.hub.add_room(record["room_key"], record["room"])
        topic = record["topic"]
        self.store.save_topic(room.key, room.name, topic)
        with self.hub.lock:
            room.topic = topic
        if record["nick"]:  # else: the server's own record (a migrated topic): stored, not announced
            changed = TopicChanged(room=room.name, topic=topic, nick=record["nick"], ts=record["ts"])
            self._messages.hold(None, b"", None, relay=encode(changed), room=room)
        if waiting is not None and waiting.ref is not None:
            self._messages.hold(waiting.client, encode(Ok(ref=waiting.ref)), waiting.ref)

    # -- Helpers of the appliers ---------------------------------------------------------------------------

    def _target(self, message_id: int) -> tuple[Target, Room | None]:
        """The message a record changes, not deleted by an earlier record, and its room (made known to the
        hub if this server had not heard of it)."""
        target = self.store.target(message_id)
        if target is None or not target.chat:
            raise Refused(ErrorCode.NO_SUCH_MESSAGE, f"no message {message_id} that you can see")
        check_live(target)
        if target.room_key is None:
            return target, None
        return target, self.hub.add_room(target.room_key, target.room or target.room_key)

    @staticmethod
    def _refused(refused: Refused, waiting: Awaiting | None) -> None:
        """A record the re-check refused changes nothing anywhere; its origin tells the requester why."""
        if waiting is not None:
            waiting.client.send(error_frame(refused.code, refused.message, waiting.ref))

    def _deliver(
        self, target: Target | None, room: Room | None, frame: Entry, waiting: Awaiting | None
    ) -> None:
        """Hold `frame` for this server's members of the conversation (the room's, or the local sessions of
        the direct conversation's two ends), then the requester's `ack` if it is here; after the commit."""
        data = encode(frame)
        if room is not None:
            self._messages.hold(None, b"", None, relay=data, room=room)
            room.last_id = frame.id
        elif target is not None:
            self._messages.hold(None, b"", None, relay=data, recipients=self._ends(target))
        if waiting is not None and waiting.ref is not None:
            ack = Ack(id=frame.id, ts=frame.ts, ref=waiting.ref)
            self._messages.hold(waiting.client, encode(ack), waiting.ref)

    def _ends(self, target: Target) -> tuple[Client, ...]:
        """Every session on this server of the two ends of `target`'s direct conversation."""
        sessions: dict[int, Client] = {}
        for key in {target.sender_key, target.recipient_key or target.sender_key}:
            holder = self.hub.nicks.get(key)
            for session in holder.sessions if holder is not None else ():
                sessions.setdefault(session.id, session)
        return tuple(sessions.values())
