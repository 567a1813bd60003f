"""The message log: the current buffer's lines, drawn lazily, keeping the reader's place.

One log shows the current buffer. Switching buffers (or inserting older history, or a resize that
changes the wrapping) rebuilds it from the buffer's bounded deque; new lines are appended as they come.
The log is anchored to the bottom while the reader is there; once they scroll up, new lines no longer
move the view and `NewBelow` says how many arrived.

Why not `RichLog`: it renders every line it is given into strips at once (Rich's measure, wrap, render,
split into lines), about 0.1-0.3 ms a line on the development machine. In a busy room that is most of the
client's time, spent on lines nobody will see, and keys wait behind it. This log keeps, for each line, its
`Text` and its height at the current width (1 for a line that fits, the row count of Rich's own word wrap
otherwise), and wraps and renders a line only when one of its rows is drawn, caching the strips. Appending a
line costs its `Text` and a width check (and counting the wrap of a long one); what is drawn is exactly
what `RichLog` would draw
(tests/client/test_chat_log.py compares them strip for strip).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from rich._wrap import divide_line  # the word wrap of Text.wrap (rich has no public name for it)
from rich.text import Text
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from chat_client.model import DEFAULT_MAX_LINES, Buffer, Line
from chat_client.render import render_line

#: Seconds a resize must settle before the log is re-wrapped.
REFLOW_DELAY = 0.2
#: Lines allowed past `max_lines` before the oldest are dropped, so that dropping (which renumbers every
#: line's first row) happens once per this many appends rather than on every one.
PRUNE_SLACK = 200


@dataclass(slots=True)
class _Entry:
    """One log line: its text, how many rows it wraps to, and its strips once drawn."""

    text: Text
    height: int
    strips: list[Strip] | None = None


class ChatLog(ScrollView, can_focus=False):
    """The log of the current buffer."""

    DEFAULT_CSS = """
    ChatLog {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        overflow-x: hidden;
    }
    """

    class ReachedTop(Message):
        """The reader scrolled to the oldest loaded line."""

    class NewBelow(Message):
        """`count` lines arrived below the view (0: the reader is back at the bottom)."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    def __init__(self, *, max_lines: int = DEFAULT_MAX_LINES, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self._lines: list[Line] = []  # the model lines shown, to rebuild from on a reflow
        self._entries: list[_Entry] = []
        self._starts: list[int] = []  # the first row of each entry, for finding a row's entry by bisection
        self._rows = 0
        self._wrap_width = 0  # the width the heights were measured at; 0 until the first layout
        self._widest = 0
        self._unseen = 0
        self._reflow: Timer | None = None

    def on_mount(self) -> None:
        """Follow new lines while the reader is at the bottom."""
        self.anchor()

    # -- What the chat screen calls ---------------------------------------------------------------------

    def show(self, buffer: Buffer) -> None:
        """Redraw the log with all of `buffer`'s lines, scrolled to the bottom."""
        self._lines = list(buffer.lines)
        self._rebuild()
        self._set_unseen(0)
        self.scroll_end(animate=False, immediate=True)
        self.anchor()

    def show_keeping_place(self, buffer: Buffer) -> None:
        """Redraw after older lines were inserted at the top, keeping the same lines in view."""
        offset_from_bottom = self.virtual_size.height - self.scroll_y
        self._lines = list(buffer.lines)
        self._rebuild()

        def restore() -> None:
            self.scroll_to(
                y=max(0, self.virtual_size.height - offset_from_bottom), animate=False, immediate=True
            )

        self.call_after_refresh(restore)

    def add(self, lines: Iterable[Line]) -> None:
        """Append new lines, counting them if the reader is scrolled up."""
        batch = list(lines)
        if not batch:
            return
        at_bottom = self.is_vertical_scroll_end or self.max_scroll_y == 0
        self._lines.extend(batch)
        self.append_texts([render_line(line) for line in batch])
        if not at_bottom:
            self._set_unseen(self._unseen + len(batch))

    def append_texts(self, texts: Iterable[Text]) -> None:
        """Append already rendered lines at the bottom."""
        width = self._wrap_width
        for text in texts:
            entry = _Entry(text, _height(text, width))
            self._starts.append(self._rows)
            self._entries.append(entry)
            self._rows += entry.height
            self._widest = max(self._widest, min(text.cell_len, width) if width else text.cell_len)
        if len(self._entries) > self.max_lines + PRUNE_SLACK:
            self._prune()
        self._resize_virtual()

    def rows(self) -> list[Strip]:
        """Every row of the log as a strip, drawing what was not drawn yet (for tests and copying)."""
        return [strip for entry in self._entries for strip in self._strips(entry)]

    # -- Drawing (Textual's line API) -------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """Draw row `y` of the view: find its line, build that line's strips if needed, crop to the view."""
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        row = scroll_y + y
        style = self.rich_style
        if row >= self._rows:
            return Strip.blank(width, style)
        index = bisect_right(self._starts, row) - 1
        strip = self._strips(self._entries[index])[row - self._starts[index]]
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_style(style)

    def _strips(self, entry: _Entry) -> list[Strip]:
        if entry.strips is None:
            console = self.app.console
            rows = (
                [entry.text]
                if entry.height == 1
                else entry.text.wrap(console, self._wrap_width)[: entry.height]
            )
            entry.strips = [Strip(row.render(console), row.cell_len) for row in rows]
        return entry.strips

    # -- Layout -----------------------------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        """Re-wrap for a new width: at once the first time, then once the resize settles."""
        width = self.scrollable_content_region.width
        if width == self._wrap_width or width < 1:
            return
        if self._wrap_width == 0:
            self._reflow_now()
            return
        if self._reflow is not None:
            self._reflow.stop()
        self._reflow = self.set_timer(REFLOW_DELAY, self._reflow_now)

    def _reflow_now(self) -> None:
        at_bottom = self.is_vertical_scroll_end
        self._rebuild()
        if at_bottom:
            self.scroll_end(animate=False, immediate=True)
            self.anchor()

    def _rebuild(self) -> None:
        """Measure every line again at the current width (after a switch, an insertion or a resize)."""
        self._wrap_width = max(0, self.scrollable_content_region.width)
        del self._lines[: -self.max_lines]
        self._entries.clear()
        self._starts.clear()
        self._rows = 0
        self._widest = 0
        self.append_texts([render_line(line) for line in self._lines])
        self.refresh()

    def _prune(self) -> None:
        drop = len(self._entries) - self.max_lines
        dropped_rows = self._starts[drop]
        del self._entries[:drop], self._starts[:drop], self._lines[: -self.max_lines]
        self._starts = [start - dropped_rows for start in self._starts]
        self._rows -= dropped_rows
        self.refresh()

    def _resize_virtual(self) -> None:
        self.virtual_size = Size(self._widest, self._rows)
        self.refresh()

    # -- Scrolling --------------------------------------------------------------------------------------

    def _set_unseen(self, count: int) -> None:
        if count != self._unseen:
            self._unseen = count
            self.post_message(self.NewBelow(count))

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Clear the 'new messages' marker at the bottom; ask for older history at the top."""
        super().watch_scroll_y(old, new)
        if self.is_vertical_scroll_end:
            self._set_unseen(0)
        elif new <= 0 < old:
            self.post_message(self.ReachedTop())


def _height(text: Text, width: int) -> int:
    """How many rows `text` takes at `width`: 1 if it fits, else as many as Rich's word wrap makes.

    `Text.wrap` cuts each paragraph at the offsets `divide_line` finds; counting them costs a fraction of
    cutting the text and its styles into rows, which waits until the line is drawn.
    """
    plain = text.plain
    if width < 1 or (text.cell_len <= width and "\n" not in plain):
        return 1
    if plain.endswith("\n"):
        plain = plain[:-1]  # a final newline makes no row of its own (as in RichLog)
    return sum(len(divide_line(paragraph, width, fold=True)) + 1 for paragraph in plain.split("\n"))
