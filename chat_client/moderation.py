"""Moderation as the user reads it: one sentence per `moderated` entry, and the effect an entry has on a room.

Shared by the model (live entries and history) and so by the TUI and the plain line mode. The sentence holds
untrusted nicks and reasons as received; renderers make them visible (`shared.text.visible`).
"""

from __future__ import annotations

import time

from shared import Moderated

#: How each action reads: {by} is the operator, {target} the nick acted on.
_SENTENCES = {
    "kick": "{by} kicked {target}",
    "ban": "{by} banned {target}",
    "ban_address": "{by} banned the address of {target}",
    "unban": "{by} lifted the ban of {target}",
    "unban_address": "{by} lifted the ban of {target}'s address",
    "mute": "{by} muted {target}",
    "unmute": "{by} unmuted {target}",
    "op": "{by} made {target} an operator",
    "deop": "{by} took operator rights from {target}",
    "invite": "{by} invited {target}",
    "lock_topic": "{by} locked the topic (only operators may set it)",
    "unlock_topic": "{by} unlocked the topic",
    "invite_only": "{by} made the room invite-only",
    "open": "{by} opened the room to everyone",
    "set_key": "{by} set a key on the room",
    "clear_key": "{by} removed the room's key",
}
#: Actions that put their target out of the room.
REMOVALS = frozenset({"kick", "ban"})


def describe(entry: Moderated) -> str:
    """One line for a moderation entry, e.g. "alice banned bob until 14:05 (spam)"."""
    sentence = _SENTENCES.get(entry.action)
    by, target = entry.nick, entry.target or "?"
    text = sentence.format(by=by, target=target) if sentence else f"{by}: {entry.action} {target}"
    if entry.until is not None:
        text += " until " + time.strftime("%H:%M:%S", time.localtime(entry.until / 1000))
    if entry.reason:
        text += f" ({entry.reason})"
    return text
