"""Moderation as the user reads it: one sentence per `moderated` entry, and the effect an entry has on a room.

Shared by the model (live entries and history) and so by the TUI and the plain line mode. The sentence holds
untrusted nicks and reasons as received; renderers make them visible (`shared.text.visible`).
"""

from __future__ import annotations

import time

from chat_client.model.buffers import Buffer
from shared import BanEntry, Moderated

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


#: How each room mode is shown next to the room's name.
_MODE_NAMES = {"topic_lock": "topic locked", "invite_only": "invite-only", "keyed": "key"}


def mode_flags(modes: set[str]) -> str:
    """The room's modes for the topic bar, e.g. "invite-only, key" ("" for none)."""
    return ", ".join(label for name, label in _MODE_NAMES.items() if name in modes)


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


def key_notice(buffer: Buffer) -> str:
    """What `/key` alone says about the room `buffer`."""
    if buffer.key_secret is not None:
        return f"the key of {buffer.name} is: {buffer.key_secret}"
    if "keyed" in buffer.modes:
        return f"{buffer.name} has a key (only its operators see it)"
    return f"{buffer.name} has no key"


def describe_ban(ban: BanEntry) -> str:
    """One line of `/bans`."""
    text = f"{ban.nick}'s address {ban.address}" if ban.address else ban.nick
    text += f", by {ban.by} at {time.strftime('%Y-%m-%d %H:%M', time.localtime(ban.ts / 1000))}"
    if ban.until is not None:
        text += ", until " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ban.until / 1000))
    if ban.reason:
        text += f" ({ban.reason})"
    return text
