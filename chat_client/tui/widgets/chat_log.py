"""The message log: the current buffer's lines, drawn lazily, keeping the reader's place.

One log shows the current buffer. Switching buffers (or inserting older history, or a resize that
changes the wrapping) rebuilds it from the buffer's bounded deque; new lines are appended as they come.
The log is anchored to the bottom while the reader is there; once they scroll up, new lines no longer
move the view and `NewBelow` says how many are still below it (the count goes down as they come into
view). Between the lines the log puts rows of its own: a day-change line (``— Monday 7 December —``)
before the first line of a new day, and a "new messages" divider before the first line that arrived
while the reader was in another buffer. Hovering over a line shows its full date as a tooltip.

A message's state changes in place (`update_lines`: an edit, a deletion, a reaction, and the quote of
every reply to it): only that line is laid out again, and when it sits above the view, the view moves by
the rows it gained or lost, so what the reader looks at stays where it is.

The message cursor (`select`): Alt+Up in the chat, then Up and Down, select a message; the log takes the
focus while one is selected and posts `Act` for the action keys (reply, react, edit, delete, copy, jump to
the replied-to message, its thread, who reacted); Escape (or Down past the newest) gives the focus back.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Leave, MouseMove, Resize
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from chat_client.model.chat import DEFAULT_MAX_LINES, Buffer, Line, LineKind
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
#: The background of the selected message's rows.
SELECTED_STYLE = Style(bgcolor="#264f78")
#: The kinds of line the message cursor stops at (messages with an id: what the actions act on).
SELECTABLE = frozenset({LineKind.MESSAGE, LineKind.ACTION, LineKind.FILE})
#: A reply's quote of its parent (`ChatModel.reply_quote` for the buffer shown), or None.
QuoteOf = Callable[[Line], "str | None"]


@dataclass(slots=True)
class _Entry:
    """One row group of the log: a line (with its time) or a row of the log's own (a day, a divider)."""

    rendered: Rendered
    height: int
    #: The time of the line, for its tooltip; None for the log's own rows (they are not counted as new).
    ts: float | None = None
    strips: list[Strip] | None = None
    #: The model line drawn (None for the log's own rows).
    line: Line | None = None


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

    class Act(Message):
        """An action key on the selected message: `action` is one of `ACTIONS`' names."""

        def __init__(self, action: str, line: Line) -> None:
            super().__init__()
            self.action = action
            self.line = line

    class SelectionEnded(Message):
        """The message cursor was left (Escape, or Down past the newest message)."""

    #: The action keys on the selected message, and what each does (the help lists them).
    ACTIONS = (
        ("r", "reply", "Reply to the selected message"),
        ("plus", "react", "React to the selected message (a small emoji picker)"),
        ("e", "edit", "Edit the selected message (yours)"),
        ("d", "delete", "Delete the selected message (asks first)"),
        ("c", "copy", "Copy the selected message's text"),
        ("j", "jump", "Jump to the message the selected one replies to"),
        ("t", "thread", "Show the thread of the selected message"),
        ("w", "who", "Who reacted to the selected message"),
    )
    BINDINGS = [
        Binding("up,alt+up", "select_move(-1)", "Select the previous message", show=False),
        Binding("down,alt+down", "select_move(1)", "Select the next message", show=False),
        Binding("escape", "select_end", "Leave the message cursor", show=False),
        *(Binding(key, f"act('{action}')", description, show=False) for key, action, description in ACTIONS),
    ]

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
        #: The quote of a reply's parent, for the buffer shown (set by the chat screen).
        self.quote_of: QuoteOf = lambda line: None
        #: My nick (my reactions stand out).
        self.me = ""
        #: The selected message's id, and its entry (None: no selection).
        self._selected_id: int | None = None
        self._selected: int | None = None

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

    @property
    def newest_seen(self) -> bool:
        """True when every line shown has been in view, the newest one included (the read marker may
        move: chat_client.model.attention)."""
        return self._unseen == 0 and self._first_unseen >= len(self._entries)

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
        self._append([(Rendered(Text(end=""), text), None, None) for text in texts])

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
        if index == self._selected:
            style = style + SELECTED_STYLE
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
        items: list[tuple[Rendered, float | None, Line | None]] = []
        for line in lines:
            # A new day (never back to an earlier one: a local notice's clock may lag the server's a little).
            day = time.localtime(line.ts)[:3]
            if (self._last_day is None and day != time.localtime()[:3]) or (
                self._last_day is not None and day > self._last_day
            ):
                items.append((render_banner(day_label(line.ts), "bold"), None, None))
            self._last_day = max(day, self._last_day or day)
            if line is self._marker:
                items.append((render_banner(NEW_MESSAGES, "bold red"), None, None))
            items.append((self._parts(line), line.ts, line))
        self._append(items)

    def _parts(self, line: Line) -> Rendered:
        return render_parts(line, self._slot_of, quote=self.quote_of(line), me=self.me)

    def _append(self, items: list[tuple[Rendered, float | None, Line | None]]) -> None:
        width = self._wrap_width
        for rendered, ts, line in items:
            entry = _Entry(rendered, row_count(rendered, width), ts, line=line)
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

    # -- Lines changed in place ---------------------------------------------------------------------------

    def shows(self, buffer: Buffer, plus: Sequence[Line] = ()) -> bool:
        """True if the log holds exactly `buffer`'s lines (nothing to rebuild), or all but `plus`, which
        are the buffer's last lines (append them)."""
        lines = buffer.lines
        if len(lines) != len(self._lines) + len(plus):
            return False
        return all(mine is theirs for mine, theirs in zip([*self._lines, *plus], lines, strict=True))

    def update_lines(self, lines: Iterable[Line]) -> None:
        """Show new states of lines already shown (matched by message id), and the quotes of the replies
        to them, in place; the rows in view stay where they are."""
        changed = {line.id: line for line in lines if line.id is not None}
        if not changed:
            return
        for index, line in enumerate(self._lines):
            if line.id in changed:
                self._lines[index] = changed[line.id]
        top = self.scroll_y
        shift = 0
        for index, entry in enumerate(self._entries):
            old = entry.line
            if old is None or (old.id not in changed and old.reply_to not in changed):
                continue
            line = changed.get(old.id, old) if old.id is not None else old
            entry.line = line
            entry.rendered = self._parts(line)
            entry.strips = None
            height = row_count(entry.rendered, self._wrap_width)
            delta = height - entry.height
            if delta:
                entry.height = height
                self._rows += delta
                for later in range(index + 1, len(self._starts)):
                    self._starts[later] += delta
                if self._starts[index] < top:  # above the view: keep the rows in view where they are
                    shift += delta
        self._resize_virtual()
        if shift:
            self.scroll_to(y=max(0, top + shift), animate=False, immediate=True)

    # -- The message cursor -----------------------------------------------------------------------------

    @property
    def selected(self) -> Line | None:
        """The selected message's line, or None."""
        if self._selected is None:
            return None
        return self._entries[self._selected].line

    def select_last(self, own: bool = False) -> bool:
        """Select the newest message (mine only, with `own`); False if there is none."""
        for index in range(len(self._entries) - 1, -1, -1):
            line = self._entries[index].line
            if _selectable(line) and (not own or (line is not None and line.own)):
                self._select(index)
                return True
        return False

    def select_id(self, message_id: int) -> bool:
        """Select message `message_id` if it is shown; False if not."""
        for index in range(len(self._entries) - 1, -1, -1):
            line = self._entries[index].line
            if line is not None and line.id == message_id:
                self._select(index)
                return True
        return False

    def action_select_move(self, step: int) -> None:
        """Select the previous (-1) or next (1) message; past the newest, leave the cursor."""
        if self._selected is None:
            self.select_last()
            return
        index = self._selected + step
        while 0 <= index < len(self._entries) and not _selectable(self._entries[index].line):
            index += step
        if index >= len(self._entries):
            self.action_select_end()
        elif index >= 0:
            self._select(index)

    def action_select_end(self) -> None:
        """Leave the message cursor (the input gets the focus back)."""
        self.clear_selection()
        self.post_message(self.SelectionEnded())

    def clear_selection(self) -> None:
        """No message selected."""
        self._selected = self._selected_id = None
        self.can_focus = False
        self.refresh()

    def action_act(self, action: str) -> None:
        """An action key: say which, with the selected line."""
        line = self.selected
        if line is not None:
            self.post_message(self.Act(action, line))

    def _select(self, index: int) -> None:
        line = self._entries[index].line
        self._selected = index
        self._selected_id = line.id if line is not None else None
        self.can_focus = True
        start, end = self._starts[index], self._starts[index] + self._entries[index].height
        height = self.scrollable_content_region.height
        if start < self.scroll_y:
            self.scroll_to(y=start, animate=False, immediate=True)
        elif end > self.scroll_y + height:
            self.scroll_to(y=max(0, end - height), animate=False, immediate=True)
        if not self.is_vertical_scroll_end:
            self.release_anchor()
        self.refresh()

    def _find_selected(self) -> None:
        """Find the selected message's entry again after the entries were rebuilt or pruned."""
        if self._selected_id is None:
            self._selected = None
            return
        self._selected = next(
            (
                index
                for index in range(len(self._entries) - 1, -1, -1)
                if (line := self._entries[index].line) is not None and line.id == self._selected_id
            ),
            None,
        )
        if self._selected is None:
            self.clear_selection()

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
        self._find_selected()
        self.refresh()

    def _prune(self) -> None:
        drop = len(self._entries) - self.max_lines
        dropped_rows = self._starts[drop]
        del self._entries[:drop], self._starts[:drop], self._lines[: -self.max_lines]
        self._starts = [start - dropped_rows for start in self._starts]
        self._rows -= dropped_rows
        self._first_unseen = max(0, self._first_unseen - drop)
        self._hovered = None
        self._find_selected()
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


def _selectable(line: Line | None) -> bool:
    """A line the message cursor stops at: a message with an id."""
    return line is not None and line.id is not None and line.kind in SELECTABLE
