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
from typing import Protocol

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
    Member,
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
from .presence import Returning
from .roomstate import RoomStates

log = logging.getLogger(__name__)


class SharedPresence(Protocol):
    """Membership and presence shared by the servers of a cluster (chat_server.cluster.presence).

    Each change is checked here as on a single server, then handed to it instead of being applied: it
    publishes the change to the cluster's log and applies it (on every server) when the log brings it back.
    """

    def join(
        self, client: Client, key: str, name: str, after: int | None, backfill: int | None, ref: int | None
    ) -> None:
        """`client` may join the room `key`: publish the join."""

    def joining(self, client: Client) -> int:
        """How many joins of `client` are on their way (they count against `max_rooms_per_client`)."""
        ...

    def leave(self, client: Client, room: Room, reason: str | None, ref: int | None) -> None:
        """`client` leaves `room` (a member): publish the leave."""

    def away(self, client: Client, message: str | None, ref: int | None) -> None:
        """`client`'s nick sets (or clears) its away message: publish it."""

    def signed_off(self, client: Client, reason: str) -> None:
        """The last session of `client`'s nick here ended (it is out of this server's rooms already):
        publish its sign-off (or, always-on, that it is absent)."""

    def returning(self, client: Client, after: dict[str, int]) -> tuple[Returning, set[str]] | None:
        """`client` logged in with a nick absent from every server (always-on): it takes the nick's place.
        Where its direct messages resume, and the keys of the rooms its session enters (from `after`'s
        ids); None if the nick is not absent."""
        ...

    def people(self, room: Room) -> list[Client | Member]:
        """The people of `room` across the cluster, in the log's order: this server's clients, and a
        `Member` for each nick on another server."""
        ...


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
        #: In cluster mode, where joins, leaves, away messages and sign-offs go: the cluster's log
        #: (chat_server.cluster.presence), which applies them on every server. None on a single server.
        self.shared: SharedPresence | None = None

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
        if room is not None and key in client.rooms:
            self.send_join_answer(client, room, after, backfill, ref)  # a member already: answered again
            return
        joining = 0 if self.shared is None else self.shared.joining(client)
        if len(client.rooms) + joining >= self.config.max_rooms_per_client:
            limit = self.config.max_rooms_per_client
            client.send(error_frame(ErrorCode.TOO_MANY_ROOMS, f"you are in {limit} rooms already", ref))
            return
        refusal = self._moderation.admission(client, key, room.name if room else name, room_key)
        if refusal is not None:
            client.send(error_frame(*refusal, ref))
            return
        if self.shared is not None:
            # Cluster mode: the join goes to the cluster's log; it is applied (`enter`) when it comes back.
            self.shared.join(client, key, room.name if room else name, after, backfill, ref)
            return
        self.enter(client, key, name, after, backfill, ref, was_empty=room is None or not room.members)

    def enter(
        self,
        client: Client,
        key: str,
        name: str,
        after: int | None,
        backfill: int | None,
        ref: int | None,
        *,
        was_empty: bool,
        announce: bool = True,
        ts: int | None = None,
    ) -> None:
        """Make `client`'s nick a member of the room `key` (admitted already), announce it to the room with
        `joined` (unless `announce` is false: a member moving in from another server of the cluster), then
        send `room_state` and backfill to each of the nick's sessions."""
        room = self.hub.add_room(key, name)
        if key in client.rooms:
            self.send_join_answer(client, room, after, backfill, ref)
            return
        self.hub.enter(client, room)
        self._moderation.entered(client, room, was_empty)
        if announce:
            op = self._moderation.is_operator(client, key)
            when = self._ts() if ts is None else ts
            joined = Joined(room=room.name, nick=client.nick or "", ts=when, op=op)
            self.hub.publish(room, encode(joined))
        siblings = [session for session in client.sessions if session is not client]
        self.send_join_answer(client, room, after, backfill, ref, siblings)

    def send_join_answer(
        self,
        client: Client,
        room: Room,
        after: int | None,
        backfill: int | None,
        ref: int | None,
        siblings: list[Client] | None = None,
    ) -> None:
        """Send the answer to a join: `room_state`, then the backfill (`after` an id, or the newest
        `backfill`); `siblings` (the nick's other sessions, when the join took the nick in) get them too."""
        self.send_room_state(client, room, ref)
        for sibling in siblings or ():  # a join applies to the nick: each of its sessions gets the room
            self.send_room_state(sibling, room, None)
        bound = self.config.max_backfill
        key = room.key
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
                members=None if self.shared is None else self.shared.people(room),
            )
        )

    def leave(self, client: Client, request: Leave) -> None:
        """Take `client` out of a room it is in; the room hears `left`."""
        self._messages.flush()
        room = member_room(client, request.room, request.ref)
        if room is None:
            return
        if self.shared is not None:
            # Cluster mode: applied when the log brings it back.
            self.shared.leave(client, room, request.reason, request.ref)
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
