"""The help screen (F1 or /help): every command and every key, with a search field.

Nothing in it is written by hand: the commands come from `chat_client.model.commands.COMMANDS` and the keys
from the binding tables of the widgets that are active while one types (the input line, the chat screen, the
app), so a new command or binding appears here by itself. Escape or F1 closes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from chat_client.model.commands import ALIASES, COMMANDS

#: How key names are written in the help (the rest are capitalised: "tab" is "Tab").
_KEY_NAMES = {
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
    "backspace": "Backspace",
}


#: Page bindings an `Input` inherits from `ScrollableContainer`: they do nothing in a one-line input, so
#: Textual skips them and the key reaches the screen (PageUp scrolls the chat log).
_INERT_IN_INPUT = frozenset({"page_up", "page_down", "page_left", "page_right"})


def key_label(key: str) -> str:
    """A key as the help writes it: ``ctrl+n`` is ``Ctrl+N``, ``alt+down`` is ``Alt+↓``."""
    parts = key.split("+")
    return "+".join(
        _KEY_NAMES.get(part, part.upper() if len(part) == 1 else part.capitalize()) for part in parts
    )


@dataclass(frozen=True, slots=True)
class HelpRow:
    """One line of the help: what to type or press, and what it does."""

    section: str
    what: str
    does: str

    def matches(self, query: str) -> bool:
        """Whether every word of `query` occurs in the row (case ignored)."""
        text = f"{self.section} {self.what} {self.does}".lower()
        return all(word in text for word in query.lower().split())


def key_rows(sections: Sequence[tuple[str, DOMNode]]) -> list[HelpRow]:
    """A row per binding of each node (keys of one action together); a key bound on an earlier node (the
    focused one) shadows the same key on a later one, as Textual does."""
    rows: list[HelpRow] = []
    taken: set[str] = set()
    for section, node in sections:
        grouped: dict[tuple[str, str], list[str]] = {}
        bound: set[str] = set()
        for key, bindings in node._bindings.key_to_bindings.items():
            if key in taken:
                continue
            for binding in bindings:
                if isinstance(node, Input) and binding.action in _INERT_IN_INPUT:
                    continue
                does = binding.description or binding.action
                grouped.setdefault((binding.action, does), []).append(key_label(key))
                bound.add(key)
        taken |= bound
        rows.extend(HelpRow(section, ", ".join(keys), does) for (_, does), keys in grouped.items())
    return rows


def command_rows() -> list[HelpRow]:
    """A row per command, then the aliases and how to send a line starting with a slash."""
    rows = [HelpRow("Commands", entry.usage, entry.summary) for entry in COMMANDS]
    aliases = ", ".join(f"/{alias} = /{name}" for alias, name in sorted(ALIASES.items()))
    rows.append(HelpRow("Commands", "aliases", aliases))
    rows.append(HelpRow("Commands", "//TEXT", "send a message that starts with a slash"))
    return rows


class HelpScreen(ModalScreen[None]):
    """Lists `rows` under their sections; typing in the search field narrows the list."""

    AUTO_FOCUS = "#help-search"
    BINDINGS = [
        Binding("escape", "close", "Close help"),
        Binding("f1", "close", "Close help", show=False),
    ]

    def __init__(self, rows: Iterable[HelpRow], query: str = "") -> None:
        super().__init__()
        self.rows = list(rows)
        self._query = query
        #: The list as shown, in plain text.
        self.shown = ""

    def compose(self) -> ComposeResult:
        """The title, the search field and the list."""
        with Vertical(id="help-dialog"):
            yield Label("Help: type to search, Escape closes", id="help-title")
            yield Input(value=self._query, placeholder="search commands and keys", id="help-search")
            with VerticalScroll(id="help-scroll"):
                yield Static(id="help-body")

    def on_mount(self) -> None:
        """Show the rows that match the query given (all of them without one)."""
        self.show(self._query)

    @on(Input.Changed, "#help-search")
    def search(self, event: Input.Changed) -> None:
        """Narrow the list to the rows holding every word typed."""
        self.show(event.value)

    def show(self, query: str) -> None:
        """Show the rows matching `query`, under their section titles."""
        shown = [row for row in self.rows if row.matches(query)]
        body = Text(end="")
        section = None
        width = 0
        for row in shown:
            if row.section != section:
                section = row.section
                width = max(len(other.what) for other in shown if other.section == section)
                body.append(("\n" if body else "") + section + "\n", style="bold")
            body.append(f"  {row.what.ljust(width)}  ", style="bold")
            body.append(row.does + "\n")
        if not shown:
            body.append(f"nothing matches {query!r}", style="italic")
        self.query_one("#help-body", Static).update(body)
        self.shown = body.plain

    def text(self) -> str:
        """What the list shows now, as plain text."""
        return self.shown

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
