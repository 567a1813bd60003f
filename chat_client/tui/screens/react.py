"""The reaction picker: a small list of emoji, the ones used most recently first.

Up, Down and Enter pick one (or its number, 1 to 9); Escape closes it with nothing picked. A reaction the
user has already made on the message is marked, and picking it again takes it off.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

#: The picker's emoji after the recent ones, in this order.
DEFAULT_REACTIONS = ("👍", "❤️", "😂", "🎉", "😮", "😢", "👀", "🙏", "✅", "🚀")
#: How many reactions the picker offers, recent ones included.
PICKER_SIZE = 10


def picker_choices(recent: Sequence[str]) -> list[str]:
    """The reactions offered: the recent ones (newest first), then the defaults, without repeats."""
    return list(dict.fromkeys([*recent, *DEFAULT_REACTIONS]))[:PICKER_SIZE]


class ReactionPicker(ModalScreen[str | None]):
    """Closes with the reaction picked, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, choices: Sequence[str], mine: Sequence[str] = ()) -> None:
        super().__init__()
        self._choices = list(choices)
        self._mine = set(mine)

    def compose(self) -> ComposeResult:
        """A title and the list."""
        with Vertical(id="react-dialog"):
            yield Label(Text("React with (Enter; Escape cancels)", end=""), id="react-title")
            options = []
            for number, reaction in enumerate(self._choices, start=1):
                prompt = Text(f"{number % 10}  {reaction}", end="")
                if reaction in self._mine:
                    prompt.append("  (yours: Enter takes it off)", style="dim")
                options.append(Option(prompt, id=f"r{number - 1}"))
            yield OptionList(*options, id="react-list")

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        """Close with the reaction picked."""
        self.dismiss(self._choices[event.option_index])

    def on_key(self, event: Key) -> None:
        """A digit picks that reaction (1 the first, 0 the tenth)."""
        if event.character and event.character.isdigit():
            index = (int(event.character) - 1) % 10
            if index < len(self._choices):
                event.stop()
                self.dismiss(self._choices[index])

    def action_cancel(self) -> None:
        """Close without a reaction."""
        self.dismiss(None)
