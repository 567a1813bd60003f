"""Search and typing in the model: the `/search` command's words, the search shown, who is typing where.

`/search [in:ROOM | in:@] [from:NICK] [since:DATE] [until:DATE] WORDS` (docs/client.md, "Search"): the
words go to the server as the query (its syntax: "phrases", prefix*, -excluded, docs/protocol.md); `in:`,
`from:`, `since:` and `until:` narrow it; `/search --more` asks for the next page of the last search. The
answer (`SearchResults`) is kept as the model's `search` (`SearchView`): the plain mode prints it, the TUI's
search panel lists it. Nothing here talks to the network or the screen.

Typing: a room's `Buffer.typing` maps each nick that said it is typing to when that stops counting
(`TYPING_SHOWN` seconds after its last start, or at once on its stop or its message).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from chat_client.model.commands_base import CommandError
from shared import SearchHit, SearchResults, visible
from shared.text import fold

#: Seconds "alice is typing…" stays without a fresh start (the server relays one every 3 s at most).
TYPING_SHOWN = 6.0
#: How a matched word is marked in plain text (the plain mode; the TUI highlights it instead).
MATCH_MARK = "*"


@dataclass(frozen=True, slots=True)
class SearchCommand:
    """`/search [in:ROOM|in:@] [from:NICK] [since:DATE] [until:DATE] WORDS`, or `/search --more`."""

    query: str
    room: str | None = None
    direct: bool = False
    nick: str | None = None
    since: int | None = None
    until: int | None = None
    more: bool = False


USAGE = "usage: /search [in:ROOM|in:@] [from:NICK] [since:YYYY-MM-DD] [until:YYYY-MM-DD] WORDS"


def parse_search(rest: str) -> SearchCommand:
    """The `/search` command's arguments (raises `CommandError` with the usage)."""
    if rest.strip() == "--more":
        return SearchCommand("", more=True)
    room: str | None = None
    direct = False
    nick: str | None = None
    since: int | None = None
    until: int | None = None
    words: list[str] = []
    for word in rest.split():
        name, colon, value = word.partition(":")
        option = name.lower() if colon and value else ""
        if option == "in":
            if value == "@":
                direct = True
            else:
                room = value.lstrip("#")
        elif option == "from":
            nick = value
        elif option == "since":
            since = _day(value)
        elif option == "until":
            until = _day(value, end=True)
        else:
            words.append(word)
    if not words:
        raise CommandError(USAGE)
    return SearchCommand(" ".join(words), room, direct, nick, since, until)


def _day(value: str, *, end: bool = False) -> int:
    """A local day (YYYY-MM-DD) as ms since the epoch: its start, or with `end` the start of the next day."""
    try:
        day = datetime.datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise CommandError(f"not a date: {value!r} (YYYY-MM-DD); {USAGE}") from None
    if end:
        day += datetime.timedelta(days=1)
    return int(time.mktime(day.timetuple()) * 1000)


@dataclass(slots=True)
class SearchView:
    """The search being shown: what was asked, and the hits of every page so far (best first)."""

    command: SearchCommand
    hits: list[SearchHit] = field(default_factory=list)
    more: bool = False
    #: An answer is on its way.
    waiting: bool = True

    def take(self, results: SearchResults) -> None:
        """Put a page in its place (a page taken twice, as the answer and as the event, counts once)."""
        if results.offset <= len(self.hits):
            self.hits[results.offset :] = results.hits
            self.more = results.more
        self.waiting = False


def hit_place(hit: SearchHit, me: str) -> str:
    """Where a hit was said: its room, or ``@nick`` for a direct message (the other end)."""
    if hit.room is not None:
        return hit.room
    other = hit.to if fold(hit.nick) == fold(me) and hit.to is not None else hit.nick
    return "@" + other


def hit_time(hit: SearchHit) -> str:
    """When a hit was said, local time: ``2026-12-07 14:03``."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(hit.ts / 1000))


def snippet_text(hit: SearchHit, mark: str = MATCH_MARK) -> str:
    """A hit's snippet as one line of plain text, each matched word between `mark`s (``we *deploy* at 3``);
    control characters made visible, further lines joined with `` ┆ ``."""
    parts = []
    for part in hit.snippet:
        text = visible(part.text).replace("\n", " ┆ ")
        parts.append(f"{mark}{text}{mark}" if part.match else text)
    return "".join(parts)


def search_lines(view: SearchView, me: str, start: int = 0) -> list[str]:
    """The plain mode's lines for a search: a heading (for the first page), one line per hit from `start`,
    and how to see more."""
    query = visible(view.command.query, keep_newlines=False)
    if not view.hits:
        return [f'search "{query}": nothing found']
    lines = []
    if start == 0:
        plural = "s" if len(view.hits) != 1 else ""
        lines.append(f'search "{query}": {len(view.hits)} hit{plural}{", more follow" if view.more else ""}')
    for hit in view.hits[start:]:
        place = visible(hit_place(hit, me), keep_newlines=False)
        nick = visible(hit.nick, keep_newlines=False)
        lines.append(f"  {hit_time(hit)} {place} <{nick}> {snippet_text(hit)}  (#{hit.id})")
    if view.more:
        lines.append("  more: /search --more")
    return lines
