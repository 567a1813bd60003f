"""`room_state` frames, built without re-encoding every member on every join.

A join answers with the room's member list, so a login wave into a room of N costs O(N) encoding per login and
O(N^2) in all: the largest part of a login's work on the history thread (docs/performance.md). Each member's
wire map (what `shared.schema.to_wire` makes of `Member(nick, away)`) and its size estimate are computed once
and reused until that client's nick or away message changes; a `room_state` frame is then the message's own
`to_wire` with that list put in, packed once.

History thread only (like `Chat`), so the cache needs no lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from chat_server.hub import Client, Room, people
from chat_server.replies import clip
from shared.codec import encode, frame
from shared.messages import Member, RoomState
from shared.schema import to_wire

from .rules import RoomRules


def members_size(members: list[Member]) -> int:
    """An upper bound of the encoded size of a member list (strings plus per-entry map overhead)."""
    return sum(48 + len(m.nick.encode()) + (len(m.away.encode()) if m.away else 0) for m in members)


def _no_operators(_client: Client) -> bool:
    return False


class RoomStates:
    """Builds `room_state` frames; caches each client's member entry (history thread only)."""

    def __init__(self, max_list: int, max_bytes: int) -> None:
        self.max_list = max_list
        self.max_bytes = max_bytes
        #: client id -> (nick, away, op, wire map, size estimate)
        self._entries: dict[int, tuple[str, str | None, bool, dict[str, Any], int]] = {}

    def frame(
        self,
        room: Room,
        ref: int | None,
        *,
        is_op: Callable[[Client], bool] = _no_operators,
        rules: RoomRules | None = None,
        show_key: bool = False,
        members: Sequence[Client | Member] | None = None,
    ) -> bytes:
        """The encoded `room_state` of `room` (history thread: the hub's only writer reads it lock-free).

        `is_op` marks the room's operators; `rules` gives its modes; `show_key` puts the key in (for an
        operator of the room only). `members` lists the room's people when this server's clients are not all
        of them (cluster mode: a `Member` for each nick on another server; chat_server.cluster.presence).
        """
        listed: Sequence[Client | Member]
        if members is None:
            clients = people(room)[: self.max_list]  # one entry per nick, however many sessions it has
            entries = [self._entry(member, is_op(member)) for member in clients]
            listed = clients
        else:
            listed = members[: self.max_list]
            entries = [
                self._entry(member, is_op(member))
                if isinstance(member, Client)
                else (to_wire(member), members_size([member]))
                for member in listed
            ]
        state = RoomState(room=room.name, topic=room.topic, members=(), ref=ref)
        if rules is not None:
            state = RoomState(
                room=room.name,
                topic=room.topic,
                topic_lock=rules.topic_lock,
                invite_only=rules.invite_only,
                keyed=rules.join_key is not None,
                key=rules.join_key if show_key else None,
                ref=ref,
            )
        if sum(size for _wire, size in entries) > self.max_bytes:
            return self._crowded(state, listed, is_op)
        wire = to_wire(state)
        wire["members"] = [entry for entry, _size in entries]
        # What shared.codec.encode does, with the member maps already made (tests compare the two).
        return frame(msgpack.packb(wire, use_bin_type=True))

    def forget(self, client: Client) -> None:
        """Drop `client`'s cached entry (it disconnected)."""
        self._entries.pop(client.id, None)

    def _entry(self, client: Client, op: bool) -> tuple[dict[str, Any], int]:
        nick, away = client.nick or "", client.away
        cached = self._entries.get(client.id)
        if cached is None or cached[0] != nick or cached[1] != away or cached[2] != op:
            member = Member(nick=nick, away=away, op=op)
            cached = self._entries[client.id] = (nick, away, op, to_wire(member), members_size([member]))
        return cached[3], cached[4]

    def _crowded(
        self, state: RoomState, listed: Sequence[Client | Member], is_op: Callable[[Client], bool]
    ) -> bytes:
        # A crowded room of long away messages would not fit one frame: shorten the away messages first; if
        # it still does not fit, list as many members as fit (`room_list` has the count).
        members = [
            Member(
                nick=m.nick or "",
                away=m.away and clip(m.away, 32),
                op=is_op(m) if isinstance(m, Client) else m.op,
            )
            for m in listed
        ]
        size = 0
        for count, member in enumerate(members):
            size += members_size([member])
            if size > self.max_bytes:
                members = members[:count]
                break
        return encode(dataclasses.replace(state, members=tuple(members)))
