"""Search of the stored history, and typing notifications.

`Search` asks the server for the stored messages the client may read (the rooms it is in, its own direct
messages) that match some words; the answer is one `SearchResults` page of `SearchHit`s, best match first,
each with a snippet of the message as `SnippetPart`s: plain text, with the matched words marked as parts of
their own (never as markup: a client shows each part as text, the matched ones highlighted).

`Typing` goes both ways: a client says it started (or stopped) typing in a room; the server relays it to the
room's other members with the typist's `nick`. It is never stored, never replayed, and has no answer.
"""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.schema import Message, Sender, message, record, wire

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER
BOTH = Sender.BOTH


# -- Requests: client to server ----------------------------------------------------------------------------


@message(
    "search",
    CLIENT,
    answers=("search_results",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.TOO_LONG,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.EXCESS_FLOOD,
    ),
)
class Search(Message):
    """Find stored messages matching `query` (docs/protocol.md gives its syntax: words, "phrases", prefix*,
    -excluded), in one `room` the client is in, or only among its `direct` messages, or (neither given) in
    every room it is in and its direct messages. `nick`: only messages sent by that nick; `since`/`until`:
    only messages with `since` <= ts < `until` (ms). The page: `limit` hits after the first `offset`."""

    query: str = wire(check.reason)
    room: str | None = wire(check.room, default=None)
    direct: bool = wire(check.boolean, default=False)
    nick: str | None = wire(check.nick, default=None)
    since: int | None = wire(check.uint, default=None)
    until: int | None = wire(check.uint, default=None)
    offset: int = wire(check.uint, default=0)
    limit: int | None = wire(check.uint, default=None)
    ref: int | None = wire(check.uint, default=None)


# -- Both directions ---------------------------------------------------------------------------------------


@message("typing", BOTH, answers=())
class Typing(Message):
    """`nick` started (`active`) or stopped typing in `room`. A client sends it without `nick`; the server
    relays it to the room's other members with the typist's nick. Never stored, never answered."""

    room: str = wire(check.room)
    active: bool = wire(check.boolean, default=True)
    nick: str | None = wire(check.nick, default=None)


# -- Records used inside notifications ---------------------------------------------------------------------


@record
class SnippetPart(Message):
    """A piece of a search hit's snippet: plain text, or (`match`) words that matched the query."""

    text: str = wire(check.text)
    match: bool = wire(check.boolean, default=False)


@record
class SearchHit(Message):
    """One stored message that matched: a room message (`room`) or a direct message (`to`), and the part of
    its text around the match (`snippet`, parts in order; "…" where text was left out)."""

    id: int = wire(check.uint)
    nick: str = wire(check.nick)
    ts: int = wire(check.uint)
    room: str | None = wire(check.room, default=None)
    to: str | None = wire(check.nick, default=None)
    snippet: tuple[SnippetPart, ...] = wire(check.list_of(check.nested(SnippetPart)), default=())


# -- Notifications: server to client -----------------------------------------------------------------------


@message("search_results", SERVER)
class SearchResults(Message):
    """One page of a `Search`'s hits, best first; `more`: a page at `offset` + `len(hits)` has more."""

    hits: tuple[SearchHit, ...] = wire(check.list_of(check.nested(SearchHit)), default=())
    offset: int = wire(check.uint, default=0)
    more: bool = wire(check.boolean, default=False)
    ref: int | None = wire(check.uint, default=None)
