"""The slash commands of the input line, shared by the TUI and the plain line mode.

`parse(line)` turns what the user typed into one typed command object, or raises `CommandError` with a
message fit to show. A line that does not start with ``/`` is a message to the current buffer; ``//``
sends a message that starts with a slash. Nothing here talks to the network or the screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat_client.model.admincommands import ADMIN_COMMANDS, StatsCommand, parse_stats
from chat_client.model.commands_base import CommandError, CommandHelp, one_or_two_words, split_first
from chat_client.model.modcommands import (
    MODERATION_COMMANDS,
    MODERATION_NAMES,
    KeyCommand,
    ModerateCommand,
    parse_moderation,
)
from chat_client.model.search import SearchCommand, parse_search
from shared.text import reaction_problem, room_problem

__all__ = ["CommandError", "CommandHelp", "KeyCommand", "ModerateCommand", "SearchCommand", "StatsCommand"]


@dataclass(frozen=True, slots=True)
class SayCommand:
    """Text for the current room or conversation."""

    text: str


@dataclass(frozen=True, slots=True)
class MeCommand:
    """`/me waves`: an action in the current room or conversation."""

    text: str


@dataclass(frozen=True, slots=True)
class JoinCommand:
    """`/join room [key]`: join a room (created if new) and switch to it; `key` for a room that has one."""

    room: str
    key: str | None = None


@dataclass(frozen=True, slots=True)
class LeaveCommand:
    """`/leave [room] [reason]`: leave a room (the current one by default)."""

    room: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class NickCommand:
    """`/nick new [password]`: change your nick (the password of the new nick if it is registered)."""

    nick: str
    password: str | None = None


@dataclass(frozen=True, slots=True)
class RegisterCommand:
    """`/register password [old_password]`: protect your nick with a password (or change the password)."""

    password: str
    old_password: str | None = None


@dataclass(frozen=True, slots=True)
class UnregisterCommand:
    """`/unregister password`: drop your nick's registration."""

    password: str


@dataclass(frozen=True, slots=True)
class MsgCommand:
    """`/msg nick text`: send a direct message (and open its conversation)."""

    nick: str
    text: str | None


@dataclass(frozen=True, slots=True)
class TopicCommand:
    """`/topic [text]`: show the current room's topic, or set it."""

    topic: str | None


@dataclass(frozen=True, slots=True)
class AwayCommand:
    """`/away [message]`: mark yourself away with a message, or back without one."""

    message: str | None


@dataclass(frozen=True, slots=True)
class NotifyCommand:
    """`/notify [all|mentions|none|default]`: show or set the notification level of this room or
    conversation (None: show it)."""

    level: str | None


@dataclass(frozen=True, slots=True)
class KeywordsCommand:
    """`/keywords [WORD...]`: show the keywords (None), or replace them (`/keywords -` removes them all)."""

    words: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class WhoCommand:
    """`/who [room]`: list a room's members."""

    room: str | None


@dataclass(frozen=True, slots=True)
class RoomsCommand:
    """`/rooms`: list the server's rooms."""


@dataclass(frozen=True, slots=True)
class SendCommand:
    """`/send PATH`: offer a file to the current room or conversation."""

    path: str


@dataclass(frozen=True, slots=True)
class GetCommand:
    """`/get ID`: download the file offered as message ID."""

    offer_id: int


@dataclass(frozen=True, slots=True)
class CancelCommand:
    """`/cancel N`: cancel file transfer number N."""

    number: int


@dataclass(frozen=True, slots=True)
class MoreCommand:
    """`/more`: show the next page of the messages a reconnect skipped in the current room."""


@dataclass(frozen=True, slots=True)
class ReplyCommand:
    """`/reply ID TEXT`: answer message ID (in its room or conversation), quoting it."""

    message_id: int
    text: str


@dataclass(frozen=True, slots=True)
class EditCommand:
    """`/edit ID TEXT`: replace the text of your message ID."""

    message_id: int
    text: str


@dataclass(frozen=True, slots=True)
class DeleteCommand:
    """`/delete ID [REASON]`: delete message ID (yours; as a room operator, anyone's: REASON is recorded)."""

    message_id: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReactCommand:
    """`/react ID REACTION`: add a reaction (one emoji or a :name:) to message ID."""

    message_id: int
    reaction: str


@dataclass(frozen=True, slots=True)
class UnreactCommand:
    """`/unreact ID REACTION`: take your reaction off message ID."""

    message_id: int
    reaction: str


@dataclass(frozen=True, slots=True)
class SubstituteCommand:
    """`s/old/new/` (IRC's convention): correct your last message here, replacing the first `old` (every
    one with a trailing `g`) by `new`, as an edit. Plain text, not a pattern."""

    old: str
    new: str
    every: bool = False


@dataclass(frozen=True, slots=True)
class HelpCommand:
    """`/help [command]`: show the commands."""

    command: str | None


@dataclass(frozen=True, slots=True)
class ReconnectCommand:
    """`/reconnect`: connect again now (drop the connection, or end the wait before the next attempt)."""


@dataclass(frozen=True, slots=True)
class LagCommand:
    """`/lag`: show the measured round-trip time to the server."""


@dataclass(frozen=True, slots=True)
class SessionsCommand:
    """`/sessions`: list the sessions of our nick (a registered nick may be logged in from several)."""


@dataclass(frozen=True, slots=True)
class QuitCommand:
    """`/quit [reason]`: leave the chat and exit."""

    reason: str | None


Command = (
    SayCommand
    | MeCommand
    | JoinCommand
    | LeaveCommand
    | NickCommand
    | RegisterCommand
    | UnregisterCommand
    | MsgCommand
    | TopicCommand
    | AwayCommand
    | NotifyCommand
    | KeywordsCommand
    | WhoCommand
    | RoomsCommand
    | SendCommand
    | GetCommand
    | CancelCommand
    | MoreCommand
    | ReplyCommand
    | EditCommand
    | DeleteCommand
    | ReactCommand
    | UnreactCommand
    | SubstituteCommand
    | HelpCommand
    | ReconnectCommand
    | LagCommand
    | SessionsCommand
    | QuitCommand
    | ModerateCommand
    | KeyCommand
    | StatsCommand
    | SearchCommand
)


COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp(
        "join", "/join ROOM [KEY]", "join a room (created if new) and switch to it; KEY if it has one"
    ),
    CommandHelp("leave", "/leave [ROOM] [REASON]", "leave a room (the current one by default)"),
    CommandHelp("msg", "/msg NICK [TEXT]", "send a direct message; without text, open the conversation"),
    CommandHelp("me", "/me ACTION", "describe an action: * you waves"),
    CommandHelp(
        "nick",
        "/nick NEW [PASSWORD]",
        "change your nick (the password if NEW is registered; --plain asks for it when refused)",
    ),
    CommandHelp(
        "register",
        "/register [PASSWORD [OLD]]",
        "protect your nick with a password (OLD: change it); better alone: it asks, masked, twice",
    ),
    CommandHelp(
        "unregister",
        "/unregister [PASSWORD]",
        "drop your nick's registration (anyone may use it); better alone: it asks, masked",
    ),
    CommandHelp("topic", "/topic [TEXT]", "show the room's topic, or set it"),
    CommandHelp("away", "/away [MESSAGE]", "mark yourself away with a message, or back without one"),
    CommandHelp(
        "notify",
        "/notify [all|mentions|none|default]",
        "what in this room or conversation notifies you (kept for your nick); alone, show it",
    ),
    CommandHelp(
        "keywords",
        "/keywords [WORD...]",
        "words that count as mentions of you (kept for your nick); - removes them; alone, show them",
    ),
    CommandHelp("who", "/who [ROOM]", "list the members of a room"),
    CommandHelp("rooms", "/rooms", "list the rooms on the server"),
    CommandHelp("send", "/send PATH", "offer a file to this room or conversation (Tab completes the path)"),
    CommandHelp("get", "/get ID", "download the file offered as ID into your downloads folder"),
    CommandHelp("cancel", "/cancel N", "cancel file transfer N (shown when it starts)"),
    CommandHelp("more", "/more", "show the next messages a reconnect skipped in this room"),
    CommandHelp(
        "search",
        "/search [in:ROOM|in:@] [from:NICK] [since:DATE] [until:DATE] WORDS",
        'search the history you may read: "a phrase", pre*, -not; /search --more: next page (TUI: Ctrl+F)',
    ),
    CommandHelp("reply", "/reply ID TEXT", "answer message ID (the number before it), quoting it"),
    CommandHelp(
        "edit", "/edit ID TEXT", "replace the text of your message ID; s/old/new/ fixes your last one"
    ),
    CommandHelp(
        "delete", "/delete ID [REASON]", "delete your message ID (an operator: anyone's, with a reason)"
    ),
    CommandHelp("react", "/react ID REACTION", "react to message ID with one emoji or a :name:"),
    CommandHelp("unreact", "/unreact ID REACTION", "take your reaction off message ID"),
    CommandHelp("lag", "/lag", "show the measured round-trip time to the server"),
    CommandHelp("sessions", "/sessions", "list where your nick is logged in (a registered nick: up to 4)"),
    CommandHelp("help", "/help [COMMAND]", "show this help"),
    CommandHelp("reconnect", "/reconnect", "connect again now, without waiting for the next attempt"),
    CommandHelp("quit", "/quit [REASON]", "leave the chat and exit"),
    *MODERATION_COMMANDS,
    *ADMIN_COMMANDS,
)
COMMAND_NAMES = tuple(command.name for command in COMMANDS)
#: What `/notify` takes: a level (docs/protocol.md, `notify`), or `default` to drop the one set.
NOTIFY_CHOICES = ("all", "mentions", "none", "default")
ALIASES = {"j": "join", "part": "leave", "query": "msg", "tell": "msg", "exit": "quit", "list": "rooms"}


def describe_lag(seconds: float | None) -> str:
    """A round-trip time for people: ``42 ms``, ``2.3 s``; "not measured yet" for None."""
    if seconds is None:
        return "not measured yet"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def help_text(command: str | None = None) -> list[str]:
    """Lines of help: every command, or one command (raises `CommandError` if unknown)."""
    if command is not None:
        name = ALIASES.get(command.lstrip("/").lower(), command.lstrip("/").lower())
        for entry in COMMANDS:
            if entry.name == name:
                return [f"{entry.usage}  {entry.summary}"]
        raise CommandError(f"no command /{command.lstrip('/')}; /help lists them")
    width = max(len(entry.usage) for entry in COMMANDS)
    lines = [f"{entry.usage.ljust(width)}  {entry.summary}" for entry in COMMANDS]
    lines.append("Lines not starting with / are messages; start one with // to send a leading slash.")
    return lines


def parse(line: str) -> Command:
    """Parse one input line."""
    substitute = _substitution(line)
    if substitute is not None:
        return substitute
    if not line.startswith("/"):
        return SayCommand(line)
    if line.startswith("//"):
        return SayCommand(line[1:])
    name, _, rest = line[1:].partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    rest = rest.strip()
    match name:
        case "me":
            if not rest:
                raise CommandError("usage: /me ACTION")
            return MeCommand(rest)
        case "join":
            return _join(rest)
        case "leave":
            room, reason = split_first(rest)
            return LeaveCommand(room.lstrip("#") if room else None, reason or None)
        case "nick":
            return NickCommand(*one_or_two_words(rest, "/nick NEW [PASSWORD]"))
        case "register":
            usage = "/register [PASSWORD [OLD_PASSWORD]] (no spaces; alone, it asks)"
            return RegisterCommand(*one_or_two_words(rest, usage))
        case "unregister":
            words = rest.split()
            if len(words) != 1:
                raise CommandError("usage: /unregister [PASSWORD] (alone, it asks)")
            return UnregisterCommand(words[0])
        case "msg":
            nick, text = split_first(rest)
            if not nick:
                raise CommandError("usage: /msg NICK [TEXT]")
            return MsgCommand(nick, text or None)
        case "topic":
            return TopicCommand(rest or None)
        case "away":
            return AwayCommand(rest or None)
        case "notify":
            if rest and rest.lower() not in NOTIFY_CHOICES:
                raise CommandError("usage: /notify [all|mentions|none|default]")
            return NotifyCommand(rest.lower() or None)
        case "keywords":
            if not rest:
                return KeywordsCommand(None)
            return KeywordsCommand(() if rest == "-" else tuple(rest.split()))
        case "who":
            return WhoCommand(rest.lstrip("#") or None)
        case "rooms":
            return RoomsCommand()
        case "send":
            if not rest:
                raise CommandError("usage: /send PATH")
            if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
                rest = rest[1:-1]  # a quoted path, as a shell would take it
            return SendCommand(rest)
        case "get" | "cancel":
            number = rest.lstrip("#")
            if not (number.isascii() and number.isdigit()):
                raise CommandError(f"usage: /{name} {'ID' if name == 'get' else 'N'} (a number)")
            return GetCommand(int(number)) if name == "get" else CancelCommand(int(number))
        case "more":
            return MoreCommand()
        case "search":
            return parse_search(rest)
        case "reply" | "edit":
            message_id, text = _message_id_and(rest, f"/{name} ID TEXT")
            if not text:
                raise CommandError(f"usage: /{name} ID TEXT")
            return ReplyCommand(message_id, text) if name == "reply" else EditCommand(message_id, text)
        case "delete":
            message_id, reason = _message_id_and(rest, "/delete ID [REASON]")
            return DeleteCommand(message_id, reason or None)
        case "react" | "unreact":
            message_id, reaction = _message_id_and(rest, f"/{name} ID REACTION")
            problem = reaction_problem(reaction) if reaction else "usage: give a REACTION"
            if problem is not None:
                raise CommandError(f"usage: /{name} ID REACTION ({problem})")
            return (
                ReactCommand(message_id, reaction)
                if name == "react"
                else UnreactCommand(message_id, reaction)
            )
        case "help":
            return HelpCommand(rest or None)
        case "reconnect":
            return ReconnectCommand()
        case "lag":
            if rest:
                raise CommandError("usage: /lag")
            return LagCommand()
        case "sessions":
            if rest:
                raise CommandError("usage: /sessions")
            return SessionsCommand()
        case "quit":
            return QuitCommand(rest or None)
        case "stats":
            return parse_stats(rest)
        case _ if name in MODERATION_NAMES:
            return parse_moderation(name, rest)
    raise CommandError(f"unknown command /{name}; /help lists the commands")


def _message_id_and(rest: str, usage: str) -> tuple[int, str]:
    """`ID` and what follows it (stripped, "" when absent), as `/reply`, `/edit`, `/delete`, `/react` and
    `/unreact` take them; an ID is typed ``42`` or ``#42``."""
    word, tail = split_first(rest)
    number = word.lstrip("#")
    if not (number.isascii() and number.isdigit()) or len(number) > 16:
        raise CommandError(f"usage: {usage} (ID: the message's number)")
    return int(number), tail


def _substitution(line: str) -> SubstituteCommand | None:
    """``s/old/new/`` or ``s/old/new/g`` (a ``\\/`` stands for a slash), else None."""
    if not line.startswith("s/"):
        return None
    parts: list[str] = [""]
    escaped = False
    for char in line[2:]:
        if escaped:
            parts[-1] += char if char == "/" else "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "/":
            parts.append("")
        else:
            parts[-1] += char
    if escaped or len(parts) != 3 or parts[2] not in ("", "g") or not parts[0]:
        return None
    return SubstituteCommand(parts[0], parts[1], every=parts[2] == "g")


def key_problem(key: str) -> str | None:
    """What is wrong with a room key typed in a command, or None: a key typed here follows the characters
    of a room name (letters, digits, ``+ - . _``), so that ``/join bad room!`` is not taken for room "bad"
    with the key "room!"."""
    if room_problem(key, len(key) or 1) is None:
        return None
    return "a key typed in a command holds only letters, digits and + - . _"


def _join(rest: str) -> JoinCommand:
    """`/join ROOM [KEY]`, both checked before anything is sent (the length against the server's limit later,
    by the client)."""
    room, key = one_or_two_words(rest, "/join ROOM [KEY]")
    room = room.lstrip("#")
    problem = room_problem(room, len(room) or 1)
    if problem is not None:
        raise CommandError(f"cannot join {room}: {problem}")
    if key is not None and key_problem(key) is not None:
        raise CommandError(
            f"cannot join {rest}: a room name has no spaces or symbols, and a KEY holds only letters, "
            "digits and + - . _"
        )
    return JoinCommand(room, key)


def holds_password(line: str) -> bool:
    """True if `line` is (or is being typed as) a command carrying a password.

    Such a line is masked while typed and never kept in the input history.
    """
    if not line.startswith("/") or line.startswith("//"):
        return False
    name, space, rest = line[1:].partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    if name in ("register", "unregister"):
        return bool(space)
    if name == "nick":
        # "/nick bob" is harmless; from the space after the new nick on, a password may follow.
        words = rest.split()
        return len(words) >= 2 or (len(words) == 1 and rest.endswith(" "))
    return False
