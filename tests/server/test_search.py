"""`search`: full-text search over the history a client may read, its query syntax, paging, limits and rate;
and the FTS5 index built for a database made before search existed (issue 18)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_server.reader.search import QueryProblem, Term, parse, translate
from chat_server.server import ChatServer
from shared import (
    Ack,
    Delete,
    Edit,
    Error,
    History,
    Join,
    Leave,
    Ok,
    Say,
    Search,
    SearchResults,
    Tell,
    Told,
)

from .client import ChatTestClient

Login = Callable[..., ChatTestClient]
#: A history database made by the release before search (main at e01cc89, `HistoryStore` and a running
#: server): rooms lobby and dev, a direct message, a moderation entry. See `test_an_old_database_...`.
OLD_DATABASE = Path(__file__).parent / "data" / "history-before-search.sqlite3"


def say(client: ChatTestClient, room: str, text: str, ref: int) -> int:
    """Send one message and return its acked id."""
    client.send(Say(room=room, text=text, ref=ref))
    return client.recv(Ack, ref=ref).id


def search(client: ChatTestClient, query: str, ref: int, **fields: object) -> SearchResults:
    """Search and wait for the page."""
    client.send(Search(query=query, ref=ref, **fields))  # type: ignore[arg-type]
    return client.recv(SearchResults, ref=ref)


def refused(client: ChatTestClient, query: str, ref: int, **fields: object) -> Error:
    """Search and wait for the refusal."""
    client.send(Search(query=query, ref=ref, **fields))  # type: ignore[arg-type]
    return client.recv(Error, ref=ref)


def ids(results: SearchResults) -> list[int]:
    """The message ids of a page, in order."""
    return [hit.id for hit in results.hits]


def marked(results: SearchResults) -> list[str]:
    """Each hit's snippet with its matched parts in [brackets]."""
    return ["".join(f"[{p.text}]" if p.match else p.text for p in hit.snippet) for hit in results.hits]


def test_search_finds_words_in_my_rooms_with_marked_snippets(login: Login) -> None:
    """A search finds the messages holding every word, any case and accent, the matched words marked as
    parts of their own (never as markup in the text)."""
    alice = login("alice", rooms=["lobby", "dev"])
    first = say(alice, "lobby", "The Café opens at <b>nine</b>", 1)
    say(alice, "dev", "nothing to see here", 2)
    third = say(alice, "dev", "the cafe menu: [bold]coffee[/bold]", 3)
    results = search(alice, "cafe", 4)
    assert sorted(ids(results)) == [first, third]
    assert results.more is False
    assert sorted(marked(results)) == [
        "The [Café] opens at <b>nine</b>",
        "the [cafe] menu: [bold]coffee[/bold]",
    ]
    hit = next(hit for hit in results.hits if hit.id == first)
    assert (hit.room, hit.nick, hit.to) == ("lobby", "alice", None)
    assert hit.ts > 0


def test_a_non_member_finds_nothing_of_a_room(login: Login) -> None:
    """Only the rooms the searcher is in: another room's messages never show, and naming it is refused."""
    alice = login("alice", rooms=["secret"])
    say(alice, "secret", "the launch code is swordfish", 1)
    bob = login("bob", rooms=["lobby"])
    assert search(bob, "swordfish", 1).hits == ()
    assert refused(bob, "swordfish", 2, room="secret").code == "not_in_room"
    assert ids(search(alice, "swordfish", 1)) != []


def test_a_former_member_no_longer_searches_the_room(login: Login) -> None:
    """Leaving a room ends its search, as it ends `fetch_history` of it (docs/security.md)."""
    alice = login("alice", rooms=["lobby", "club"])
    say(alice, "club", "members only pancakes", 1)
    assert len(search(alice, "pancakes", 2).hits) == 1
    alice.send(Leave(room="club", ref=3))
    alice.recv(Ok, ref=3)
    assert search(alice, "pancakes", 4).hits == ()
    alice.send(Join(room="club", ref=5))
    alice.recv(History, ref=5)
    assert len(search(alice, "pancakes", 6).hits) == 1


def test_direct_messages_are_found_by_their_two_ends_only(login: Login) -> None:
    """A direct message is found by its sender and its recipient, never by a third nick."""
    alice = login("alice", rooms=["lobby"])
    bob = login("bob", rooms=["lobby"])
    carol = login("carol", rooms=["lobby"])
    alice.send(Tell(to="bob", text="psst the password is hunter2", ref=1))
    sent = alice.recv(Ack, ref=1).id
    bob.recv(Told, id=sent)
    for searcher in (alice, bob):
        results = search(searcher, "hunter2", 2)
        assert ids(results) == [sent]
        assert (results.hits[0].room, results.hits[0].to, results.hits[0].nick) == (None, "bob", "alice")
    assert search(carol, "hunter2", 2).hits == ()
    assert search(carol, "hunter2", 3, direct=True).hits == ()
    assert ids(search(bob, "hunter2", 4, direct=True)) == [sent]
    assert search(bob, "hunter2", 5, room="lobby").hits == ()


def test_filters_room_nick_and_time(login: Login) -> None:
    """`room`, `nick` and `since`/`until` narrow the hits."""
    alice = login("alice", rooms=["lobby", "dev"])
    bob = login("bob", rooms=["lobby", "dev"])
    a1 = say(alice, "lobby", "deploy on friday", 1)
    b1 = say(bob, "dev", "deploy tonight", 2)
    b2 = say(bob, "lobby", "deploy later", 3)
    assert sorted(ids(search(alice, "deploy", 4, room="dev"))) == [b1]
    assert sorted(ids(search(alice, "deploy", 5, nick="BOB"))) == [b1, b2]
    everything = search(alice, "deploy", 6)
    times = {hit.id: hit.ts for hit in everything.hits}
    assert sorted(times) == [a1, b1, b2]
    since = search(alice, "deploy", 7, since=times[b2])
    assert all(hit.ts >= times[b2] for hit in since.hits)
    assert b2 in ids(since)
    until = search(alice, "deploy", 8, until=times[a1] + 1)
    assert all(hit.ts <= times[a1] for hit in until.hits)
    assert a1 in ids(until)
    assert search(alice, "deploy", 9, since=times[b2] + 1).hits == ()


def test_the_nick_filter_is_exact(login: Login) -> None:
    """`nick` finds that sender's messages only, not those of a nick made of the same words, nor messages that
    only mention the nick; the sender is not a word of the text ("bob" finds no message by bob)."""
    bob = login("bob_x", rooms=["lobby"])
    other = login("x-bob-x", rooms=["lobby"])
    mine = say(bob, "lobby", "release notes", 1)
    say(other, "lobby", "release notes too", 2)
    say(other, "lobby", "release notes for bob_x", 3)
    assert ids(search(bob, "release", 4, nick="bob_x")) == [mine]
    assert ids(search(bob, "release", 5, nick="Bob_X")) == [mine]
    assert search(bob, "release", 6, nick="bob").hits == ()
    assert len(search(bob, "bob", 7).hits) == 1  # the one that names bob_x in its text


def test_query_syntax_phrases_prefixes_and_exclusions(login: Login) -> None:
    """ "a phrase" wants the words in order and together, word* any word starting so, -word excludes."""
    alice = login("alice", rooms=["lobby"])
    brown_fox = say(alice, "lobby", "the quick brown fox", 1)
    fox_brown = say(alice, "lobby", "a fox that is brown", 2)
    foxes = say(alice, "lobby", "foxes everywhere", 3)
    assert sorted(ids(search(alice, "brown fox", 4))) == [brown_fox, fox_brown]
    assert ids(search(alice, '"brown fox"', 5)) == [brown_fox]
    assert sorted(ids(search(alice, "fox*", 6))) == [brown_fox, fox_brown, foxes]
    assert sorted(ids(search(alice, "fox -quick", 7))) == [fox_brown]
    assert sorted(ids(search(alice, 'fox* -"quick brown"', 8))) == [fox_brown, foxes]
    assert ids(search(alice, '"quick brown', 9)) == [brown_fox]  # an unclosed quote runs to the end


@pytest.mark.parametrize(
    "query",
    [
        "text:fox",
        "fox OR nothing",
        "NEAR(fox brown)",
        '"',
        "*",
        "- -- -*",
        "fox AND",
        "^fox",
        "fox + brown",
        "(fox",
        "fox NOT",
        '"""',
        "{text}: fox",
    ],
)
def test_fts5_syntax_in_a_query_is_plain_words(login: Login, query: str) -> None:
    """FTS5's own operators, column filters and syntax errors cannot be reached: every query is searched
    for as the documented syntax reads it, and none fails with a database error."""
    alice = login("alice", rooms=["lobby"])
    say(alice, "lobby", "the quick brown fox", 1)
    alice.send(Search(query=query, ref=2))
    answer = alice.recv_until(lambda m: getattr(m, "ref", None) == 2)
    if isinstance(answer, Error):
        assert answer.code == "invalid_field", answer  # no word to search for: never a database error
    else:
        assert isinstance(answer, SearchResults)
    if query in {"text:fox", "fox OR nothing", "fox AND", "fox NOT"}:
        # "text", "OR", "AND", "NOT" are words like any other, so these find nothing here
        assert isinstance(answer, SearchResults)
        assert answer.hits == ()


def test_a_query_with_nothing_to_find_is_refused(login: Login) -> None:
    """Only excluded words, or no word at all: `invalid_field`."""
    alice = login("alice", rooms=["lobby"])
    for ref, query in enumerate(["-fox", "", "  !!! ", '-"a b"']):
        assert refused(alice, query, ref).code == "invalid_field"


def test_paging_gives_every_hit_once_best_first(make_server: Callable[..., ChatServer]) -> None:
    """`offset` and `limit` page through the hits; `more` says another page follows; best match first."""
    server = make_server(search_page=4)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=["lobby"])
        sent = [say(alice, "lobby", f"apple number {n}", n) for n in range(10)]
        strong = say(alice, "lobby", "apple apple apple", 10)
        seen: list[int] = []
        offset, more = 0, True
        while more:
            page = search(alice, "apple", 100 + offset, offset=offset)
            assert page.offset == offset
            assert len(page.hits) <= 4
            seen.extend(ids(page))
            offset, more = offset + len(page.hits), page.more
        assert sorted(seen) == sorted([*sent, strong])
        assert seen[0] == strong
        assert search(alice, "apple", 200, limit=11).more is False
        assert search(alice, "apple", 201, offset=11).hits == ()


def test_the_query_length_limit(make_server: Callable[..., ChatServer]) -> None:
    """A query over `search_max_query` bytes is refused with `too_long`; one at the limit is searched."""
    server = make_server(search_max_query=20)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=["lobby"])
        assert isinstance(search(alice, "é" * 10, 1), SearchResults)
        error = refused(alice, "é" * 10 + "x", 2)
        assert error.code == "too_long"
        assert "20 bytes" in error.message


def test_the_page_size_limit(make_server: Callable[..., ChatServer]) -> None:
    """`limit` over `search_max_page` (or 0) is refused with `invalid_field`; at the limit it is served."""
    server = make_server(search_page=2, search_max_page=3)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=["lobby"])
        for n in range(5):
            say(alice, "lobby", f"pear {n}", n)
        assert len(search(alice, "pear", 10).hits) == 2
        assert len(search(alice, "pear", 11, limit=3).hits) == 3
        assert refused(alice, "pear", 12, limit=4).code == "invalid_field"
        assert refused(alice, "pear", 13, limit=0).code == "invalid_field"


def test_a_page_is_cut_to_one_frame(make_server: Callable[..., ChatServer]) -> None:
    """Long snippets: the page holds what fits one frame, and `more` says the rest follows."""
    server = make_server(max_frame=8192, max_text=4096, search_max_page=50)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=["lobby"])
        for n in range(6):
            say(alice, "lobby", "kiwi" + "x" * 1500 + f" {n}", n)
        page = search(alice, "kiwi*", 10, limit=6)
        assert 0 < len(page.hits) < 6
        assert page.more is True


def test_the_search_rate_limit(make_server: Callable[..., ChatServer]) -> None:
    """Past `rate_searches_burst` searches at once, one is refused with `rate_limited` and a retry time;
    the rates are announced in `welcome.rates.searches`."""
    server = make_server(rate_searches=0.01, rate_searches_burst=2)
    with ChatTestClient(server.address) as alice:
        welcome = alice.login("alice", rooms=["lobby"])
        assert welcome.rates is not None
        assert (welcome.rates.searches.burst, welcome.rates.searches.refill_ms) == (2, 200_000)
        search(alice, "x", 1)
        search(alice, "x", 2)
        error = refused(alice, "x", 3)
        assert error.code == "rate_limited"
        assert error.retry_after_ms is not None
        assert error.retry_after_ms > 1000


def test_new_messages_are_indexed_as_they_are_stored(login: Login) -> None:
    """The index follows every message stored (room, direct, file names), and not moderation reasons."""
    alice = login("alice", rooms=["lobby"])
    for n in range(3):
        message_id = say(alice, "lobby", f"mango {n}", n)
        assert message_id in ids(search(alice, "mango", 10 + n))
    bob = login("bob", rooms=["lobby"])
    bob.send(Tell(to="alice", text="a mango for you", ref=1))
    told = bob.recv(Ack, ref=1).id
    assert told in ids(search(alice, "mango", 20))
    assert len(search(alice, "mango", 21).hits) == 4


def test_an_edited_message_is_found_by_its_new_words_only(login: Login) -> None:
    """An edit replaces what a message is found by: its old words no longer find it, its new ones do, with a
    snippet of the text as it now reads."""
    alice = login("alice", rooms=["lobby"])
    message_id = say(alice, "lobby", "the secret plan is pineapple", 1)
    assert ids(search(alice, "pineapple", 2)) == [message_id]
    alice.send(Edit(id=message_id, text="the plan is a mango now", ref=3))
    alice.recv(Ack, ref=3)
    assert search(alice, "pineapple", 4).hits == ()
    assert search(alice, "secret", 5).hits == ()
    results = search(alice, "mango", 6)
    assert ids(results) == [message_id]
    assert marked(results) == ["the plan is a [mango] now"]


def test_a_deleted_message_is_never_found(login: Login) -> None:
    """A deleted message (its text erased) is found by none of its words, in a room or a direct
    conversation."""
    alice = login("alice", rooms=["lobby"])
    bob = login("bob", rooms=["lobby"])
    said = say(alice, "lobby", "meet at the papaya stand", 1)
    alice.send(Tell(to="bob", text="papaya for two", ref=2))
    told = alice.recv(Ack, ref=2).id
    bob.recv(Told, id=told)
    assert sorted(ids(search(bob, "papaya", 3))) == [said, told]
    for ref, message_id in ((4, said), (5, told)):
        alice.send(Delete(id=message_id, ref=ref))
        alice.recv(Ack, ref=ref)
    for searcher in (alice, bob):
        assert search(searcher, "papaya", 6).hits == ()
        assert search(searcher, "stand", 7).hits == ()


# -- The index of a database made before search ------------------------------------------------------------


def test_an_old_database_gets_its_index_at_start(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    """A history made by the release before search (checked in: tests/server/data) gets its FTS5 index, a file
    beside it, at the first start: its old messages are found, the new ones too, moderation entries are not
    indexed, and the index passes FTS5's integrity check."""
    database = tmp_path / "history.sqlite3"
    shutil.copyfile(OLD_DATABASE, database)
    old = sqlite3.connect(database)
    try:
        names = {row[0] for row in old.execute("SELECT name FROM sqlite_master")}
        assert "messages_fts" not in names  # really made before search
        said = "SELECT COUNT(*) FROM messages WHERE text LIKE '%lobby%' AND event IS NULL"
        stored_lobby = old.execute(said).fetchone()[0]
        assert stored_lobby > 0
        assert old.execute("SELECT COUNT(*) FROM messages WHERE event IS NOT NULL").fetchone()[0] > 0
    finally:
        old.close()
    server = make_server(db=database)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice", rooms=["lobby", "dev"])
        bob.login("bob", rooms=["lobby"])
        lobby = search(alice, "lobby", 1, limit=50)
        assert lobby.hits
        assert {hit.room for hit in lobby.hits} == {"lobby"}
        assert search(alice, "release", 2, room="dev").hits != ()
        assert ids(search(bob, "whisper", 3, direct=True)) != []
        assert search(alice, "whisper", 4).hits == ()  # a DM between bob and carol
        assert search(alice, "spamming", 5).hits == ()  # the kick's reason is not indexed
        fresh = say(alice, "lobby", "lobby after the upgrade", 6)
        assert fresh in ids(search(alice, "upgrade", 7))
    server.stop()
    index = sqlite3.connect(tmp_path / "history-search.sqlite3")  # beside the history, made at the start
    try:
        index.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")  # FTS5's own
        assert index.execute("SELECT id FROM indexed").fetchone()[0] == fresh  # everything up to the newest
        found = index.execute("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'lobby'")
        assert found.fetchone()[0] == stored_lobby + 1  # the old lobby messages and the new one, not the kick
    finally:
        index.close()


# -- The query syntax, alone ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('ab "-*:^()+.,éÉ\t\n{}NEARORANDNOT'), max_size=40))
def test_no_query_reaches_fts5_as_syntax(query: str) -> None:
    """Whatever the user types, the expression FTS5 gets is well formed: it finds, or is refused as having
    nothing to search for (`QueryProblem`), never an FTS5 syntax error or a column filter."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(text, other, tokenize='unicode61 remove_diacritics 2')")
        db.execute("INSERT INTO t VALUES ('a b ab', 'NEAR OR AND NOT')")
        try:
            expression = translate(query)
        except QueryProblem:
            assert not any(not term.excluded for term in parse(query))
            return
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()
        # Every word is a quoted string: no bare word reaches FTS5 as an operator or a column name.
        assert "other" not in expression.replace('"other"', "")
    finally:
        db.close()


def test_the_query_syntax_as_terms() -> None:
    """Words, a phrase, a prefix, exclusions, an unclosed quote, and what is left out."""
    assert parse('deploy "next week" fri* -lunch -"team meeting" "open') == [
        Term("deploy"),
        Term("next week"),
        Term("fri", prefix=True),
        Term("lunch", excluded=True),
        Term("team meeting", excluded=True),
        Term("open"),
    ]
    assert parse("!!! - * ...") == []
    assert translate('a "b c" d*') == '"a" AND "b c" AND "d" *'
    assert translate('say "hi" -x') == '("say" AND "hi") NOT ("x")'
    assert translate('quote"inside') == '"quote""inside"'
