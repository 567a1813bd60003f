"""What every slash command shares: the error a bad command raises, and the help record of a command.

Kept apart from `chat_client.commands` so that groups of commands in their own modules
(`chat_client.modcommands`) can use them without importing the parser that imports them.
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
