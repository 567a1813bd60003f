"""Search of the stored history (`search`), served on the asking connection's reader thread.

Like history pages (chat_server.reader.pages), a search runs on the reader thread of the connection that asks,
on that thread's own SQLite read connection (with the search index attached, chat_server.searchdb): WAL mode
lets it read while the history thread writes, and the history thread never waits for it, so a search never
delays chat. The snippets are cut here, from the message's text, with the matched words as parts of their
own.

The user's query is never handed to FTS5 as an expression: `translate` reads it with the documented syntax
(docs/protocol.md, `search`: words, "phrases", prefix*, -excluded) and writes an FTS5 expression in which
every word is a quoted string, so FTS5's own operators, column filters and syntax errors cannot be reached
from the wire.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import unicodedata
from dataclasses import dataclass

from chat_server import searchdb
from chat_server.config import ServerConfig
from chat_server.hub import Client, Hub
from chat_server.indexer.indexer import SearchIndexer
from chat_server.replies import REPLY_MARGIN, error_frame
from chat_server.searchdb import Found, Scope
from chat_server.storage import HistoryError
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Search, SearchHit, SearchResults, SnippetPart
from shared.text import fold

log = logging.getLogger(__name__)

#: Wire bytes of a hit besides its snippet's text (keys, ids, room, nicks), and of one snippet part besides
#: its text: used to cut a page to one frame.
_HIT_OVERHEAD = 64 + 2 * 64
_PART_OVERHEAD = 24


#: Seconds a search waits for the index to catch up with the history before it searches what is indexed
#: (only right after an upgrade, while the whole history is being indexed, is the wait that long).
INDEX_WAIT = 2.0
#: What snippets put where text was left out.
ELLIPSIS = "\u2026"


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
    return expression_of(parse(query))


def expression_of(terms: list[Term]) -> str:
    """The FTS5 expression for `terms` (see `translate`)."""
    wanted = [term.fts() for term in terms if not term.excluded]
    unwanted = [term.fts() for term in terms if term.excluded]
    if not wanted:
        raise QueryProblem("give at least one word to search for (not only excluded ones)")
    expression = " AND ".join(wanted)
    if unwanted:
        expression = f"({expression}) NOT ({' OR '.join(unwanted)})"
    return expression


#: Words of a snippet: the matched words with some of the text around them.
SNIPPET_WORDS = 16
#: Words of context before the first matched word.
SNIPPET_LEAD = 5
#: A message this short (in characters) is shown whole.
SNIPPET_WHOLE = 160
#: A word as FTS5's unicode61 tokenizer sees one: a run of letters and digits.
WORD = re.compile(r"[^\W_]+")


def fold_word(word: str) -> str:
    """A word as the index compares it: case folded, accents removed (unicode61, remove_diacritics 2)."""
    decomposed = unicodedata.normalize("NFD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True, slots=True)
class Highlight:
    """What a snippet marks: the folded words of the wanted terms, and the prefixes (the last word of a
    prefix term)."""

    words: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, terms: list[Term]) -> Highlight:
        """The words to mark for `terms` (the excluded ones are never in a hit)."""
        words: set[str] = set()
        prefixes: list[str] = []
        for term in terms:
            if term.excluded:
                continue
            folded = [fold_word(word) for word in WORD.findall(term.words)]
            if term.prefix and folded:
                prefixes.append(folded.pop())
            words.update(folded)
        return cls(frozenset(words), tuple(prefixes))

    def counts(self, text: str) -> tuple[int, dict[str, int]]:
        """How many words `text` has, and how often each wanted word (each prefix: words starting with it)
        occurs in it; a phrase's words count one by one."""
        words = WORD.findall(text.lower() if text.isascii() else fold_word(text))
        found: dict[str, int] = {}
        for word in words:
            if word in self.words:
                found[word] = found.get(word, 0) + 1
            else:
                for prefix in self.prefixes:
                    if word.startswith(prefix):
                        found[prefix] = found.get(prefix, 0) + 1
        return len(words), found

    def marks(self, word: str) -> bool:
        """Whether `word` (as written in a message) is one to mark."""
        folded = fold_word(word)
        return folded in self.words or any(folded.startswith(prefix) for prefix in self.prefixes)


#: BM25's constants, as FTS5's bm25 has them: how soon more occurrences of a word stop counting (k1), and how
#: much a message's length weighs (b).
BM25_K1 = 1.2
BM25_B = 0.75


def rank(window: list[Found], highlight: Highlight) -> list[Found]:
    """The messages of `window` (the newest matches: `searchdb.search`) best first, newest first among equals.

    BM25 over the window, without the words' rarity: for each wanted word, its occurrences in the message,
    which count less and less (k1), and less in a longer message than in one of the window's average length
    (b). FTS5's bm25 also weighs each word by its rarity in the whole index, and finding that out reads every
    match of the word: about 30 ms for a common one (docs/performance.md, "Search"). Every message found holds
    every wanted word, so the rarity would only set how much each word weighs against the others.
    """
    counted = [highlight.counts(row.text) for row in window]
    average = sum(length for length, _found in counted) / len(counted) if counted else 1.0
    scored: list[tuple[float, int, Found]] = []
    for row, (length, found) in zip(window, counted, strict=True):
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / (average or 1.0))
        score = sum(tf * (BM25_K1 + 1) / (tf + norm) for tf in found.values())
        scored.append((-score, -row.id, row))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [row for _score, _id, row in scored]


def find(
    db: sqlite3.Connection, terms: list[Term], scope: Scope, *, offset: int, limit: int, scan: int
) -> tuple[list[Found], bool]:
    """The page of hits for `terms` in `scope` (the `limit` after `offset`, best first) and whether more
    follow, on a history connection with the index attached. Raises `QueryProblem` (nothing wanted) and
    `HistoryError`."""
    window = searchdb.search(db, expression_of(terms), scope, scan=scan)
    ranked = rank(window, Highlight.of(terms))
    return ranked[offset : offset + limit], len(ranked) > offset + limit


def snippet_parts(text: str, highlight: Highlight) -> tuple[SnippetPart, ...]:
    """The part of `text` around its first marked word (all of it when short), in pieces: plain text and
    marked words, in order, none empty; "…" where text was left out."""
    words = list(WORD.finditer(text))
    marked = [index for index, match in enumerate(words) if highlight.marks(match.group())]
    start, end = 0, len(text)
    if len(text) > SNIPPET_WHOLE and words:
        first = max(0, (marked[0] if marked else 0) - SNIPPET_LEAD)
        last = min(len(words), first + SNIPPET_WORDS) - 1
        start = words[first].start() if first else 0
        end = words[last].end() if last < len(words) - 1 else len(text)
    parts: list[SnippetPart] = []
    plain = ELLIPSIS if start else ""
    at = start
    for index in marked:
        match = words[index]
        if match.start() < start or match.end() > end:
            continue
        plain += text[at : match.start()]
        if plain:
            parts.append(SnippetPart(text=plain))
        parts.append(SnippetPart(text=match.group(), match=True))
        plain, at = "", match.end()
    plain += text[at:end] + (ELLIPSIS if end < len(text) else "")
    if plain:
        parts.append(SnippetPart(text=plain))
    return tuple(parts)


def answer_search(
    client: Client,
    request: Search,
    db: sqlite3.Connection,
    hub: Hub,
    config: ServerConfig,
    indexer: SearchIndexer | None,
) -> bytes:
    """Answer a `Search` (reader thread, on its history read connection `db`): the encoded `search_results`
    or `error` frame."""
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
    terms = parse(request.query)
    try:
        expression_of(terms)  # at least one word is wanted
    except QueryProblem as problem:
        return error_frame(ErrorCode.INVALID_FIELD, str(problem), ref)
    with hub.lock:
        owner = client.key
        rooms = tuple(client.rooms)
    sender = None if request.nick is None else fold(request.nick)
    if request.room is not None:
        key = fold(request.room)
        if key not in rooms:
            return error_frame(ErrorCode.NOT_IN_ROOM, f"you are not in {request.room!r}", ref)
        scope = Scope((key,), None, sender, request.since, request.until)
    else:
        scope = Scope(() if request.direct else rooms, owner, sender, request.since, request.until)
    if indexer is None:
        return error_frame(ErrorCode.HISTORY_UNAVAILABLE, "search is not available on this server", ref)
    try:
        searchdb.attach(db, indexer.path)
        # Everything stored before this search is found by it (the indexer catches up first, bounded).
        indexer.catch_up(searchdb.newest_id(db), INDEX_WAIT)
        found, more = find(db, terms, scope, offset=request.offset, limit=limit, scan=config.search_scan)
    except HistoryError as error:
        log.warning("conn=%d event=search_failed error=%s", client.id, error)
        return error_frame(ErrorCode.HISTORY_UNAVAILABLE, "search is unavailable", ref)
    hits, cut = _fit(found, Highlight.of(terms), config.max_frame - REPLY_MARGIN)
    return encode(SearchResults(hits=hits, offset=request.offset, more=more or cut, ref=ref))


def _fit(found: list[Found], highlight: Highlight, max_bytes: int) -> tuple[tuple[SearchHit, ...], bool]:
    """The hits of `found` that fit one frame, best first; and whether any were left out."""
    hits: list[SearchHit] = []
    total = 0
    for row in found:
        parts = snippet_parts(row.text, highlight)
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
