"""The wire inspector (issue 20): the client's wire log (bounded, secrets redacted in the map and the bytes),
and the TUI's inspector screen (F12, `--inspect`) against a real server through Pilot: rows for every frame
in and out, the filter, pause and live, the hex dump."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from chat_client import ChatClient
from chat_client.net.wirelog import REDACTED, WireLog
from chat_client.tui.app import ChatApp
from chat_client.tui.screens.inspector import InspectorScreen, hex_dump
from chat_lab.proxy import FaultProxy
from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Hello, Say
from shared.codec import encode
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .test_library import FAST
from .tui_helpers import connected_app, submit, wait_for_chat

CHEAP = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}
PASSWORD = "correct horse battery"
SIZE = (130, 40)


@pytest.fixture
def cheap(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with cheap nick hashing, stopped after the test."""
    with LiveServer(fast_server_config(tmp_path / "cheap", **CHEAP)) as live:
        yield live


def test_the_wire_log_keeps_the_last_frames_and_no_secret() -> None:
    log = WireLog(max_frames=2, clock=lambda: 1000.0)
    hello = Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick="bob", nick_password=PASSWORD, ref=1)
    frame = encode(hello)
    log.record(True, frame, hello)
    (kept,) = log.frames
    assert kept.fields["nick_password"] == REDACTED
    assert kept.redacted
    assert PASSWORD.encode() not in kept.raw
    assert kept.size == len(frame)  # the size on the wire, not of the redacted copy
    say = Say(room="lobby", text="hi")
    for _ in range(3):
        log.record(True, encode(say), say)
    assert [f.number for f in log.frames] == [3, 4]
    assert log.total == 4
    assert not log.frames[-1].redacted
    assert log.frames[-1].raw == encode(say)
    assert [f.number for f in log.since(3)] == [4]


def test_hex_dump_shows_offsets_bytes_and_ascii() -> None:
    assert hex_dump(b"\x00\x00\x00\x02hi") == "00000000  00 00 00 02 68 69" + " " * 30 + "  ....hi"


def frames_shown(app: ChatApp) -> list[str]:
    """The types of the rows the inspector shows, in order."""
    screen = app.screen
    assert isinstance(screen, InspectorScreen)
    return [frame.type for frame in screen._frames.values()]


async def test_the_inspector_shows_every_frame_with_filter_pause_and_hex(
    cheap: LiveServer, tmp_path: Path
) -> None:
    async with ChatClient(cheap.host, cheap.port, "bob", rooms=["lobby"], options=FAST) as bob:
        answer = await bob.register(PASSWORD)
        assert answer is not None
    app = connected_app(
        cheap, tmp_path / "bob", nick="bob", nick_password=PASSWORD, room="lobby", inspect=True
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="the inspector")
        await wait_until(lambda: frames_shown(app)[:2] == ["hello", "welcome"], what="the login's frames")
        inspector = app.screen
        assert isinstance(inspector, InspectorScreen)
        hello = next(frame for frame in inspector._frames.values() if frame.type == "hello")
        assert hello.outgoing
        assert hello.fields["nick_password"] == REDACTED
        await pilot.press("x")  # hex of the frame under the cursor
        await pilot.pause()
        table = inspector.query_one(DataTable)
        table.move_cursor(row=0)
        await pilot.pause()
        detail = str(inspector.query_one("#inspector-detail").render())
        assert "hello, sent" in detail
        assert "00000000  00 00 00" in detail
        assert PASSWORD not in detail
        assert "secrets redacted" in detail
        # Back to the chat: a message goes out, and its say and ack come in.
        await pilot.press("f12")
        await wait_for_chat(app, pilot)
        await submit(pilot, "hello inspector")
        await pilot.press("f12")
        await wait_until(lambda: "ack" in frames_shown(app), what="the ack")
        assert frames_shown(app).index("say") < frames_shown(app).index("ack")
        inspector = app.screen  # a new one
        assert isinstance(inspector, InspectorScreen)
        # The filter keeps only the types asked for.
        await pilot.press("f")
        inspector.query_one(Input).value = "say said"
        await pilot.press("enter")
        await wait_until(lambda: set(frames_shown(app)) == {"say"}, what="only say rows")
        # Paused, nothing new is shown (it is still recorded); live again, it catches up.
        await pilot.press("p")
        assert not inspector.live
        async with ChatClient(cheap.host, cheap.port, "alice", rooms=["lobby"], options=FAST) as alice:
            await alice.say("lobby", "while paused", wait=True)
        log = app.wire_log
        assert log is not None
        await wait_until(lambda: any(frame.type == "said" for frame in log.frames), what="the said recorded")
        await pilot.pause()
        assert "said" not in frames_shown(app)
        await pilot.press("p")
        await wait_until(lambda: "said" in frames_shown(app), what="the said after resuming")


def errors_shown(app: ChatApp) -> list[str]:
    """The codes of the `error` rows the inspector shows, in order."""
    screen = app.screen
    assert isinstance(screen, InspectorScreen)
    return [str(frame.fields.get("code")) for frame in screen._frames.values() if frame.type == "error"]


async def test_lesson_5_the_inspector_shows_a_frozen_link_and_a_corrupted_frame(tmp_path: Path) -> None:
    """docs/lessons.md, lesson 5, from the client's side: the TUI with `--inspect` through the fault proxy.
    `freeze up`: the server's ping comes in and the client's pong goes out (held by the proxy), then the
    server's `error ping_timeout`; `thaw`, and it logs in again; `corrupt 4 up` and `cut`: the next login's
    hello leaves whole, and the server answers `error bad_frame`."""
    config = fast_server_config(tmp_path / "server", ping_interval=0.5, ping_timeout=1.0)
    with LiveServer(config) as server:
        async with FaultProxy((server.host, server.port)) as proxy:

            class Via:
                host, port = proxy.host, proxy.port

            app = connected_app(Via(), tmp_path / "alice", inspect=True)  # type: ignore[arg-type]
            async with app.run_test(size=SIZE) as pilot:
                await wait_until(lambda: isinstance(app.screen, InspectorScreen), what="the inspector")
                await wait_until(lambda: frames_shown(app)[:2] == ["hello", "welcome"], what="the login")
                proxy.freeze("up", new_connections=True)  # the console's `freeze up`
                await wait_until(lambda: "ping_timeout" in errors_shown(app), what="error ping_timeout")
                shown = frames_shown(app)
                timed_out = len(shown) - 1 - shown[::-1].index("error")
                assert "ping" in shown[2:timed_out]
                assert "pong" in shown[shown.index("ping", 2) : timed_out]
                proxy.thaw()  # the console's `thaw`
                await wait_until(lambda: frames_shown(app).count("welcome") >= 2, what="the login again")
                proxy.to_server.corrupt = 4  # the console's `corrupt 4 up`: a new connection's map header
                await proxy.cut()  # the console's `cut`
                await wait_until(lambda: "bad_frame" in errors_shown(app), what="error bad_frame")
                shown = frames_shown(app)
                assert shown.count("hello") >= 3
                await pilot.press("f12")
