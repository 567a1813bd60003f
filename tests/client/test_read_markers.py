"""Read markers in the client (issue 18), against a real server: the library's `mark_read`, the model's
unread counts and "new messages" divider from the markers a login brings, and the TUI moving the marker once
the newest line was on screen, and F4 marking everything read (through Pilot)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_client import ChatClient, Connected
from chat_client.model.chat import ChatModel, room_key
from chat_client.net.errors import InvalidRequest
from chat_client.plain.linemode import run_plain
from chat_client.tui.app import ChatApp
from shared import NotifyLevel, ReadMarker, ReadPosition
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .test_library import FAST, Recorder
from .tui_helpers import connected_app, log_text, room_list_text, submit, wait_for_chat, wait_for_text

#: A scrypt cost that takes microseconds, so registering is fast in tests.
CHEAP = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}
PASSWORD = "correct horse"
SIZE = (120, 36)


@pytest.fixture
def cheap(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with cheap nick hashing, stopped after the test."""
    with LiveServer(fast_server_config(tmp_path / "cheap", **CHEAP)) as live:
        yield live


async def register(server: LiveServer, nick: str, rooms: list[str]) -> None:
    """Register `nick` (and leave it logged out)."""
    async with ChatClient(server.host, server.port, nick, rooms=rooms, options=FAST) as client:
        answer = await client.register(PASSWORD)
        assert answer is not None
        assert answer.registered


async def say_all(server: LiveServer, room: str, texts: list[str]) -> list[int]:
    """Alice says `texts` in `room`; their ids."""
    async with ChatClient(server.host, server.port, "alice", rooms=[room], options=FAST) as alice:
        return [(await alice.say(room, text, wait=True)).id or 0 for text in texts]


async def markers_at_login(server: LiveServer, nick: str) -> tuple[ReadPosition, ...]:
    """The read markers the server gives `nick` (registered) at its next login."""
    client = ChatClient(server.host, server.port, nick, rooms=[], options=FAST, nick_password=PASSWORD)
    async with client:
        events = Recorder(client)
        await wait_until(lambda: bool(events.of(Connected)), what="the welcome")
        return events.of(Connected)[0].welcome.read_markers


async def test_the_library_marks_read_and_a_login_brings_the_markers_back(cheap: LiveServer) -> None:
    await register(cheap, "bob", ["lobby", "attic"])
    ids = await say_all(cheap, "lobby", ["one", "two", "three"])
    client = ChatClient(cheap.host, cheap.port, "bob", rooms=["lobby"], options=FAST, nick_password=PASSWORD)
    async with client as bob:
        answer = await bob.mark_read(ids[1], room="lobby")
        assert answer == ReadMarker(room="lobby", id=ids[1], ref=answer.ref if answer else None)
        back = await bob.mark_read(ids[0], room="lobby")  # a marker never moves back
        assert back is not None
        assert back.id == ids[1]
    assert await markers_at_login(cheap, "bob") == (ReadPosition(room="lobby", id=ids[1]),)


async def test_the_model_counts_unread_from_the_marker_a_login_brings(cheap: LiveServer) -> None:
    """After a restart of the client, the lines past the marker are the unread ones, with a divider."""
    await register(cheap, "bob", ["lobby", "attic"])
    ids = await say_all(cheap, "attic", ["one", "two", "three"])
    rooms = ["lobby", "attic"]
    async with ChatClient(
        cheap.host, cheap.port, "bob", rooms=rooms, options=FAST, nick_password=PASSWORD
    ) as bob:
        await bob.mark_read(ids[0], room="attic")
    model = ChatModel("bob")
    async with ChatClient(
        cheap.host, cheap.port, "bob", rooms=rooms, options=FAST, nick_password=PASSWORD
    ) as bob:
        events = Recorder(bob)
        await wait_until(lambda: len(events.texts("attic")) == 3, what="the backfill")
        model.apply_all(events.events)
    assert model.current == room_key("lobby")  # the first room joined is on screen
    attic = model.buffers[room_key("attic")]
    assert attic.read_up_to == ids[0]
    assert attic.unread == 2  # "two" and "three"
    assert attic.first_unread is not None
    assert attic.first_unread.id == ids[1]
    model.switch(attic.key)
    assert attic.marker is not None
    assert attic.marker.id == ids[1]  # the "new messages" divider goes before "two"


async def test_the_tui_marks_the_room_read_once_its_newest_line_was_seen(
    cheap: LiveServer, tmp_path: Path
) -> None:
    await register(cheap, "bob", ["lobby", "attic"])
    app = connected_app(cheap, tmp_path / "bob", nick="bob", nick_password=PASSWORD, room="lobby")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_chat(app, pilot)
        ids = await say_all(cheap, "lobby", ["first news", "second news"])
        await wait_for_text(app, pilot, "second news")
        key = room_key("lobby")
        # Checked once a second: the marker follows, and the server's answer confirms it.
        await wait_until(lambda: app_markers(app).get(key) == ids[1], what="the marker at the newest line")
    assert ReadPosition(room="lobby", id=ids[1]) in await markers_at_login(cheap, "bob")
    # Away, two more messages in the lobby and one in the attic; back, the TUI starts from the marker.
    later = await say_all(cheap, "lobby", ["third news", "fourth news"])
    await say_all(cheap, "attic", ["attic news"])
    app = connected_app(cheap, tmp_path / "bob", nick="bob", nick_password=PASSWORD, room="lobby")
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_chat(app, pilot)
        await wait_for_text(app, pilot, "fourth news")
        lobby = screen.model.buffers[key]
        assert lobby.read_up_to >= ids[1]
        assert lobby.marker is not None
        assert lobby.marker.id == later[0]  # "new messages" before "third news"
        await wait_until(lambda: "new messages" in log_rows(app), what="the divider")


async def test_f4_marks_every_room_read(cheap: LiveServer, tmp_path: Path) -> None:
    await register(cheap, "bob", ["lobby", "attic"])
    app = connected_app(cheap, tmp_path / "bob", nick="bob", nick_password=PASSWORD, room="lobby")
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_chat(app, pilot)
        await submit(pilot, "/join attic")
        await wait_until(lambda: screen.model.current == room_key("attic"), what="the attic")
        await submit(pilot, "/join lobby")  # back to the lobby: the attic is out of sight
        await wait_until(lambda: screen.model.current == room_key("lobby"), what="the lobby")
        (attic_id,) = await say_all(cheap, "attic", ["unseen upstairs"])
        await wait_until(lambda: "attic (1)" in room_list_text(app), what="the attic's unread count")
        await pilot.press("f4")
        await wait_until(lambda: "attic (1)" not in room_list_text(app), what="no unread count")
        await wait_until(lambda: app_markers(app).get(room_key("attic")) == attic_id, what="the attic marked")
    assert ReadPosition(room="attic", id=attic_id) in await markers_at_login(cheap, "bob")


def app_markers(app: ChatApp) -> dict[str, int]:
    """The read markers the app's model holds, by buffer key."""
    screen = app.chat_screen
    return screen.model.read_markers if screen is not None else {}


def log_rows(app: ChatApp) -> str:
    """Everything the chat log shows."""
    return log_text(app)


async def test_plain_mode_on_a_terminal_marks_what_it_printed(cheap: LiveServer, tmp_path: Path) -> None:
    """`--plain` writing to a terminal has shown every line: the marker follows (checked in the history
    file itself), and the run ends as usual when its input does."""
    await register(cheap, "bob", ["lobby"])
    ids = await say_all(cheap, "lobby", ["one", "two"])
    master, terminal = os.openpty()
    drained = threading.Thread(target=drain, args=(master,), daemon=True)
    drained.start()
    typed_end, typed = os.pipe()
    with (
        open(terminal, "w", encoding="utf-8") as out,
        open(typed_end, encoding="utf-8") as source,
        open(typed, "w", encoding="utf-8") as keyboard,
    ):
        run = asyncio.create_task(
            run_plain(
                cheap.host,
                cheap.port,
                "bob",
                room="lobby",
                options=FAST,
                source=source,
                out=out,
                err=io.StringIO(),
                nick_password=PASSWORD,
            )
        )
        database = cheap.config.history_path
        await wait_until(lambda: stored_marker(database, "bob", "lobby") == ids[1], what="the stored marker")
        keyboard.close()  # the end of the input: the run ends
        assert await asyncio.wait_for(run, 30) == 0
    os.close(master)


def drain(fd: int) -> None:
    """Read a terminal's output until it is closed (so the writer never blocks)."""
    with contextlib.suppress(OSError):
        while os.read(fd, 4096):
            pass


def stored_marker(database: Path, account: str, room: str) -> int | None:
    """The read marker of `account` in `room`, as the server's history file holds it."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        try:
            row = db.execute(
                "SELECT id FROM read_markers WHERE account = ? AND conversation = ?", (account, room)
            ).fetchone()
        except sqlite3.OperationalError:
            return None
    return int(row[0]) if row is not None else None


# -- Notification levels and keywords ----------------------------------------------------------------------


async def test_the_library_sets_levels_and_keywords_and_a_login_brings_them_back(cheap: LiveServer) -> None:
    await register(cheap, "bob", ["lobby"])
    async with ChatClient(
        cheap.host, cheap.port, "bob", rooms=["lobby"], options=FAST, nick_password=PASSWORD
    ) as bob:
        answer = await bob.set_notify("none", room="lobby")
        assert answer is not None
        assert answer.levels == (NotifyLevel(room="lobby", level="none"),)
        answer = await bob.set_keywords(["deploy", "lunch"])
        assert answer is not None
        assert answer.keywords == ("deploy", "lunch")
        with pytest.raises(InvalidRequest):
            await bob.set_notify("all")  # neither room nor peer
    client = ChatClient(cheap.host, cheap.port, "bob", rooms=[], options=FAST, nick_password=PASSWORD)
    async with client:
        events = Recorder(client)
        await wait_until(lambda: bool(events.of(Connected)), what="the welcome")
        welcome = events.of(Connected)[0].welcome
    assert welcome.notify_levels == (NotifyLevel(room="lobby", level="none"),)
    assert welcome.keywords == ("deploy", "lunch")


async def test_levels_and_keywords_decide_what_notifies(cheap: LiveServer, tmp_path: Path) -> None:
    """Through the TUI: a keyword is a mention; a room set to `all` notifies every message; one set to
    `none` not even a mention; `/notify` and `/keywords` alone say how things stand."""
    app = connected_app(cheap, tmp_path / "bob", nick="bob", room="lobby")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await wait_for_chat(app, pilot)
        for room in ("attic", "cellar"):
            await submit(pilot, f"/join {room}")
            await wait_until(lambda r=room: screen.model.current == room_key(r), what=room)
        await submit(pilot, "/notify none")  # in the cellar
        await wait_for_text(app, pilot, "notifications in cellar: none")
        await submit(pilot, "/join attic")
        await submit(pilot, "/notify all")
        await wait_for_text(app, pilot, "notifications in attic: all")
        await submit(pilot, "/keywords deploy")
        await wait_for_text(app, pilot, "keywords: deploy")
        await submit(pilot, "/join lobby")  # the lobby on screen: the others are out of sight
        await wait_until(lambda: screen.model.current == room_key("lobby"), what="the lobby")
        async with ChatClient(
            cheap.host, cheap.port, "alice", rooms=["attic", "cellar"], options=FAST
        ) as alice:
            await alice.say("cellar", "bob, deploy now?", wait=True)  # a mention in a room set to none
            await alice.say("attic", "nothing for anyone", wait=True)  # a plain message in a room set to all
            await wait_for_unread(app, "attic")
            await wait_until(lambda: app._notifications, what="a notification")
            titles = [notification.title for notification in app._notifications]
            assert titles == ["Message in attic"]
            assert "!" not in row_of(app, "cellar")  # a mention, but the room says none
            await alice.say("attic", "the deploy is done", wait=True)  # a keyword
            await wait_until(lambda: len(app._notifications) == 2, what="the keyword's notification")
            assert [n.title for n in app._notifications][-1] == "Mention in attic"
        await submit(pilot, "/keywords")
        expected = "notifications in lobby: mentions; elsewhere: attic all, cellar none; keywords: deploy"
        lobby = screen.model.current_buffer
        await wait_until(
            lambda: any(line.text == expected for line in lobby.lines), what="the settings notice"
        )


async def wait_for_unread(app: ChatApp, room: str) -> None:
    """Wait until the room list counts an unread line in `room`."""
    await wait_until(lambda: f"{room} (" in room_list_text(app), what=f"unread lines in {room}")


def row_of(app: ChatApp, room: str) -> str:
    """The room list's row of `room`."""
    return next(row for row in room_list_text(app).splitlines() if room in row)
