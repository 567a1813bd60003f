"""Search of the stored history (`search`), served on the asking connection's reader thread.

Like history pages (chat_server.reader.pages), a search runs on the reader thread of the connection that asks,
on that thread's own SQLite read connection: WAL mode lets it read while the history thread writes, and the
history thread never waits for it, so a search never delays chat. The index is SQLite FTS5
(chat_server.storage, `SEARCH_SCHEMA`).

The user's query is never handed to FTS5 as an expression: `translate` reads it with the documented syntax
(docs/protocol.md, `search`: words, "phrases", prefix*, -excluded) and writes an FTS5 expression in which
every word is a quoted string, so FTS5's own operators, column filters and syntax errors cannot be reached
from the wire.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from chat_server import storage
from chat_server.config import ServerConfig
from chat_server.hub import Client, Hub
from chat_server.replies import REPLY_MARGIN, error_frame
from chat_server.storage import ELLIPSIS, MATCH_END, MATCH_START, Found, HistoryError, Scope
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Search, SearchHit, SearchResults, SnippetPart
from shared.text import fold

log = logging.getLogger(__name__)

#: Words of context FTS5 puts in a hit's snippet (around the matched words).
SNIPPET_WORDS = 16
#: Wire bytes of a hit besides its snippet's text (keys, ids, room, nicks), and of one snippet part besides
#: its text: used to cut a page to one frame.
_HIT_OVERHEAD = 64 + 2 * 64
_PART_OVERHEAD = 24


class QueryProblem(ValueError):
    """The query cannot be searched for (e.g. it has no word that is not excluded)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One term of a query: a word or a phrase (`words`, as typed), maybe a prefix, maybe excluded."""

    words: str
    prefix: bool = False
    excluded: bool = False

    def fts(self) -> str:
        """The term as an FTS5 string (quotes doubled), with ``*`` for a prefix."""
        quoted = '"' + self.words.replace('"', '""') + '"'
        return quoted + " *" if self.prefix else quoted


def parse(query: str) -> list[Term]:
    """The terms of `query`: words separated by white space; ``"a phrase"`` (an unclosed quote runs to the
    end); ``word*`` or ``"a phr"*``, a prefix; ``-word`` or ``-"a phrase"``, excluded. A term with no letter
    or digit is left out (FTS5 would find nothing for it)."""
    terms: list[Term] = []
    index, end = 0, len(query)
    while index < end:
        if query[index].isspace():
            index += 1
            continue
        excluded = query[index] == "-" and index + 1 < end and not query[index + 1].isspace()
        if excluded:
            index += 1
        if query[index] == '"':
            close = query.find('"', index + 1)
            stop = end if close < 0 else close
            words = query[index + 1 : stop]
            index = stop + 1
            prefix = index < end and query[index] == "*"
            if prefix:
                index += 1
        else:
            stop = index
            while stop < end and not query[stop].isspace():
                stop += 1
            words = query[index:stop]
            index = stop
            prefix = len(words) > 1 and words.endswith("*")
            words = words.rstrip("*")
        if any(character.isalnum() for character in words):
            terms.append(Term(" ".join(words.split()), prefix, excluded))
    return terms


def translate(query: str) -> str:
    """The FTS5 expression for `query` (see `parse`): every wanted term, and none of the excluded ones.

    Raises `QueryProblem` when no term is wanted (FTS5 cannot search for "not X" alone).
    """
    terms = parse(query)
    wanted = [term.fts() for term in terms if not term.excluded]
    unwanted = [term.fts() for term in terms if term.excluded]
    if not wanted:
        raise QueryProblem("give at least one word to search for (not only excluded ones)")
    expression = " AND ".join(wanted)
    if unwanted:
        expression = f"({expression}) NOT ({' OR '.join(unwanted)})"
    return expression


def snippet_parts(snippet: str, max_bytes: int) -> tuple[SnippetPart, ...]:
    """A snippet as FTS5 marked it (`MATCH_START` ... `MATCH_END` around matched words) in parts: plain text
    and matched words, in order, none empty; cut to about `max_bytes` of text (ending with an ellipsis)."""
    parts: list[SnippetPart] = []
    budget = max_bytes
    for index, piece in enumerate(snippet.split(MATCH_START)):
        matched, _, plain = piece.partition(MATCH_END) if index else ("", "", piece)
        for text, match in ((matched, True), (plain, False)):
            text = text.replace(MATCH_START, "").replace(MATCH_END, "")
            if not text or budget <= 0:
                continue
            encoded = text.encode()
            if len(encoded) > budget:
                keep = max(0, budget - len(ELLIPSIS.encode()))
                text = encoded[:keep].decode(errors="ignore") + ELLIPSIS
            budget -= len(encoded)
            parts.append(SnippetPart(text=text, match=match))
    return tuple(parts)


def answer_search(
    client: Client, request: Search, db: sqlite3.Connection, hub: Hub, config: ServerConfig, searchable: bool
) -> bytes:
    """Answer a `Search` (reader thread): the encoded `search_results` or `error` frame."""
    ref = request.ref
    if len(request.query.encode()) > config.search_max_query:
        return error_frame(
            ErrorCode.TOO_LONG, f"the query is longer than {config.search_max_query} bytes", ref
        )
    limit = config.search_page if request.limit is None else request.limit
    if not 0 < limit <= config.search_max_page:
        return error_frame(ErrorCode.INVALID_FIELD, f"limit must be 1 to {config.search_max_page}", ref)
    if request.room is not None and request.direct:
        return error_frame(ErrorCode.INVALID_FIELD, "give at most one of 'room' and 'direct'", ref)
    try:
        expression = translate(request.query)
    except QueryProblem as problem:
        return error_frame(ErrorCode.INVALID_FIELD, str(problem), ref)
    with hub.lock:
        owner = client.key
        rooms = tuple(client.rooms)
    if request.room is not None:
        key = fold(request.room)
        if key not in rooms:
            return error_frame(ErrorCode.NOT_IN_ROOM, f"you are not in {request.room!r}", ref)
        scope = Scope(room_keys=(key,), direct_owner=None)
    else:
        scope = Scope(room_keys=() if request.direct else rooms, direct_owner=owner)
    scope = Scope(
        room_keys=scope.room_keys,
        direct_owner=scope.direct_owner,
        sender_key=None if request.nick is None else fold(request.nick),
        since=request.since,
        until=request.until,
    )
    if not searchable:
        return error_frame(ErrorCode.HISTORY_UNAVAILABLE, "search is not available on this server", ref)
    try:
        found, more = storage.search(
            db,
            expression,
            scope,
            offset=request.offset,
            limit=limit,
            scan=config.search_scan,
            snippet_tokens=SNIPPET_WORDS,
        )
    except HistoryError as error:
        log.warning("conn=%d event=search_failed error=%s", client.id, error)
        return error_frame(ErrorCode.HISTORY_UNAVAILABLE, "history is unavailable", ref)
    hits, cut = _fit(found, config.max_text, config.max_frame - REPLY_MARGIN)
    return encode(SearchResults(hits=hits, offset=request.offset, more=more or cut, ref=ref))


def _fit(found: list[Found], max_text: int, max_bytes: int) -> tuple[tuple[SearchHit, ...], bool]:
    """The hits of `found` that fit one frame, best first; and whether any were left out."""
    hits: list[SearchHit] = []
    total = 0
    for row in found:
        parts = snippet_parts(row.snippet, max_text)
        total += _HIT_OVERHEAD + sum(_PART_OVERHEAD + len(part.text.encode()) for part in parts)
        if total > max_bytes:
            return tuple(hits), True
        hits.append(
            SearchHit(
                id=row.id,
                nick=row.sender,
                ts=row.ts,
                room=row.room,
                to=None if row.room is not None else row.recipient,
                snippet=parts,
            )
        )
    return tuple(hits), False
