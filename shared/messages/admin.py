"""The server admin's frames: the server's figures, or one connection's, asked for in the chat (`/stats`).

Only a server admin (a nick listed in the server's `admins`, logged in with its password) may ask; anyone
else gets an `error` with `not_admin`. The answer is a list of named figures, so a newer server can add
figures without breaking older clients: docs/protocol.md lists the names a server sends today.
"""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.schema import Message, Sender, message, record, wire

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER


@message(
    "stats",
    CLIENT,
    answers=("stats_report",),
    errors=(
        ErrorCode.NOT_ADMIN,
        ErrorCode.NO_SUCH_NICK,
    ),
)
class GetStats(Message):
    """Ask for the server's figures; with `nick`, for that connection's queue and rates instead."""

    nick: str | None = wire(check.nick, default=None)
    ref: int | None = wire(check.uint, default=None)


@record
class Figure(Message):
    """One named figure of a `StatsReport`: `name` says what it counts and in which unit."""

    name: str = wire(check.token)
    value: int | float = wire(check.number)


@message("stats_report", SERVER)
class StatsReport(Message):
    """The answer to `GetStats`: the server's figures, or those of the connection of `nick`."""

    figures: tuple[Figure, ...] = wire(check.list_of(check.nested(Figure)))
    nick: str | None = wire(check.nick, default=None)
    ref: int | None = wire(check.uint, default=None)
