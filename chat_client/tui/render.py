"""Model lines to Rich `Text`: the only place the TUI turns chat text into something to draw.

Every untrusted string (nick, room, topic, message) goes through `shared.text.visible()` and into a
`Text` object as plain text with a style: never into a markup string, so ``[bold]`` or ``[@click=...]``
in a message is shown as typed and does nothing, and no control character reaches the terminal.

A message's text is formatted by `formatted`: `chat_client.model.formatting.parse` finds its bold, italic,
code, code blocks and URLs, and each span is appended with its style (a URL's span links to the URL it
shows, nothing else; a code block in a language of `HIGHLIGHTED_LANGUAGES` is coloured by Pygments' lexer,
token by token, with the colours of Rich's `CODE_THEME`). The text shown is always the message minus the
markers `parse` dropped (a property test checks it, hostile text included).

A log line has two parts (`Rendered`): its *head* (time and nick, ``07:57 <bob> ``) and its *body* (the
text). `wrap_rows` lays them out at a width: the head starts the first row, and every further row of the
same line is indented under the body. A row that starts one of the message's own further lines (the
sender typed a newline) carries the mark `shared.text.CONTINUATION` (┆) in that indent; a row the wrap
made has only the indent. So no row but the first of a line starts at the left edge: a message cannot
draw a row that looks like another message (``07:57 <alice> ...``), whatever newlines or spaces it holds.

A message's conversation state adds rows of its own, each with a mark in that same indent column, where
no text of a message can put anything: a reply's quote of its parent above it (`REPLY_MARK`, ``↳ alice:
first words…``), its reactions below it (`REACTIONS_MARK`, ``👍 3  🎉 1``). An edited message ends with
``(edited)`` and a deleted one shows ``message deleted``, both dim italic (no formatting mark makes dim).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from rich._wrap import divide_line  # the word wrap of Text.wrap (rich has no public name for it)
from rich.cells import cell_len
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text

from chat_client.model.chat import DELETED_LABEL, EDITED_MARK, Buffer, BufferKind, Line, LineKind
from chat_client.model.colours import PALETTE_SIZE, preferred_slot
from chat_client.model.formatting import Mark, maybe_formatted, parse
from chat_client.net.outbox import OutboxEntry
from shared import fold, visible
from shared.text import CONTINUATION

if TYPE_CHECKING:
    from pygments.lexer import Lexer

# Readable on dark and light backgrounds alike. Outside a room a nick's colour is a hash of its fold key;
# in a room, `chat_client.model.colours.NickColours` gives each member one not taken by another member.
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
assert len(NICK_COLOURS) == PALETTE_SIZE

#: A continuation indent is never more than this fraction of the width (a long nick would leave no room).
MAX_INDENT_FRACTION = 0.5
#: The background of a line that mentions me.
MENTION_STYLE = "on #4d3b00"

#: How the formatting marks look (`chat_client.model.formatting`); a span's style is its line's style plus
#: these. Code has a background of its own, readable on dark and light themes.
MARK_STYLES = {
    Mark.BOLD: Style(bold=True),
    Mark.ITALIC: Style(italic=True),
    Mark.CODE: Style(color="#e5c07b", bgcolor="#2c313a"),
    Mark.LINK: Style(color="#61afef", underline=True),
}
#: The Rich syntax theme whose token colours a highlighted code block takes (the terminal's own palette).
CODE_THEME = "ansi_dark"
#: The languages a code block may name to be highlighted (as typed after the opening fence, any case). Only
#: common languages: each name loads a Pygments lexer, and a lexer is code run on text from the network.
# fmt: off
HIGHLIGHTED_LANGUAGES = frozenset((
    "bash", "c", "c++", "console", "cpp", "cs", "csharp", "css", "diff", "go", "haskell", "html", "ini",
    "java", "javascript", "js", "json", "kotlin", "lua", "make", "makefile", "markdown", "md", "php", "py",
    "python", "rb", "ruby", "rs", "rust", "scala", "sh", "shell", "sql", "swift", "toml", "ts",
    "typescript", "xml", "yaml", "yml", "zsh",
))
# fmt: on

#: The marks of a message's own rows, in the continuation column (see the module docstring).
REPLY_MARK = "↳"
REACTIONS_MARK = "╰"
#: How an edited mark, a deleted message and a reply's quote look (dim: no message text can be dim).
STATE_STYLE = "dim italic"
#: A reaction I made among a message's reactions.
OWN_REACTION_STYLE = "bold reverse"
#: Reactions and quotes are one row each: the text is cut to the width, and ends with this.
ELLIPSIS = "…"

#: Which palette entry a nick gets: `nick_slot` (the hash) unless a room assigns one.
SlotOf = Callable[[str], int]


def nick_slot(nick: str) -> int:
    """The palette entry a nick has outside a room: a hash of its fold key, the same on every run."""
    return preferred_slot(nick)


def nick_colour(nick: str, slot_of: SlotOf = nick_slot) -> str:
    """The colour of a nick (in a room, pass the room's `slot_of` so members' colours differ)."""
    return NICK_COLOURS[slot_of(nick) % len(NICK_COLOURS)]


def safe(text: str) -> str:
    """Untrusted text made visible, on one line (for names, topics and labels)."""
    return visible(text, keep_newlines=False)


def stamp(ts: float) -> str:
    """The time of a line, as the log shows it."""
    return time.strftime("%H:%M", time.localtime(ts))


def full_date(ts: float) -> str:
    """The full local date and time of a line (its tooltip in the log)."""
    return time.strftime("%A %-d %B %Y, %H:%M:%S", time.localtime(ts))


def day_label(ts: float) -> str:
    """The day-change line shown before the first line of a new day: ``— Monday 7 December —``."""
    return time.strftime("— %A %-d %B —", time.localtime(ts))


@dataclass(frozen=True, slots=True)
class Rendered:
    """One log line ready to lay out: head (time, nick) and body (the text, possibly several lines)."""

    head: Text
    body: Text
    #: A style for every row of the line, indent included (the mention highlight), or "".
    row_style: str = ""
    #: A row above the line: a reply's quote of its parent (without its mark), or None.
    above: Text | None = None
    #: A row below the line: its reactions, or None.
    below: Text | None = None

    @property
    def plain(self) -> str:
        """The text of the line, unwrapped."""
        return self.head.plain + self.body.plain


def render_parts(
    line: Line, slot_of: SlotOf = nick_slot, *, quote: str | None = None, me: str = ""
) -> Rendered:
    """One log line: time, nick in its colour, text; mentions highlighted, own messages ticked; a reply's
    `quote` (``↳ alice: first words…``, from the model) above it and its reactions below it (those of
    nick `me` stand out)."""
    head = Text(end="")
    if line.kind is LineKind.DIVIDER:  # a rule across the log, no time
        return Rendered(head, Text(f"─── {visible(line.text)} ───", style="dim italic", end=""))
    head.append(stamp(line.ts) + " ", style="dim")
    body = Text(end="")
    nick = safe(line.nick) if line.nick else ""
    nick_style = f"bold {nick_colour(line.nick, slot_of)}" if line.nick else ""
    body_style = "bold" if line.mention else ""
    text = visible(line.text)
    if line.kind is LineKind.MESSAGE:
        head.append("<", style="dim")
        head.append(nick, style=nick_style)
        head.append("> ", style="dim")
        _append_message(body, line, body_style)
    elif line.kind is LineKind.ACTION:
        head.append("* ", style="dim")
        head.append(nick, style=nick_style)
        head.append(" ")
        _append_message(body, line, f"italic {body_style}")
    elif line.kind is LineKind.FILE:
        head.append("▤ ", style="bold")
        head.append(nick, style=nick_style)
        head.append(" offers ", style="dim")
        body.append(safe(line.text), style="bold underline")
        if line.id is not None:
            body.append(f"  /get {line.id}", style="italic cyan")
    elif line.kind is LineKind.ERROR:
        head.append("-!- ", style="bold red")
        body.append(text, style="bold red")
    else:
        head.append("-!- ", style="dim")
        body.append(text, style="dim")
    if line.own:
        body.append(" ✓", style="dim green")
    above = _quote(quote) if quote is not None else None
    below = reactions_text(line, me) if line.reactions else None
    return Rendered(head, body, MENTION_STYLE if line.mention else "", above, below)


def _append_message(body: Text, line: Line, style: str) -> None:
    """A message's text with its formatting, or its tombstone; ``(edited)`` after an edited one."""
    if line.deleted:
        body.append(DELETED_LABEL, style=STATE_STYLE)
        return
    append_formatted(body, line.text, style)
    if line.edited is not None:
        body.append(f" {EDITED_MARK}", style=STATE_STYLE)


def _quote(quote: str) -> Text:
    """A reply's quote row (the model's ``↳ alice: first words…``, its mark taken off: the layout puts it
    in the continuation column)."""
    if quote.startswith(REPLY_MARK):
        quote = quote[len(REPLY_MARK) :].lstrip()
    return Text(safe(quote), style=STATE_STYLE, end="", no_wrap=True)


def reactions_text(line: Line, me: str = "") -> Text:
    """A message's reactions, in the order they came: ``👍 3  🎉 1`` (mine stand out)."""
    out = Text(end="", no_wrap=True)
    mine = fold(me) if me else None
    for number, reaction in enumerate(line.reactions):
        if number:
            out.append("  ")
        own = mine is not None and any(fold(nick) == mine for nick in reaction.nicks)
        style = OWN_REACTION_STYLE if own else ""
        out.append(f"{safe(reaction.reaction)} {len(reaction.nicks)}", style=style)
    return out


def reactions_by_whom(line: Line) -> str:
    """Who reacted to a message, one reaction after another: ``👍 alice, bob; 🎉 carol``."""
    return "; ".join(f"{reaction.reaction} {', '.join(reaction.nicks)}" for reaction in line.reactions)


def formatted(text: str, style: str = "") -> Text:
    """A message's text with its formatting (see the module docstring), every part made visible."""
    out = Text(end="")
    append_formatted(out, text, style)
    return out


def append_formatted(out: Text, text: str, style: str = "") -> None:
    """Append a message's text to `out` with its formatting, in `style` (the line's), made visible."""
    if not maybe_formatted(text):  # most messages: nothing to parse
        out.append(visible(text), style=style)
        return
    start = len(out)
    for span in parse(text):
        shown = visible(span.text)
        if span.marks & Mark.BLOCK:
            out.append_text(highlighted(shown, span.language))
        elif span.marks & Mark.LINK:
            # The target is the text shown: a URL is printable ASCII only, so `visible` left it unchanged.
            out.append(shown, style=_mark_style(span.marks) + Style(link=shown))
        else:
            out.append(shown, style=_mark_style(span.marks))
    if style:
        out.stylize_before(style, start)  # under the marks: theirs are applied over it


@lru_cache(maxsize=64)
def _mark_style(marks: Mark) -> Style:
    return Style.combine([Style(), *(style for mark, style in MARK_STYLES.items() if marks & mark)])


def highlighted(code: str, language: str) -> Text:
    """A code block (already made visible) in the code style, coloured token by token when `language` is
    one of `HIGHLIGHTED_LANGUAGES`. The text is exactly `code`: a lexer that would change it (none is known
    to) is not used."""
    block = MARK_STYLES[Mark.CODE]
    lexer = lexer_for(language)
    if lexer is None:
        return Text(code, style=block, end="")
    theme = Syntax.get_theme(CODE_THEME)
    out = Text(style=block, end="")
    for token_type, value in lexer.get_tokens(code):
        out.append(value, style=theme.get_style_for_token(token_type))
    return out if out.plain == code else Text(code, style=block, end="")


@lru_cache(maxsize=len(HIGHLIGHTED_LANGUAGES) + 1)
def lexer_for(language: str) -> Lexer | None:
    """The Pygments lexer for `language`, loaded the first time a block names it (None: not highlighted)."""
    if language not in HIGHLIGHTED_LANGUAGES:
        return None
    from pygments.lexers import get_lexer_by_name  # loaded only when a block names a language
    from pygments.util import ClassNotFound

    try:
        # Keep the text as it is: no line breaks stripped at the ends, none added.
        return get_lexer_by_name(language, stripnl=False, ensurenl=False, stripall=False)
    except ClassNotFound:
        return None


def render_line(line: Line, slot_of: SlotOf = nick_slot) -> Text:
    """One log line as a single `Text` (unwrapped: newlines stay newlines), for notifications and tests."""
    parts = render_parts(line, slot_of)
    out = Text(end="")
    out.append_text(parts.head)
    out.append_text(parts.body)
    if parts.row_style:
        out.stylize(parts.row_style)
    return out


def render_banner(text: str, style: str = "dim") -> Rendered:
    """A row of the log that is not a message (a day change, the "new messages" divider)."""
    return Rendered(Text(end=""), Text(text, style=style, end=""))


# -- Layout: the rows of one line at a width -----------------------------------------------------------


def indent_of(head_cells: int, width: int) -> int:
    """Where a line's further rows start: under its text, but at most `MAX_INDENT_FRACTION` of the width,
    and at least 2 columns (room for the continuation mark and a space)."""
    return max(2, min(head_cells, int(width * MAX_INDENT_FRACTION)))


def _cuts(paragraph: str, first_width: int, width: int) -> list[int]:
    """Where Rich's word wrap cuts `paragraph`: its first row `first_width` cells wide, the rest `width`.

    A first row with less than two cells left (a head about as wide as the log: not even one wide
    character would fit) holds nothing of the paragraph."""
    if first_width < 2:
        cuts = [0, *divide_line(paragraph, width, fold=True)]
    elif first_width == width:
        cuts = divide_line(paragraph, width, fold=True)
    else:
        first = divide_line(paragraph, first_width, fold=True)
        cut = first[0] if first else len(paragraph)
        cuts = [cut, *(cut + offset for offset in divide_line(paragraph[cut:], width, fold=True))]
        if cuts == [len(paragraph)]:
            cuts = []
    return _fitted(paragraph, cuts, first_width, width)


def _fitted(paragraph: str, cuts: list[int], first_width: int, width: int) -> list[int]:
    """`cuts`, plus a cut wherever a row would still be wider than it may be.

    Rich keeps a run it takes for one grapheme whole, even one wider than the row (joiners before digits:
    ``"\u200d\u200d000"`` is three cells it will not cut), and its fold cannot help. Such a run is cut
    between code points here, so no row is ever wider than the log (the trailing spaces a row drops are not
    counted)."""
    bounds = [0, *cuts, len(paragraph)]
    fitted: list[int] = []
    for number in range(len(bounds) - 1):
        start, end = bounds[number], bounds[number + 1]
        if number:
            fitted.append(start)
        limit = max(1, first_width if number == 0 else width)
        text = paragraph[start:end].rstrip(" ")
        if cell_len(text) <= limit or (number == 0 and first_width < 2):
            continue
        begin = start
        for index in range(start + 1, start + len(text)):
            if cell_len(paragraph[begin : index + 1]) > limit:
                fitted.append(index)
                begin = index
                limit = width
    return fitted


def row_count(rendered: Rendered, width: int) -> int:
    """How many rows `wrap_rows` makes, without cutting any `Text` (the log's cheap measure)."""
    head = rendered.head.cell_len
    plain = rendered.body.plain
    extra = (rendered.above is not None) + (rendered.below is not None)
    if width < 1 or ("\n" not in plain and head + cell_len(plain) <= width):
        return 1 + extra
    indent = indent_of(head, width)
    inner = max(1, width - indent)
    total = extra
    for index, paragraph in enumerate(plain.split("\n")):
        first_width = width - head if index == 0 else inner
        total += len(_cuts(paragraph, first_width, inner)) + 1
    return total


def wrap_rows(rendered: Rendered, width: int) -> list[Text]:
    """The rows of one log line at `width` (see the module docstring); each at most `width` cells."""
    head, body = rendered.head, rendered.body
    if width < 1 or ("\n" not in body.plain and head.cell_len + body.cell_len <= width):
        rows = [Text.assemble(head, body, end="")]
    else:
        indent = indent_of(head.cell_len, width)
        inner = max(1, width - indent)
        pad = " " * indent
        mark = " " * (indent - 2) + CONTINUATION + " "
        rows = []
        for index, paragraph in enumerate(body.split("\n", allow_blank=True)):
            first_width = width - head.cell_len if index == 0 else inner
            pieces = paragraph.divide(_cuts(paragraph.plain, first_width, inner))
            for number, piece in enumerate(pieces):
                limit = first_width if number == 0 else inner
                piece.rstrip_end(limit)
                piece.truncate(limit, overflow="fold")
                if index == 0 and number == 0:
                    row = Text.assemble(head, piece, end="")
                else:
                    row = Text.assemble((mark if number == 0 else pad, "dim"), piece, end="")
                rows.append(row)
    if rendered.above is not None:
        rows.insert(0, _side_row(REPLY_MARK, rendered.above, rendered.head.cell_len, width))
    if rendered.below is not None:
        rows.append(_side_row(REACTIONS_MARK, rendered.below, rendered.head.cell_len, width))
    if rendered.row_style:
        for row in rows:
            row.stylize(rendered.row_style)
    return rows


def _side_row(mark: str, text: Text, head_cells: int, width: int) -> Text:
    """A row of a line's own (its quote, its reactions): `mark` in the continuation column, then `text`
    cut to the width."""
    if width < 1:
        return Text.assemble((f"{mark} ", "dim"), text, end="")
    indent = indent_of(head_cells, width)
    inner = max(1, width - indent)
    text = text.copy()
    if text.cell_len > inner:
        text.truncate(max(0, inner - 1))
        text.append(ELLIPSIS, style="dim")
        text.truncate(inner)
    row = Text.assemble((" " * (indent - 2) + mark + " ", "dim"), text, end="")
    row.truncate(width)  # a log narrower than the indent and its mark
    return row


def render_pending(entry: OutboxEntry, nick: str, *, connected: bool) -> Text:
    """A message not yet acknowledged, with its state (a multi-line one shows its first line and a count)."""
    out = Text(end="", no_wrap=True, overflow="ellipsis")
    out.append(stamp(entry.created) + " ", style="dim")
    if entry.action:
        out.append(f"* {safe(nick)} ", style="dim italic")
    else:
        out.append(f"<{safe(nick)}> ", style="dim")
    first, *more = entry.text.split("\n")
    out.append(visible(first), style="dim")
    if more:
        out.append(f" (+{len(more)} more line{'s' if len(more) > 1 else ''})", style="dim italic")
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
