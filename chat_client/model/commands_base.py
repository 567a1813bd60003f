"""What every slash command shares: the error a bad command raises, the help record, splitting arguments.

Kept apart from `chat_client.model.commands` so that groups of commands in their own modules
(`chat_client.model.modcommands`) can use them without importing the parser that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass


class CommandError(ValueError):
    """What the user typed is not a valid command; the message says why and how to fix it."""


@dataclass(frozen=True, slots=True)
class CommandHelp:
    """How one command is written and what it does."""

    name: str
    usage: str
    summary: str


def split_first(rest: str) -> tuple[str, str]:
    """The first word of `rest` and what follows it, stripped ("" for either when absent).

    Most commands take a word (a room, a nick) and then free text (a reason, a message) that keeps its
    inner spacing.
    """
    words = rest.split(None, 1)
    if not words:
        return "", ""
    return words[0], words[1].strip() if len(words) > 1 else ""


def one_or_two_words(rest: str, usage: str) -> tuple[str, str | None]:
    """A required word and an optional second one (e.g. `/join ROOM [KEY]`); `CommandError` otherwise."""
    words = rest.split()
    if not 1 <= len(words) <= 2:
        raise CommandError(f"usage: {usage}")
    return words[0], words[1] if len(words) == 2 else None
