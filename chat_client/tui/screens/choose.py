"""A question with a few answers as buttons: how to send a long paste, or one over the server's limit.

Escape or Cancel closes it with None; a button closes it with that button's id.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ChoiceDialog(ModalScreen[str | None]):
    """Asks `question`; closes with the id of the answer picked, or None (Escape, Cancel)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, answers: Sequence[tuple[str, str]]) -> None:
        """`answers` are (id, label) pairs, shown as buttons in that order before Cancel."""
        super().__init__()
        self._question = question
        self._answers = tuple(answers)

    def compose(self) -> ComposeResult:
        """The question, then a button per answer and Cancel."""
        with Vertical(id="choice-dialog"):
            yield Label(Text(self._question, end=""), id="choice-question")
            with Horizontal(id="choice-buttons"):
                for number, (answer_id, label) in enumerate(self._answers):
                    yield Button(label, id=answer_id, variant="primary" if number == 0 else "default")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed)
    def answer(self, event: Button.Pressed) -> None:
        """Close with the answer picked."""
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.dismiss(event.button.id)

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)
