"""The message log: a `RichLog` that keeps the reader's place and asks for older history at the top.

One log shows the current buffer. Switching buffers (or inserting older history, or a resize that
needs re-wrapping) redraws it from the buffer's bounded deque in one batched write; new lines are
appended as they come. The log is anchored to the bottom while the reader is there; once they scroll
up, new lines no longer move the view and `NewBelow` says how many arrived.

Speed in a busy room: `RichLog.write` wraps whatever it is given through Rich's full layout (measure,
render, split into lines, build strips): about 0.2-0.35 ms per chat line, which caps a busy room at a few
thousand lines a second with nothing left for the keyboard. `add` builds the strips itself: a line that fits the width
becomes a `Strip` straight from the `Text`'s own segments, and a longer one is cut by Rich's own word wrap
(`Text.wrap`), each row then rendered the same way, skipping the render-everything-then-split-it-again
round trip (about 4x cheaper per line: see docs/client.md). The result is the same strips `RichLog` would
have made; tests/client/test_chat_log.py checks it strip for strip.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import RichLog

from chat_client.model import DEFAULT_MAX_LINES, Buffer, Line
from chat_client.render import render_line

#: Seconds a resize must settle before the log is re-wrapped.
REFLOW_DELAY = 0.2


class ChatLog(RichLog):
    """The log of the current buffer."""

    class ReachedTop(Message):
        """The reader scrolled to the oldest loaded line."""

    class NewBelow(Message):
        """`count` lines arrived below the view (0: the reader is back at the bottom)."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    def __init__(self, *, max_lines: int = DEFAULT_MAX_LINES, id: str | None = None) -> None:
        super().__init__(wrap=True, min_width=1, max_lines=max_lines, auto_scroll=False, id=id, markup=False)
        self._lines: list[Line] = []
        self._unseen = 0
        self._reflow: Timer | None = None
        self._width = 0
        self.can_focus = False

    def on_mount(self) -> None:
        """Follow new lines while the reader is at the bottom."""
        self.anchor()

    def show(self, buffer: Buffer) -> None:
        """Redraw the log with all of `buffer`'s lines, scrolled to the bottom."""
        self._lines = list(buffer.lines)
        self._redraw()
        self._set_unseen(0)
        self.scroll_end(animate=False, immediate=True)
        self.anchor()

    def show_keeping_place(self, buffer: Buffer) -> None:
        """Redraw after older lines were inserted at the top, keeping the same lines in view."""
        height_before = self.virtual_size.height
        offset_from_bottom = height_before - self.scroll_y
        self._lines = list(buffer.lines)
        self._redraw()

        def restore() -> None:
            self.scroll_to(
                y=max(0, self.virtual_size.height - offset_from_bottom), animate=False, immediate=True
            )

        self.call_after_refresh(restore)

    def add(self, lines: Iterable[Line]) -> None:
        """Append new lines (one batched write), counting them if the reader is scrolled up."""
        batch = list(lines)
        if not batch:
            return
        self._lines.extend(batch)
        if self.max_lines and len(self._lines) > self.max_lines:
            del self._lines[: -self.max_lines]
        at_bottom = self.is_vertical_scroll_end or self.max_scroll_y == 0
        self.append_texts([render_line(line) for line in batch])
        if not at_bottom:
            self._set_unseen(self._unseen + len(batch))

    def append_texts(self, texts: list[Text]) -> None:
        """Append rendered lines at the bottom: the same result as one `write` of them all, but faster."""
        width = self.scrollable_content_region.width
        if not self._size_known or width < 1:
            # Before the first layout RichLog defers writes until it knows its size: let it.
            self.write(Text("\n", end="").join(texts))
            return
        console = self.app.console
        strips: list[Strip] = []
        for text in texts:
            if text.cell_len <= width and "\n" not in text.plain:
                strips.append(Strip(text.render(console), text.cell_len))
            else:
                # Rich's own word wrap, without rendering the whole and splitting it into lines again.
                strips.extend(Strip(row.render(console), row.cell_len) for row in text.wrap(console, width))
        # From here on, what `RichLog.write` does after rendering (textual 8.2, pinned in pyproject.toml).
        self.lines.extend(strips)
        if self.max_lines is not None and len(self.lines) > self.max_lines:
            self._start_line += len(self.lines) - self.max_lines
            self.lines = self.lines[-self.max_lines :]
        self._widest_line_width = max(self._widest_line_width, *(strip.cell_length for strip in strips))
        self.virtual_size = Size(self._widest_line_width, len(self.lines))
        self.refresh()

    def _redraw(self) -> None:
        self.clear()
        if self._lines:
            self.append_texts([render_line(line) for line in self._lines])

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

    def on_resize(self, event: Resize) -> None:
        """Re-wrap the lines for the new width, once the resize settles (RichLog never re-wraps)."""
        if event.size.width == self._width:
            return
        self._width = event.size.width
        if self._reflow is not None:
            self._reflow.stop()
        self._reflow = self.set_timer(REFLOW_DELAY, self._reflow_now)

    def _reflow_now(self) -> None:
        at_bottom = self.is_vertical_scroll_end
        self._redraw()
        if at_bottom:
            self.scroll_end(animate=False, immediate=True)
            self.anchor()
