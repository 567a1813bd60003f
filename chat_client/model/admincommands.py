"""The server admin's command of the input line, `/stats [NICK]`, and the lines its answer shows.

`/stats` asks the server for its figures, `/stats NICK` for one connection's queue and rates (a server
admin only: anyone else gets the server's `not_admin` error). The answer, a `stats_report`, arrives like
any other server message and the model shows it as notice lines (`stats_lines`).
"""

from __future__ import annotations

from dataclasses import dataclass

from chat_client.model.commands_base import CommandError, CommandHelp
from shared import StatsReport

#: The admin commands, as /help lists them.
ADMIN_COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp("stats", "/stats [NICK]", "the server's figures, or NICK's queue and rates (server admins)"),
)
#: Width of one line of figures.
LINE_WIDTH = 100


@dataclass(frozen=True, slots=True)
class StatsCommand:
    """`/stats [NICK]`: ask the server for its figures (or one connection's)."""

    nick: str | None = None


def parse_stats(rest: str) -> StatsCommand:
    """Parse the arguments of `/stats` (`rest`, stripped)."""
    words = rest.split()
    if len(words) > 1:
        raise CommandError("usage: /stats [NICK]")
    return StatsCommand(words[0] if words else None)


def _shown(value: int | float) -> str:
    """A figure's value: an integer as it is, a float with at most three decimals."""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def stats_lines(report: StatsReport) -> list[str]:
    """The lines showing `report`: a heading, then `name value` pairs packed into lines."""
    heading = f"stats of {report.nick}:" if report.nick is not None else "server stats:"
    lines, line = [heading], ""
    for figure in report.figures:
        item = f"{figure.name} {_shown(figure.value)}"
        if line and len(line) + 3 + len(item) > LINE_WIDTH:
            lines.append("  " + line)
            line = ""
        line = f"{line} · {item}" if line else item
    if line:
        lines.append("  " + line)
    return lines
