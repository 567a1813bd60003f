"""`NickColours`: which palette entry each member of a room gets, so that no two members share a colour.

A nick's preferred entry is a hash of its fold key (`chat_client.tui.render.nick_slot`), the same in every
room and on every run. In a room, a member whose preferred entry is already held by another member takes the
next free one, and keeps it while they stay; only when every entry is held do two members share one. A
nick seen outside the member list (someone who left, a message from history) gets their entry if they had
one here, their preferred one otherwise. No UI here: the renderers ask `slot(nick)`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from shared import fold

#: How many colours the palette has (chat_client.tui.render.NICK_COLOURS holds them).
PALETTE_SIZE = 12


def preferred_slot(nick: str) -> int:
    """The palette entry a nick has when nobody else holds it: a hash of its fold key."""
    return zlib.crc32(fold(nick).encode("utf-8")) % PALETTE_SIZE


class NickColours:
    """The palette entries of one room's members (by fold key)."""

    __slots__ = ("_held", "_last")

    def __init__(self) -> None:
        self._held: dict[str, int] = {}  # members' entries
        self._last: dict[str, int] = {}  # entries of nicks who left, so their old lines keep their colour

    def slot(self, nick: str) -> int:
        """The palette entry to draw `nick` in."""
        key = fold(nick)
        held = self._held.get(key)
        if held is not None:
            return held
        return self._last.get(key, preferred_slot(nick))

    def add(self, nick: str) -> None:
        """Give a member an entry: their preferred one if free, else the next free one."""
        key = fold(nick)
        if key in self._held:
            return
        taken = set(self._held.values())
        start = self._last.get(key, preferred_slot(nick))
        for step in range(PALETTE_SIZE):
            candidate = (start + step) % PALETTE_SIZE
            if candidate not in taken:
                self._held[key] = candidate
                return
        self._held[key] = start  # every entry is held: share the preferred one

    def remove(self, nick: str) -> None:
        """A member left: free their entry (their old lines keep it until someone else takes it)."""
        key = fold(nick)
        slot = self._held.pop(key, None)
        if slot is not None:
            self._last[key] = slot
            if len(self._last) > 4 * PALETTE_SIZE:  # bounded: forget the oldest
                del self._last[next(iter(self._last))]

    def rename(self, old: str, new: str) -> None:
        """A member changed nick: the new nick keeps the entry."""
        slot = self._held.pop(fold(old), None)
        if slot is not None:
            self._held[fold(new)] = slot

    def reset(self, nicks: Iterable[str]) -> None:
        """The member list arrived whole: keep the entries of those still here, give the others theirs
        (in the order of their fold keys, so that the same list gives the same colours)."""
        keep = {fold(nick) for nick in nicks}
        for key in [key for key in self._held if key not in keep]:
            self._last[key] = self._held.pop(key)
        for nick in sorted(nicks, key=fold):
            self.add(nick)
