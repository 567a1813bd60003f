"""Search and typing in the client (issue 18), against a real server: the library's `ChatClient.search` and
`typing`, the plain mode's `/search`, and the TUI's search panel (Ctrl+F, `/search`), its jump to a hit with
the history around it, and the "… is typing" line under the log."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from textual.widgets import OptionList

from chat_client import ChatClient
from chat_client.net.errors import ServerError
from chat_client.tui.screens.chat import ChatScreen
from chat_client.tui.screens.search import SearchScreen
from shared import History, Said, Typing
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .test_library import FAST, Recorder
from .test_plain import killed_on_exit, plain_client
from .tui_helpers import connected_app, log_text, submit, wait_for_chat, wait_for_text


async def test_library_search_pages_and_keeps_to_what_one_may_read(server: LiveServer) -> None:
    """`search` returns pages of hits, best first, with `more`; a room one is not in is refused and never
    found; a direct message is found by its two ends only."""
    async with (
        ChatClient(server.host, server.port, "alice", options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", rooms=[], options=FAST) as bob,
        ChatClient(server.host, server.port, "carol", rooms=[], options=FAST) as carol,
    ):
        await alice.join("dev")
        sent = [(await alice.say("dev", f"kumquat number {n}", wait=True)).id for n in range(5)]
        told = (await alice.tell("bob", "a kumquat for you", wait=True)).id
        first = await alice.search("kumquat", limit=4)
        assert first is not None
        assert len(first.hits) == 4
        assert first.more is True
        second = await alice.search("kumquat", limit=4, offset=4)
        assert second is not None
        assert second.more is False
        assert sorted(hit.id for hit in (*first.hits, *second.hits)) == sorted([*sent, told])
        only_dev = await alice.search("kumquat", room="dev")
        assert only_dev is not None
        assert {hit.room for hit in only_dev.hits} == {"dev"}
        assert [hit.id for hit in (await bob.search("kumquat") or first).hits] == [told]
        with pytest.raises(ServerError) as refused:
            await bob.search("kumquat", room="dev")
        assert refused.value.code == "not_in_room"
        found = await carol.search("kumquat")
        assert found is not None
        assert found.hits == ()


async def test_typing_reaches_the_room_unless_turned_off(server: LiveServer) -> None:
    """`typing` reaches the others as a `Typing` event with the nick; a second start soon after is not sent;
    a client with `send_typing` off sends none; a stop follows a start."""
    quiet = dataclasses.replace(FAST, send_typing=False)
    async with (
        ChatClient(server.host, server.port, "alice", options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", options=FAST) as bob,
        ChatClient(server.host, server.port, "carol", options=quiet) as carol,
    ):
        events = Recorder(bob)
        assert await alice.typing("lobby") is True
        await wait_until(lambda: events.of(Typing), what="alice's typing")
        assert events.of(Typing) == [Typing(room="lobby", active=True, nick="alice")]
        assert await alice.typing("lobby") is False  # within typing_repeat: not sent again
        assert await carol.typing("lobby") is False  # send_typing off: nothing leaves the client
        await carol.say("lobby", "carol was here", wait=True)
        await wait_until(lambda: any(e.text == "carol was here" for e in events.of(Said)), what="carol")
        assert await alice.typing("lobby", active=False) is True
        await wait_until(lambda: len(events.of(Typing)) == 2, what="alice's stop")
        assert events.of(Typing)[1] == Typing(room="lobby", active=False, nick="alice")
        assert await alice.typing("lobby", active=False) is False  # no start since: nothing to stop
        assert all(t.nick == "alice" for t in events.of(Typing))


async def test_plain_search_prints_hits_with_the_match_marked(server: LiveServer) -> None:
    """`/search` in the line mode prints a heading and a line per hit (time, room, nick, the snippet with
    the match between stars), as text; `/search --more` prints the next page."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        await bob.join("dev")
        for n in range(25):
            await bob.say("dev", f"durian [bold]{n}[/bold]", wait=True)
        with killed_on_exit(plain_client(server, "alice", "--room", "dev")) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write("/search durian\n")
            process.stdin.flush()
            heading = _read_until(process, 'search "durian": 20 hits, more follow')
            hits = [process.stdout.readline().rstrip("\n") for _ in range(20)]
            assert all(" dev <bob> *durian* [bold]" in hit for hit in hits), hits
            assert process.stdout.readline().strip() == "more: /search --more"
            process.stdin.write("/search --more\n")
            process.stdin.flush()
            more = [process.stdout.readline().rstrip("\n") for _ in range(5)]
            assert all(" dev <bob> *durian* [bold]" in hit for hit in more), more
            process.stdin.write("/quit\n")
            process.stdin.flush()
            process.communicate(timeout=15)
        assert heading


def _read_until(process: object, text: str) -> str:
    """Read the plain client's output until a line holding `text` (the test fails on end of output)."""
    stdout = process.stdout  # type: ignore[attr-defined]
    while True:
        line = stdout.readline()
        assert line, f"the output ended before {text!r}"
        if text in line:
            return str(line)


async def test_tui_search_panel_lists_hits_and_jumps_to_one(server: LiveServer, private_dirs: Path) -> None:
    """Ctrl+F opens the panel; the hits show room, nick, time and the snippet (markup shown as text); Enter
    on a hit older than the room's backfill jumps there with the history around it loaded."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        await bob.join("dev")
        for n in range(80):
            text = f"persimmon [red]{n}[/red]" if n == 5 else f"filler {n}"
            await bob.say("dev", text, wait=True)
        app = connected_app(server, private_dirs, room="dev")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for_chat(app, pilot)
            await wait_for_text(app, pilot, "filler 79")
            assert "filler 20" not in log_text(app)  # older than the backfill
            await pilot.press("ctrl+f")
            await wait_until(lambda: isinstance(app.screen, SearchScreen), what="the search panel")
            await pilot.press(*"persimmon", "enter")
            hits = app.screen.query_one("#search-hits", OptionList)
            await wait_until(lambda: hits.option_count == 1, what="one hit listed")
            prompt = str(hits.get_option_at_index(0).prompt)
            assert "dev" in prompt
            assert "bob" in prompt
            assert "persimmon [red]5[/red]" in prompt
            await pilot.press("enter")
            await wait_until(lambda: isinstance(app.screen, ChatScreen), what="back to the chat")
            await wait_for_text(app, pilot, "persimmon [red]5[/red]")
            await wait_for_text(app, pilot, "filler 4")
            await wait_for_text(app, pilot, "filler 6")
            assert app.screen.model.current_buffer.name == "dev"


async def test_tui_search_command_opens_the_panel(server: LiveServer, private_dirs: Path) -> None:
    """`/search WORDS` opens the panel with the hits; a refusal is said in it."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        await bob.join("dev")
        await bob.say("dev", "rambutan season", wait=True)
        app = connected_app(server, private_dirs, room="dev")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for_chat(app, pilot)
            await wait_for_text(app, pilot, "rambutan season")
            await submit(pilot, "/search rambutan")
            await wait_until(lambda: isinstance(app.screen, SearchScreen), what="the search panel")
            hits = app.screen.query_one("#search-hits", OptionList)
            await wait_until(lambda: hits.option_count == 1, what="one hit listed")
            await pilot.press("escape")
            await wait_until(lambda: isinstance(app.screen, ChatScreen), what="back to the chat")


async def test_tui_shows_who_is_typing_until_it_expires(tmp_path: Path, private_dirs: Path) -> None:
    """ "bob is typing…" shows under the log when bob starts, goes when his message comes, and goes by itself
    when no start follows for a while."""
    now = [1_000_000.0]
    with LiveServer(fast_server_config(tmp_path / "server", typing_interval=0.001)) as server:
        await _typing_shown_and_expired(server, private_dirs, now)


async def _typing_shown_and_expired(server: LiveServer, private_dirs: Path, now: list[float]) -> None:
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs, room="lobby", clock=lambda: now[0])
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await wait_for_chat(app, pilot)
            typing = screen.query_one("#typing")
            await bob.typing("lobby")
            await wait_until(lambda: typing.display and "bob is typing…" in str(typing.render()))
            await bob.say("lobby", "done typing", wait=True)
            await wait_until(lambda: not typing.display, what="the message ends the typing")
            bob.options = dataclasses.replace(FAST, typing_repeat=0.0)
            await bob.typing("lobby")
            await wait_until(lambda: typing.display, what="typing again")
            now[0] += 60  # no start for a minute: it expires
            await wait_until(lambda: not typing.display, what="the typing line expires")
            assert app.screen.model.buffers  # still connected


async def test_history_pages_never_hold_typing(server: LiveServer) -> None:
    """Typing is never stored: a page of the room's history after some typing holds only the messages."""
    async with (
        ChatClient(server.host, server.port, "alice", options=FAST) as alice,
        ChatClient(server.host, server.port, "bob", options=FAST) as bob,
    ):
        events = Recorder(bob)
        await alice.typing("lobby")
        await alice.say("lobby", "after typing", wait=True)
        await wait_until(lambda: events.of(Said), what="the message")
        page = await bob.fetch_history("lobby")
        assert isinstance(page, History)
        assert [type(item).__name__ for item in page.messages] == ["Said"]
