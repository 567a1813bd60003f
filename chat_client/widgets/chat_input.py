"""The input line: Tab completes commands, nicks and rooms; Up and Down browse what was sent.

A line that carries a password (`/register`, `/unregister`, `/nick NEW PASSWORD`) is masked while it is typed
and never kept in the history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual.binding import Binding
from textual.widgets import Input

from chat_client.commands import holds_password
from chat_client.editing import Completion, InputHistory, complete


class ChatInput(Input):
    """An `Input` with completion and history; incoming messages never touch it."""

    BINDINGS = [
        Binding("tab", "complete", "Complete", show=False, priority=True),
        Binding("up", "history_previous", "Previous line", show=False),
        Binding("down", "history_next", "Next line", show=False),
    ]

    def __init__(
        self,
        *,
        nicks: Callable[[], Sequence[str]],
        rooms: Callable[[], Sequence[str]],
        id: str | None = None,
        max_length: int = 0,
    ) -> None:
        super().__init__(placeholder="Type a message, or /help", id=id, max_length=max_length)
        self.history = InputHistory()
        self._nicks = nicks
        self._rooms = rooms
        self._completion: Completion | None = None

    def _watch_value(self, value: str) -> None:
        super()._watch_value(value)
        secret = holds_password(value)
        if secret != self.password:
            self.password = secret

    def action_complete(self) -> None:
        """Complete the word before the cursor, or cycle to the next candidate."""
        result = complete(
            self.value,
            self.cursor_position,
            nicks=self._nicks(),
            rooms=self._rooms(),
            previous=self._completion,
        )
        if result is None:
            self.app.bell()
            return
        self._completion = result
        self.value = result.value
        self.cursor_position = result.cursor

    def action_history_previous(self) -> None:
        """Show the previous sent line."""
        line = self.history.previous(self.value)
        if line is not None:
            self._set(line)

    def action_history_next(self) -> None:
        """Show the next sent line (or the draft)."""
        line = self.history.next()
        if line is not None:
            self._set(line)

    def _set(self, line: str) -> None:
        self.value = line
        self.cursor_position = len(line)
        self._completion = None

    def remember(self, line: str) -> None:
        """Record a sent line (unless it holds a password) and clear the input."""
        if not holds_password(line):
            self.history.add(line)
        self.value = ""
        self._completion = None
