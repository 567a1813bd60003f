"""Rooms: joining (with its backfill), leaving, topics, who is there, and the room list.

`Rooms` runs on the history thread only (called by `chat_server.history.chat.Chat`). Every change is a
*barrier*: it commits and delivers the messages stored before it (`Messages.flush`) first, so the membership a
message is fanned out to is the membership at the moment it was stored. A join reads its backfill after that
flush, so the joiner gets each message exactly once: in the backfill if it was stored before the join, as a
`said` if after. Who may join, set a topic or look in is moderation's call (`chat_server.history.moderation`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from chat_server.config import ServerConfig
from chat_server.hub import Client, Hub, Room, member_room
from chat_server.replies import answer, error_frame
from chat_server.storage import HistoryError, HistoryStore, Page
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import (
    History,
    Join,
    Joined,
    Leave,
    Left,
    ListRooms,
    RoomList,
    RoomSummary,
    SetTopic,
    TopicChanged,
    Who,
)
from shared.text import fold

from .attention import Attention
from .messaging import Messages
from .moderation import Moderation
from .roomstate import RoomStates

log = logging.getLogger(__name__)


class Rooms:
    """Applies the room requests to the hub and the history (history thread only)."""

    def __init__(
        self,
        hub: Hub,
        store: HistoryStore,
        config: ServerConfig,
        ts: Callable[[], int],
        messages: Messages,
        moderation: Moderation,
        attention: Attention,
        reply_bytes: int,
    ) -> None:
        self.hub = hub
        self.store = store
        self.config = config
        self._ts = ts
        self._messages = messages
        self._moderation = moderation
        self._attention = attention
        self._reply_bytes = reply_bytes
        self._room_states = RoomStates(config.max_list, reply_bytes)

    # -- Requests ------------------------------------------------------------------------------------------

    def join(self, client: Client, request: Join) -> None:
        """A `join`: put `client` in the room (if it may enter), then send its `room_state` and backfill."""
        self.join_room(client, request.room, request.after, request.backfill, request.ref, request.key)

    def join_room(
        self,
        client: Client,
        name: str,
        after: int | None,
        backfill: int | None,
        ref: int | None,
        room_key: str | None = None,
    ) -> None:
        """Put `client` in a room (if it may enter), then send its `room_state` and its backfill."""
        self._messages.flush()
        key = fold(name)
        room = self.hub.rooms.get(key)
        siblings: list[Client] = []  # the nick's other sessions, when this join takes the nick in
        if room is None or key not in client.rooms:
            if len(client.rooms) >= self.config.max_rooms_per_client:
                limit = self.config.max_rooms_per_client
                client.send(error_frame(ErrorCode.TOO_MANY_ROOMS, f"you are in {limit} rooms already", ref))
                return
            refusal = self._moderation.admission(client, key, room.name if room else name, room_key)
            if refusal is not None:
                client.send(error_frame(*refusal, ref))
                return
            room = self.hub.add_room(key, name)
            was_empty = not room.members
            self.hub.enter(client, room)
            self._moderation.entered(client, room, was_empty)
            op = self._moderation.is_operator(client, key)
            self.hub.publish(
                room, encode(Joined(room=room.name, nick=client.nick or "", ts=self._ts(), op=op))
            )
            siblings = [session for session in client.sessions if session is not client]
        self.send_room_state(client, room, ref)
        for sibling in siblings:  # a join applies to the nick: each of its sessions gets the room
            self.send_room_state(sibling, room, None)
        bound = self.config.max_backfill
        try:
            if room.last_id == 0:
                # Nothing was ever stored in this room (last_id is loaded at start and set on every insert):
                # skip the query. A login wave into new rooms then costs no SQLite work per login.
                page = Page(messages=(), more=False, skipped=0)
            elif after is not None:
                page = self.store.room_page(key, after=after, limit=bound, max_bytes=self._reply_bytes)
            else:
                count = self.config.backfill if backfill is None else min(backfill, bound)
                page = self.store.room_page(key, limit=count, max_bytes=self._reply_bytes)
        except HistoryError as error:
            log.warning("conn=%d event=backfill_failed room=%r error=%s", client.id, room.name, error)
            client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, "history is unavailable", ref))
            return
        history = History(
            room=room.name,
            messages=page.messages,
            more=page.more,
            skipped=page.skipped,
            ref=ref,
            events=page.events,
            read_up_to=self._attention.read_up_to(client, key),
        )
        client.send(encode(history))
        if siblings:
            self.hub.send_all(siblings, encode(dataclasses.replace(history, ref=None)))

    def send_room_state(self, client: Client, room: Room, ref: int | None) -> None:
        """Send `client` the `room_state` of `room`, as `client` may see it (the key: operators only)."""
        moderation = self._moderation
        client.send(
            self._room_states.frame(
                room,
                ref,
                is_op=moderation.operator_test(room.key),
                rules=moderation.rules(room.key),
                show_key=moderation.is_operator(client, room.key),
            )
        )

    def leave(self, client: Client, request: Leave) -> None:
        """Take `client` out of a room it is in; the room hears `left`."""
        self._messages.flush()
        room = member_room(client, request.room, request.ref)
        if room is None:
            return
        left = Left(room=room.name, nick=client.nick or "", ts=self._ts(), reason=request.reason)
        self.hub.publish(room, encode(left))
        self.hub.leave(client, room)
        self._moderation.left(room)
        answer(client, request.ref)

    def set_topic(self, client: Client, request: SetTopic) -> None:
        """Store and announce a room's new topic (its operators only, when the topic is locked)."""
        self._messages.flush()
        room = self.topic_room(client, request)
        if room is None:
            return
        try:
            self.store.save_topic(room.key, room.name, request.topic)
            self.store.commit()
        except HistoryError as error:
            self._messages.history_failed(error, [])
            client.send(
                error_frame(ErrorCode.HISTORY_UNAVAILABLE, "the topic could not be stored", request.ref)
            )
            return
        with self.hub.lock:
            room.topic = request.topic
        changed = TopicChanged(room=room.name, topic=request.topic, nick=client.nick or "", ts=self._ts())
        self.hub.publish(room, encode(changed))
        answer(client, request.ref)

    def topic_room(self, client: Client, request: SetTopic) -> Room | None:
        """The room whose topic `client` may set with `request` (a member, and an operator if the topic is
        locked); else None, after telling `client` why (cluster mode asks it too)."""
        room = member_room(client, request.room, request.ref)
        if room is not None and self._moderation.topic_locked(client, room):
            message = f"the topic of {room.name} is locked: only its operators set it"
            client.send(error_frame(ErrorCode.NOT_OPERATOR, message, request.ref))
            return None
        return room

    def who(self, client: Client, request: Who) -> None:
        """Answer with the `room_state` of a room (of a closed one: to its members only)."""
        room = self.hub.rooms.get(fold(request.room))
        if room is None:
            client.send(error_frame(ErrorCode.NO_SUCH_ROOM, f"no room {request.room!r}", request.ref))
            return
        if room.key not in client.rooms and self._moderation.closed(client, room):
            message = f"{room.name} is closed (key or invite-only): join it to see who is there"
            client.send(error_frame(ErrorCode.FORBIDDEN, message, request.ref))
            return
        self.send_room_state(client, room, request.ref)

    def list_rooms(self, client: Client, request: ListRooms) -> None:
        """Answer with the rooms that have members, a topic or history (bounded by `max_list`)."""
        summaries: list[RoomSummary] = []
        size = 0
        for name, topic, count in self.hub.summaries():
            if not count and not topic and not self._has_history(name):
                continue
            size += 32 + len(name.encode()) + len(topic.encode())
            if len(summaries) >= self.config.max_list or size > self._reply_bytes:
                break
            summaries.append(RoomSummary(name=name, topic=topic, members=count))
        client.send(encode(RoomList(rooms=tuple(summaries), ref=request.ref)))

    def _has_history(self, name: str) -> bool:
        room = self.hub.rooms.get(fold(name))
        return room is not None and room.last_id > 0

    def forget(self, client: Client) -> None:
        """`client` is gone: drop what the room states cached for it."""
        self._room_states.forget(client)
