"""The message log: the current buffer's lines, drawn lazily, keeping the reader's place.

One log shows the current buffer. Switching buffers (or inserting older history, or a resize that
changes the wrapping) rebuilds it from the buffer's bounded deque; new lines are appended as they come.
The log is anchored to the bottom while the reader is there; once they scroll up, new lines no longer
move the view and `NewBelow` says how many are still below it (the count goes down as they come into
view). Between the lines the log puts rows of its own: a day-change line (``— Monday 7 December —``)
before the first line of a new day, and a "new messages" divider before the first line that arrived
while the reader was in another buffer. Hovering over a line shows its full date as a tooltip.

Why not `RichLog`: it renders every line it is given into strips at once (Rich's measure, wrap, render,
split into lines), about 0.1-0.3 ms a line on the development machine. In a busy room that is most of the
client's time, spent on lines nobody will see, and keys wait behind it. This log keeps, for each line, its
two rendered parts and its height at the current width (1 for a line that fits, the row count of
`chat_client.tui.render.wrap_rows` otherwise), and lays out and renders a line only when one of its rows is
drawn, caching the strips. Appending a line costs its `Text` and a width check (and counting the wrap of a
long one). The layout indents every row after a line's first under its text (see chat_client/tui/render.py):
no row of a message can pass for another message.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual.events import Leave, MouseMove, Resize
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from chat_client.model.chat import DEFAULT_MAX_LINES, Buffer, Line
from chat_client.tui.render import (
    Rendered,
    SlotOf,
    day_label,
    full_date,
    nick_slot,
    render_banner,
    render_parts,
    row_count,
    wrap_rows,
)

#: Seconds a resize must settle before the log is re-wrapped.
REFLOW_DELAY = 0.2
#: Lines allowed past `max_lines` before the oldest are dropped, so that dropping (which renumbers every
#: line's first row) happens once per this many appends rather than on every one.
PRUNE_SLACK = 200
#: The divider before the first line that arrived while the reader was elsewhere.
NEW_MESSAGES = "──── new messages ────"


@dataclass(slots=True)
class _Entry:
    """One row group of the log: a line (with its time) or a row of the log's own (a day, a divider)."""

    rendered: Rendered
    height: int
    #: The time of the line, for its tooltip; None for the log's own rows (they are not counted as new).
    ts: float | None = None
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
        """`count` lines arrived that are still below the view (0: the reader has seen them all)."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    def __init__(self, *, max_lines: int = DEFAULT_MAX_LINES, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self._lines: list[Line] = []  # the model lines shown, to rebuild from on a reflow
        self._marker: Line | None = None  # the first line that arrived while the reader was elsewhere
        self._slot_of: SlotOf = nick_slot
        self._entries: list[_Entry] = []
        self._starts: list[int] = []  # the first row of each entry, for finding a row's entry by bisection
        self._rows = 0
        self._wrap_width = 0  # the width the heights were measured at; 0 until the first layout
        self._widest = 0
        self._last_day: tuple[int, int, int] | None = None  # the day of the last line, for day-change rows
        self._first_unseen = 0  # the first entry the reader has not had in view
        self._unseen = 0
        self._reflow: Timer | None = None
        self._hovered: int | None = None

    def on_mount(self) -> None:
        """Follow new lines while the reader is at the bottom."""
        self.anchor()

    # -- What the chat screen calls ---------------------------------------------------------------------

    def show(self, buffer: Buffer) -> None:
        """Redraw the log with all of `buffer`'s lines: at the bottom, or at the "new messages" divider
        when the lines after it do not fit in the view."""
        self._lines = list(buffer.lines)
        self._marker = buffer.marker
        self._slot_of = buffer.colours.slot
        self._rebuild()
        self._first_unseen = len(self._entries)
        self.scroll_end(animate=False, immediate=True)
        self.anchor()
        divider = self._divider_index()
        height = self.scrollable_content_region.height
        if divider is not None and height and self._rows - self._starts[divider] > height:
            self._first_unseen = divider
            self.scroll_to(y=self._starts[divider], animate=False, immediate=True)
            self.release_anchor()
        self._count_unseen()

    def show_keeping_place(self, buffer: Buffer) -> None:
        """Redraw after older lines were inserted (at the top, or before "you joined"), keeping the same
        lines in view; a reader at the bottom stays there, following new lines."""
        at_bottom = self.is_vertical_scroll_end or self.max_scroll_y == 0
        offset_from_bottom = self.virtual_size.height - self.scroll_y
        unseen_from_bottom = len(self._entries) - self._first_unseen
        self._lines = list(buffer.lines)
        self._slot_of = buffer.colours.slot
        self._rebuild()
        self._first_unseen = max(0, len(self._entries) - unseen_from_bottom)
        if at_bottom:
            self.scroll_end(animate=False, immediate=True)
            self.anchor()
            return

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
        self._append_lines(batch)
        if at_bottom:
            self._first_unseen = len(self._entries)
        self._count_unseen()

    def jump_to_end(self) -> None:
        """Show the newest line and follow new lines again."""
        self.scroll_end(animate=False, immediate=True)
        self.anchor()
        self._first_unseen = len(self._entries)
        self._count_unseen()

    def scroll_to_message(self, message_id: int) -> bool:
        """Scroll so that the line of message `message_id` is in view, a third of the way down (the log stops
        following new lines); False if no line shown is that message."""
        line_entries = [index for index, entry in enumerate(self._entries) if entry.ts is not None]
        lines = self._lines[-len(line_entries) :] if line_entries else []
        for index, line in zip(reversed(line_entries), reversed(lines), strict=False):
            if line.id == message_id:
                self.release_anchor()
                height = self.scrollable_content_region.height
                self.scroll_to(y=max(0, self._starts[index] - height // 3), animate=False, immediate=True)
                self._count_unseen()
                return True
        return False

    def append_texts(self, texts: Iterable[Text]) -> None:
        """Append rows of plain text at the bottom (no time, no nick: laid out like any line's body)."""
        self._append([(Rendered(Text(end=""), text), None) for text in texts])

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
            rows = wrap_rows(entry.rendered, self._wrap_width)[: entry.height]
            entry.strips = [Strip(row.render(console), row.cell_len) for row in rows]
            # The measure and the layout agree (a property test checks it); never index past the strips.
            entry.strips += [Strip.blank(0)] * (entry.height - len(entry.strips))
        return entry.strips

    # -- Building the entries ---------------------------------------------------------------------------

    def _append_lines(self, lines: list[Line]) -> None:
        """Entries for model lines, with a day-change row before the first line of each new day (and before
        the first line of the log when it is not today's) and the "new messages" divider before the marked
        line."""
        items: list[tuple[Rendered, float | None]] = []
        for line in lines:
            # A new day (never back to an earlier one: a local notice's clock may lag the server's a little).
            day = time.localtime(line.ts)[:3]
            if (self._last_day is None and day != time.localtime()[:3]) or (
                self._last_day is not None and day > self._last_day
            ):
                items.append((render_banner(day_label(line.ts), "bold"), None))
            self._last_day = max(day, self._last_day or day)
            if line is self._marker:
                items.append((render_banner(NEW_MESSAGES, "bold red"), None))
            items.append((render_parts(line, self._slot_of), line.ts))
        self._append(items)

    def _append(self, items: list[tuple[Rendered, float | None]]) -> None:
        width = self._wrap_width
        for rendered, ts in items:
            entry = _Entry(rendered, row_count(rendered, width), ts)
            self._starts.append(self._rows)
            self._entries.append(entry)
            self._rows += entry.height
            cells = rendered.head.cell_len + rendered.body.cell_len
            self._widest = max(self._widest, min(cells, width) if width else cells)
        if len(self._entries) > self.max_lines + PRUNE_SLACK:
            self._prune()
        self._resize_virtual()

    def _divider_index(self) -> int | None:
        for index in range(len(self._entries) - 1, -1, -1):
            if self._entries[index].rendered.body.plain == NEW_MESSAGES and self._entries[index].ts is None:
                return index
        return None

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
        unseen_from_bottom = len(self._entries) - self._first_unseen
        self._rebuild()
        self._first_unseen = max(0, len(self._entries) - unseen_from_bottom)
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
        self._last_day = None
        self._hovered = None
        self._append_lines(self._lines)
        self.refresh()

    def _prune(self) -> None:
        drop = len(self._entries) - self.max_lines
        dropped_rows = self._starts[drop]
        del self._entries[:drop], self._starts[:drop], self._lines[: -self.max_lines]
        self._starts = [start - dropped_rows for start in self._starts]
        self._rows -= dropped_rows
        self._first_unseen = max(0, self._first_unseen - drop)
        self._hovered = None
        self.refresh()

    def _resize_virtual(self) -> None:
        self.virtual_size = Size(self._widest, self._rows)
        self.refresh()

    # -- Scrolling --------------------------------------------------------------------------------------

    def _count_unseen(self) -> None:
        """Count the lines not yet seen that are still below the view, and say so if the count changed."""
        bottom = self.scroll_y + self.scrollable_content_region.height
        if self.is_vertical_scroll_end or self.max_scroll_y == 0:
            self._first_unseen = len(self._entries)
        else:
            # An entry whose first row is in view has been seen.
            self._first_unseen = max(self._first_unseen, bisect_left(self._starts, bottom))
        count = sum(1 for entry in self._entries[self._first_unseen :] if entry.ts is not None)
        if count != self._unseen:
            self._unseen = count
            self.post_message(self.NewBelow(count))

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Count down the 'new messages' marker as they come into view; ask for older history at the top."""
        super().watch_scroll_y(old, new)
        self._count_unseen()
        if new <= 0 < old and not self.is_vertical_scroll_end:
            self.post_message(self.ReachedTop())

    # -- Hover: the full date of a line -----------------------------------------------------------------

    def on_mouse_move(self, event: MouseMove) -> None:
        """Show the full date and time of the line under the mouse as a tooltip."""
        offset = event.get_content_offset(self)
        row = None if offset is None else int(self.scroll_y) + offset.y
        index = bisect_right(self._starts, row) - 1 if row is not None and row < self._rows else None
        if index == self._hovered:
            return
        self._hovered = index
        ts = self._entries[index].ts if index is not None and index >= 0 else None
        self.tooltip = Text(full_date(ts)) if ts is not None else None

    def on_leave(self, event: Leave) -> None:
        """No tooltip once the mouse has left the log."""
        self._hovered = None
        self.tooltip = None
