"""`room_state` frames, built without re-encoding every member on every join.

A join answers with the room's member list, so a login wave into a room of N costs O(N) encoding per login and
O(N^2) in all: the largest part of a login's work on the history thread (docs/performance.md). Each member's
wire map (what `shared.schema.to_wire` makes of `Member(nick, away)`) and its size estimate are computed once
and reused until that client's nick or away message changes; a `room_state` frame is then the message's own
`to_wire` with that list put in, packed once.

History thread only (like `Chat`), so the cache needs no lock.
"""

from __future__ import annotations

from typing import Any

import msgpack

from shared.codec import encode
from shared.framing import frame
from shared.messages import Member, RoomState
from shared.schema import to_wire

from .hub import Client, Room
from .replies import clip


def members_size(members: list[Member]) -> int:
    """An upper bound of the encoded size of a member list (strings plus per-entry map overhead)."""
    return sum(40 + len(m.nick.encode()) + (len(m.away.encode()) if m.away else 0) for m in members)


class RoomStates:
    """Builds `room_state` frames; caches each client's member entry (history thread only)."""

    def __init__(self, max_list: int, max_bytes: int) -> None:
        self.max_list = max_list
        self.max_bytes = max_bytes
        #: client id -> (nick, away, wire map, size estimate)
        self._entries: dict[int, tuple[str, str | None, dict[str, Any], int]] = {}

    def frame(self, room: Room, ref: int | None) -> bytes:
        """The encoded `room_state` of `room` (history thread: the hub's only writer reads it lock-free)."""
        listed = room.members[: self.max_list]
        entries = [self._entry(member) for member in listed]
        if sum(size for _wire, size in entries) > self.max_bytes:
            return self._crowded(room, listed, ref)
        wire = to_wire(RoomState(room=room.name, topic=room.topic, members=(), ref=ref))
        wire["members"] = [entry for entry, _size in entries]
        # What shared.codec.encode does, with the member maps already made (tests compare the two).
        return frame(msgpack.packb(wire, use_bin_type=True))

    def forget(self, client: Client) -> None:
        """Drop `client`'s cached entry (it disconnected)."""
        self._entries.pop(client.id, None)

    def _entry(self, client: Client) -> tuple[dict[str, Any], int]:
        nick, away = client.nick or "", client.away
        cached = self._entries.get(client.id)
        if cached is None or cached[0] != nick or cached[1] != away:
            member = Member(nick=nick, away=away)
            cached = self._entries[client.id] = (nick, away, to_wire(member), members_size([member]))
        return cached[2], cached[3]

    def _crowded(self, room: Room, listed: list[Client], ref: int | None) -> bytes:
        # A crowded room of long away messages would not fit one frame: shorten the away messages first; if
        # it still does not fit, list as many members as fit (`room_list` has the count).
        members = [Member(nick=m.nick or "", away=m.away and clip(m.away, 32)) for m in listed]
        size = 0
        for count, member in enumerate(members):
            size += members_size([member])
            if size > self.max_bytes:
                members = members[:count]
                break
        return encode(RoomState(room=room.name, topic=room.topic, members=tuple(members), ref=ref))
