"""A thread in a side panel: a message and every reply to it in the buffer, oldest first.

Laid out like the log (the same rendering: quotes, reactions, formatting, `┆` continuations); Escape or
`t` closes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from chat_client.model.chat import Line
from chat_client.tui.render import SlotOf, render_parts, wrap_rows

#: The panel's width in columns (its rows are laid out at it).
THREAD_WIDTH = 56


class ThreadPanel(ModalScreen[None]):
    """Shows `root` and its `replies` on the right of the screen."""

    BINDINGS = [Binding("escape,t", "close", "Close the thread")]

    def __init__(self, root: Line, replies: Sequence[Line], slot_of: SlotOf, me: str = "") -> None:
        super().__init__()
        self._root = root
        self._replies = list(replies)
        self._slot_of = slot_of
        self._me = me

    def compose(self) -> ComposeResult:
        """The title, the message and its replies."""
        count = len(self._replies)
        title = f"Thread: {count} repl{'y' if count == 1 else 'ies'} (Escape closes)"
        with VerticalScroll(id="thread-panel"):
            yield Label(Text(title, style="bold", end=""), id="thread-title")
            yield Static(self._rows(self._root), classes="thread-root")
            for reply in self._replies:
                yield Static(self._rows(reply), classes="thread-reply")

    def _rows(self, line: Line) -> Text:
        rendered = render_parts(line, self._slot_of, me=self._me)
        return Text("\n", end="").join(wrap_rows(rendered, THREAD_WIDTH - 4))

    def action_close(self) -> None:
        """Close the panel."""
        self.dismiss(None)
