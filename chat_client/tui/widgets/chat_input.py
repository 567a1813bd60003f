"""The input line: Tab completes commands, nicks and rooms; Up and Down browse what was sent; a multi-line
paste (or Alt+Enter) makes a multi-line message; the border counts the bytes the server will count.

Keys are handled in the order they were typed. Textual runs an `Input`'s key bindings (Enter, Backspace,
Tab...) only once the key has bubbled up to the app, while the printable keys that followed it in the same
read are already being inserted, and a priority binding runs before the keys typed ahead of it reach the
input: `burst one⏎burst two⏎` in one read was sent as "burst oneburst two", twice. So this input runs its
own bindings as each key arrives (`_on_key`), and Enter takes the line and clears the input at once; the
screen gets the line in `Submitted` and never reads the input back.

A multi-line message is kept as its complete lines (`block`, shown above the input by the screen) plus the
line being edited (`value`): Backspace at the start of the line goes back into the block, Escape drops it.

A line that carries a password (`/register`, `/unregister`, `/nick NEW PASSWORD`) is masked while it is typed
and never kept in the history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

from chat_client.model.commands import holds_password
from chat_client.model.editing import (
    Completion,
    InputHistory,
    complete,
    normalise_paste,
    split_block,
    text_bytes,
)
from chat_client.settings import DEFAULT_PASTE_ASK_LINES
from shared.limits import DEFAULT_MAX_TEXT


class ChatInput(Input):
    """An `Input` with completion, history, multi-line messages and a byte counter."""

    BINDINGS = [
        Binding("enter", "submit", "Send the message (or run the command)", show=False),
        Binding("tab", "complete", "Complete a command, nick, room or path", show=False),
        Binding("up", "history_previous", "Previous sent line", show=False),
        Binding("down", "history_next", "Next sent line", show=False),
        Binding("alt+enter,shift+enter", "new_line", "New line in the message", show=False),
        Binding("escape", "drop_block", "Drop the lines above the input", show=False),
    ]

    @dataclass
    class BlockChanged(Message):
        """The lines held above the input changed (the screen shows them)."""

        input: ChatInput

    @dataclass
    class TooLong(Message):
        """Enter on a message over the server's limit: nothing was sent, the text is still in the input."""

        input: ChatInput
        text: str
        size: int
        limit: int

    @dataclass
    class ManyLines(Message):
        """Enter on a message of more lines than `ask_lines`: nothing was sent yet (the screen asks how)."""

        input: ChatInput
        text: str

    def __init__(
        self,
        *,
        nicks: Callable[[], Sequence[str]],
        rooms: Callable[[], Sequence[str]],
        max_text: Callable[[], int] = lambda: DEFAULT_MAX_TEXT,
        ask_lines: int = DEFAULT_PASTE_ASK_LINES,
        id: str | None = None,
    ) -> None:
        # No select-all on focus: text put in the input for the user to go on typing (a `/reply ID `, an
        # `/edit ID TEXT`, a palette command) would be replaced by the first key typed.
        super().__init__(placeholder="Type a message, or /help", id=id, select_on_focus=False)
        self.history = InputHistory()
        self._nicks = nicks
        self._rooms = rooms
        self._max_text = max_text
        self.ask_lines = ask_lines
        self._completion: Completion | None = None
        #: The complete lines of a multi-line message, before the line being edited ("" when none).
        self.block = ""
        #: The byte counter as shown ("" when the input holds no message text).
        self.counter = ""

    @property
    def message(self) -> str:
        """The whole message: the lines above the input and the line in it."""
        return self.block + self.value

    # -- Keys, in the order they arrive ---------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        """Run this input's binding for the key now, in typing order (see the module docstring)."""
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                if not binding.priority and await self.app.run_action(binding.action, self):
                    event.stop()
                    event.prevent_default()
                    return

    def action_submit(self) -> None:  # type: ignore[override]  # synchronous on purpose: see the docstring
        """Take the message and clear the input at once, or say why it cannot be sent as it is."""
        line = self.message
        if not line.strip():
            return
        size, limit = text_bytes(line), self._max_text()
        if size > limit:
            self.post_message(self.TooLong(self, line, size, limit))
            return
        if line.count("\n") + 1 > self.ask_lines:
            self.post_message(self.ManyLines(self, line))
            return
        self.take()
        self.post_message(self.Submitted(self, line))

    def take(self) -> str:
        """Empty the input and return what it held, remembered in the history (unless it holds a password)."""
        line = self.message
        if not holds_password(line):
            self.history.add(line)
        self._set_message("")
        return line

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
        line = self.history.previous(self.message)
        if line is not None:
            self._set_message(line)

    def action_history_next(self) -> None:
        """Show the next sent line (or the draft)."""
        line = self.history.next()
        if line is not None:
            self._set_message(line)

    def action_new_line(self) -> None:
        """End the line at the cursor and go on with a new one in the same message."""
        self._add_lines(self.value[: self.cursor_position] + "\n")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Escape drops the lines above the input only when there are some (else it means what it means
        around the input); Backspace at the start of the line goes back into them."""
        if action == "drop_block":
            return bool(self.block)
        return True

    def action_drop_block(self) -> None:
        """Drop the lines above the input (the line being edited stays)."""
        self.block = ""
        self._block_changed()

    def action_delete_left(self) -> None:
        """Delete left; at the start of the line, join it to the last line above it."""
        if self.block and self.cursor_position == 0 and self.selection.is_empty:
            head, last = split_block(self.block[:-1])
            self.block = head
            self.value = last + self.value
            self.cursor_position = len(last)
            self._block_changed()
            return
        super().action_delete_left()

    # -- Paste --------------------------------------------------------------------------------------

    def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        event.prevent_default()
        self.paste(event.text)

    def action_paste(self) -> None:
        """Paste from the app's clipboard (Ctrl+V), as a terminal paste."""
        self.paste(self.app.clipboard)

    def paste(self, text: str) -> None:
        """Insert pasted text at the cursor, all of it: line breaks make a multi-line message."""
        text = normalise_paste(text)
        if not text:
            return
        start, end = sorted(self.selection)
        if "\n" not in text:
            self.replace(text, start, end)
            return
        self.value = self.value[:start] + self.value[end:]
        self.cursor_position = start
        self._add_lines(self.value[:start] + text)

    def _add_lines(self, before_cursor: str) -> None:
        """Replace what is left of the cursor by `before_cursor`, whose complete lines go to the block."""
        head, last = split_block(before_cursor)
        rest = self.value[self.cursor_position :]
        self.block += head
        self.value = last + rest
        self.cursor_position = len(last)
        self._completion = None
        self._block_changed()

    def set_message(self, message: str) -> None:
        """Put `message` in the input (its last line in it, the others above it), the cursor at its end."""
        self._set_message(message)

    def _set_message(self, message: str) -> None:
        self.block, line = split_block(message)
        self.value = line
        self.cursor_position = len(line)
        self._completion = None
        self._block_changed()

    def _block_changed(self) -> None:
        self.show_count()
        self.post_message(self.BlockChanged(self))

    # -- Counter and masking ------------------------------------------------------------------------

    def _watch_value(self, value: str) -> None:
        super()._watch_value(value)
        self.show_count()
        secret = holds_password(value)
        if secret != self.password:
            self.password = secret

    def show_count(self) -> None:
        """Show the bytes the message will take of the server's limit (red when over it)."""
        line = self.message
        size = text_bytes(line) if line else 0
        limit = self._max_text()
        self.set_class(size > limit, "-too-long")
        self.counter = f"{size:,}/{limit:,} B" if size else ""
        if size:
            self.border_subtitle = Text(self.counter, style="bold red" if size > limit else "", end="")
        else:
            self.border_subtitle = None
