"""Model lines to Rich `Text`: the only place the TUI turns chat text into something to draw.

Every untrusted string (nick, room, topic, message) goes through `shared.text.visible()` and into a
`Text` object as plain text with a style: never into a markup string, so ``[bold]`` or ``[@click=...]``
in a message is shown as typed and does nothing, and no control character reaches the terminal.
"""

from __future__ import annotations

import time
import zlib

from rich.text import Text

from shared import fold, visible

from .model import Buffer, BufferKind, Line, LineKind
from .outbox import OutboxEntry

# Readable on dark and light backgrounds alike; a nick keeps its colour for life (hash of its fold key).
NICK_COLOURS = (
    "#e06c75",
    "#98c379",
    "#d19a66",
    "#61afef",
    "#c678dd",
    "#56b6c2",
    "#e5a50a",
    "#ff7eb6",
    "#8fbcbb",
    "#b5bd68",
    "#f0a07a",
    "#82aaff",
)


def nick_colour(nick: str) -> str:
    """The stable colour of a nick."""
    return NICK_COLOURS[zlib.crc32(fold(nick).encode("utf-8")) % len(NICK_COLOURS)]


def safe(text: str) -> str:
    """Untrusted text made visible, on one line (for names, topics and labels)."""
    return visible(text, keep_newlines=False)


def stamp(ts: float) -> str:
    """The time of a line, as the log shows it."""
    return time.strftime("%H:%M", time.localtime(ts))


def render_line(line: Line) -> Text:
    """One log line: time, nick in its colour, text; mentions highlighted, own messages ticked."""
    text = visible(line.text)
    out = Text(no_wrap=False, end="")
    out.append(stamp(line.ts) + " ", style="dim")
    nick = safe(line.nick) if line.nick else ""
    body_style = "bold" if line.mention else ""
    if line.kind is LineKind.MESSAGE:
        out.append("<", style="dim")
        out.append(nick, style=f"bold {nick_colour(line.nick)}" if line.nick else "")
        out.append("> ", style="dim")
        out.append(text, style=body_style)
    elif line.kind is LineKind.ACTION:
        out.append("* ", style="dim")
        out.append(nick, style=f"bold {nick_colour(line.nick)}" if line.nick else "")
        out.append(" " + text, style=f"italic {body_style}")
    elif line.kind is LineKind.FILE:
        out.append("▤ ", style="bold")
        out.append(nick, style=f"bold {nick_colour(line.nick)}" if line.nick else "")
        out.append(" offers ", style="dim")
        out.append(safe(line.text), style="bold underline")
        if line.id is not None:
            out.append(f"  /get {line.id}", style="italic cyan")
    elif line.kind is LineKind.ERROR:
        out.append("-!- " + text, style="bold red")
    else:
        out.append("-!- " + text, style="dim")
    if line.own:
        out.append(" ✓", style="dim green")
    if line.mention:
        out.stylize("on #4d3b00")
    return out


def render_pending(entry: OutboxEntry, nick: str, *, connected: bool) -> Text:
    """A message not yet acknowledged, with its state."""
    out = Text(end="")
    out.append(stamp(entry.created) + " ", style="dim")
    if entry.action:
        out.append(f"* {safe(nick)} ", style="dim italic")
    else:
        out.append(f"<{safe(nick)}> ", style="dim")
    out.append(visible(entry.text), style="dim")
    out.append("  … sending" if connected else "  ⏸ queued until reconnected", style="italic yellow")
    return out


def buffer_label(buffer: Buffer, *, current: bool) -> Text:
    """A room-list row: kind sign, name, unread count and mention marker."""
    sign = {BufferKind.SERVER: "*", BufferKind.ROOM: "#", BufferKind.DIRECT: "@"}[buffer.kind]
    out = Text(end="", no_wrap=True, overflow="ellipsis")
    out.append(f"{sign} ", style="dim")
    out.append(safe(buffer.name), style="bold" if current or buffer.unread else "")
    if buffer.mentioned:
        out.append(" !", style="bold red")
    if buffer.unread:
        out.append(f" ({buffer.unread})", style="bold")
    return out
