"""The search panel (Ctrl+F or /search): a query line, then the hits, best first.

Each hit shows where it was said (its room, or ``@nick``), who said it, when, and its snippet with the matched
words highlighted. Every one of them is untrusted text: it is shown as `rich.text.Text` built from plain
strings (`safe`), never parsed as markup. Enter in the query line searches (the `/search` words: "phrases",
prefix*, -excluded, in:ROOM, from:NICK, since:, until:); Enter on a hit closes the panel with that hit, and
the chat screen jumps to it in its room with the history around it loaded; "more results" asks for the
next page. Escape closes the panel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from chat_client.model.commands_base import CommandError
from chat_client.model.search import SearchCommand, SearchView, hit_place, hit_time, parse_search
from chat_client.tui.render import safe
from shared import SearchHit

#: The option id of the "more results" row.
MORE = "more"

#: Runs a search (or asks for its next page) and returns the view to show, or an error message.
Searcher = Callable[[SearchCommand], Awaitable[SearchView | str]]


def hit_text(hit: SearchHit, me: str) -> Text:
    """One hit as a row: place, nick and time, then the snippet with the matched words highlighted."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(safe(hit_place(hit, me)), style="bold")
    text.append(f"  {safe(hit.nick)}", style="cyan")
    text.append(f"  {hit_time(hit)}\n", style="dim")
    text.append("  ")
    for part in hit.snippet:
        text.append(safe(part.text.replace("\n", " ┆ ")), style="reverse bold" if part.match else "")
    return text


class SearchScreen(ModalScreen[SearchHit | None]):
    """The search panel; closes with the hit picked, or None (Escape)."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, search: Searcher, me: str, *, query: str = "", view: SearchView | None = None) -> None:
        super().__init__()
        self._search = search
        self._me = me
        self._query = query
        self._view = view

    def compose(self) -> ComposeResult:
        """The query line, a status line and the hits."""
        with Vertical(id="search-panel"):
            yield Input(
                value=self._query,
                placeholder='words, "a phrase", pre*, -not, in:ROOM, from:NICK',
                id="search-query",
            )
            yield Label("", id="search-status")
            yield OptionList(id="search-hits")

    def on_mount(self) -> None:
        """Show the search it was opened with, or run the query it was given (`/search WORDS`)."""
        if self._view is not None:
            self.show(self._view)
        elif self._query:
            self.run_worker(self.search_for(self._query), exclusive=True)

    @property
    def view(self) -> SearchView | None:
        """The search shown."""
        return self._view

    def show(self, view: SearchView) -> None:
        """List the hits of `view`."""
        self._view = view
        hits = self.query_one("#search-hits", OptionList)
        hits.clear_options()
        hits.add_options(
            Option(hit_text(hit, self._me), id=str(index)) for index, hit in enumerate(view.hits)
        )
        if view.more:
            hits.add_option(Option(Text("more results…", style="italic", end=""), id=MORE))
        count = len(view.hits)
        status = "searching…" if view.waiting else f"{count} hit{'s' if count != 1 else ''}"
        if not view.waiting and not count:
            status = "nothing found"
        self.query_one("#search-status", Label).update(Text(status, end=""))
        if count:
            hits.highlighted = hits.highlighted if hits.highlighted is not None else 0

    def say(self, message: str) -> None:
        """Show an error or a hint under the query line."""
        self.query_one("#search-status", Label).update(Text(safe(message), style="red", end=""))

    @on(Input.Submitted, "#search-query")
    async def submitted(self, event: Input.Submitted) -> None:
        """Search for what was typed."""
        event.stop()
        await self.search_for(event.value)

    async def search_for(self, text: str) -> None:
        """Search for `text` (the `/search` words); the focus moves to the hits when there are some."""
        try:
            command = parse_search(text)
        except CommandError as error:
            self.say(str(error))
            return
        await self._run(command)
        if self._view is not None and self._view.hits:
            self.query_one("#search-hits", OptionList).focus()

    async def _run(self, command: SearchCommand) -> None:
        self.query_one("#search-status", Label).update(Text("searching…", end=""))
        answer = await self._search(command)
        if isinstance(answer, str):
            self.say(answer)
        else:
            self.show(answer)

    @on(OptionList.OptionSelected, "#search-hits")
    async def picked(self, event: OptionList.OptionSelected) -> None:
        """Jump to the hit picked, or ask for more."""
        event.stop()
        if self._view is None or event.option.id is None:
            return
        if event.option.id == MORE:
            await self._run(SearchCommand("", more=True))
            return
        self.dismiss(self._view.hits[int(event.option.id)])

    def action_close(self) -> None:
        """Close without jumping."""
        self.dismiss(None)
