"""The moderation commands of the input line: /kick /ban /unban /bans /mute /unmute /op /deop /invite
/topiclock /inviteonly /key. Each acts on the current room.

`parse_moderation(name, rest)` turns one into a `ModerateCommand` (or `KeyCommand`), or raises `CommandError`
with the usage. A `ModerateCommand` holds the request type and its fields; `request(room)` builds the request
for the current room. Durations are written `90`, `90s`, `10m`, `2h` or `1d`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chat_client.model.commands_base import CommandError, CommandHelp, split_first
from shared import Ban, Deop, Invite, Kick, ListBans, ModerationRequest, Mute, Op, SetMode, Unban, Unmute
from shared.text import room_problem

#: The moderation commands, as /help lists them.
MODERATION_COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp("kick", "/kick NICK [REASON]", "put NICK out of this room (operators)"),
    CommandHelp(
        "ban",
        "/ban [-a] NICK [DURATION] [REASON]",
        "ban NICK (-a: their address) from this room, e.g. /ban bob 10m spam (operators)",
    ),
    CommandHelp("unban", "/unban NICK | /unban -a ADDRESS", "lift a ban (operators)"),
    CommandHelp("bans", "/bans", "list this room's bans (operators)"),
    CommandHelp("mute", "/mute NICK [DURATION] [REASON]", "stop NICK speaking in this room (operators)"),
    CommandHelp("unmute", "/unmute NICK", "let NICK speak again (operators)"),
    CommandHelp("op", "/op NICK", "make NICK an operator of this room (operators)"),
    CommandHelp("deop", "/deop NICK", "take NICK's operator rights away (operators)"),
    CommandHelp("invite", "/invite NICK", "let NICK into this room past invite-only and its key (operators)"),
    CommandHelp("topiclock", "/topiclock on|off", "only operators may set the topic (operators)"),
    CommandHelp("inviteonly", "/inviteonly on|off", "only invited nicks may join (operators)"),
    CommandHelp("key", "/key [KEY | -]", "show this room's key, set one, or remove it with - (operators)"),
)
MODERATION_NAMES = frozenset(command.name for command in MODERATION_COMMANDS)
#: Commands whose first argument is a nick (for Tab completion).
NICK_FIRST = frozenset({"kick", "ban", "unban", "mute", "unmute", "op", "deop", "invite"})

_DURATION = re.compile(r"(\d{1,9})([smhd]?)", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SWITCH = {"on": True, "off": False}


@dataclass(frozen=True, slots=True)
class ModerateCommand:
    """A moderation request for the current room: its type and fields (all but `room` and `ref`)."""

    kind: type[ModerationRequest]
    fields: tuple[tuple[str, Any], ...] = ()

    def request(self, room: str) -> ModerationRequest:
        """The request for `room`."""
        return self.kind(room=room, **dict(self.fields))


@dataclass(frozen=True, slots=True)
class KeyCommand:
    """`/key` alone: show the current room's key (known to its operators)."""


def duration(word: str) -> int | None:
    """Seconds for `90`, `90s`, `10m`, `2h`, `1d`; None if `word` is not a duration."""
    match = _DURATION.fullmatch(word)
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_moderation(name: str, rest: str) -> ModerateCommand | KeyCommand:
    """Parse a moderation command (`name` without the slash, `rest` the stripped arguments)."""
    usage = next(command.usage for command in MODERATION_COMMANDS if command.name == name)
    first, tail = split_first(rest)
    match name:
        case "bans":
            return ModerateCommand(ListBans)
        case "kick" if first:
            return ModerateCommand(Kick, (("nick", first), ("reason", tail or None)))
        case "ban" | "mute" if first:
            by_address = name == "ban" and first == "-a"
            if by_address:
                first, tail = split_first(tail)
            if first:
                return _timed(Ban if name == "ban" else Mute, first, tail, by_address)
        case "unban" if first == "-a" and tail:
            return ModerateCommand(Unban, (("address", tail.split()[0]),))
        case "unban" if first and first != "-a" and not tail:
            return ModerateCommand(Unban, (("nick", first),))
        case "unmute" | "op" | "deop" | "invite" if first and not tail:
            kinds: dict[str, type[ModerationRequest]] = {
                "unmute": Unmute,
                "op": Op,
                "deop": Deop,
                "invite": Invite,
            }
            return ModerateCommand(kinds[name], (("nick", first),))
        case "topiclock" | "inviteonly" if rest.lower() in _SWITCH:
            field = "topic_lock" if name == "topiclock" else "invite_only"
            return ModerateCommand(SetMode, ((field, _SWITCH[rest.lower()]),))
        case "key" if not rest:
            return KeyCommand()
        case "key" if not tail:
            if first != "-" and room_problem(first, len(first)) is not None:
                # The same rule as /join's KEY, so a key set here can always be typed there.
                raise CommandError("a key holds only letters, digits and + - . _")
            return ModerateCommand(SetMode, (("key", "" if first == "-" else first),))
    raise CommandError(f"usage: {usage}")


def _timed(kind: type[Ban] | type[Mute], nick: str, tail: str, by_address: bool) -> ModerateCommand:
    """`NICK [DURATION] [REASON]`, the nick already parsed: `tail` is an optional duration, then a reason."""
    word, after = split_first(tail)
    seconds = duration(word)
    reason = (after if seconds is not None else tail) or None
    if seconds == 0:
        raise CommandError("a duration is at least 1 second; leave it out for no end")
    fields: list[tuple[str, Any]] = [("nick", nick), ("duration", seconds), ("reason", reason)]
    if by_address:
        fields.append(("by_address", True))
    return ModerateCommand(kind, tuple(fields))
