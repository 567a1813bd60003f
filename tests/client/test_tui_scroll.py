"""Scrollback in the TUI: the view stays put when scrolled up, new lines are announced, and scrolling
past the oldest loaded message fetches older history from the server."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from chat_client import ChatClient
from chat_client.model.buffers import peer_key
from chat_client.tui.widgets.chat_log import ChatLog
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_library import FAST
from .tui_helpers import connected_app, log_text, wait_for_chat, wait_for_text


async def test_scrolled_up_view_stays_put_and_counts_new_lines(
    server: LiveServer, private_dirs: Path
) -> None:
    """New messages do not move a reader who scrolled up; a marker counts them; the bottom clears it."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            for n in range(40):
                await bob.say("lobby", f"filler {n}")
            await wait_for_text(app, pilot, "filler 39")
            log = screen.query_one(ChatLog)
            await pilot.press("pageup")
            await pilot.pause()
            position = log.scroll_y
            assert position < log.max_scroll_y
            for n in range(5):
                await bob.say("lobby", f"while away {n}")
            await wait_for_text(app, pilot, "while away 4")
            assert log.scroll_y == position
            marker = screen.query_one("#new-below", Static)
            await wait_until(lambda: marker.display, what="new-messages marker")
            assert "5 new messages below" in str(marker.render())
            await pilot.press("pagedown", "pagedown", "pagedown")
            await pilot.pause()
            await wait_until(lambda: not marker.display, what="marker cleared at the bottom")
            await bob.say("lobby", "following again")
            await wait_for_text(app, pilot, "following again")
            await wait_until(
                lambda: log.scroll_y == log.max_scroll_y, what="the view follows new lines again"
            )


async def test_scrolling_past_the_top_loads_older_history(server: LiveServer, private_dirs: Path) -> None:
    """The join shows the newest messages; paging up past the oldest fetches the ones before it."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        for n in range(80):
            await bob.say("lobby", f"old {n}")
        await bob.say("lobby", "newest", wait=True)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_for_text(app, pilot, "newest")
            assert "old 0" not in log_text(app)  # only the backfill is loaded
            assert screen.model.current_buffer.more_before
            for _ in range(20):
                await pilot.press("pageup")
                await pilot.pause()
                if "<bob> old 0" in log_text(app):
                    break
            await wait_for_text(app, pilot, "<bob> old 0")
            texts = [line.text for line in screen.model.current_buffer.lines if line.nick == "bob"]
            assert texts == [f"old {n}" for n in range(80)] + ["newest"]


async def test_resize_rewraps_the_log(server: LiveServer, private_dirs: Path) -> None:
    """After the terminal narrows, the log is re-wrapped to the new width (RichLog alone never re-wraps)."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(120, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            await bob.say("lobby", "word " * 30 + "end")
            await wait_for_text(app, pilot, "end")
            log = screen.query_one(ChatLog)
            await pilot.resize_terminal(60, 24)

            def rewrapped() -> bool:
                # Read the width each time: under load the new layout may land after the resize call returns.
                width = log.scrollable_content_region.width
                return 0 < width < 60 and max(len(strip.text.rstrip()) for strip in log.rows()) <= width

            await wait_until(rewrapped, what="lines re-wrapped to the narrowed log")
            assert "end" in log_text(app)


async def test_scrolling_past_the_top_of_a_conversation_loads_older_messages(
    server: LiveServer, private_dirs: Path
) -> None:
    """A direct conversation pages back too: past its top, the messages of earlier sessions are fetched."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        async with ChatClient(server.host, server.port, "alice", options=FAST):
            for n in range(60):
                await bob.tell("alice", f"dm {n}")
            await bob.tell("alice", "dm 60", wait=True)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await bob.tell("alice", "newest dm", wait=True)
            key = peer_key("bob")
            await wait_until(lambda: key in screen.model.buffers, what="the conversation with bob")
            screen.switch_to(key)
            await wait_for_text(app, pilot, "newest dm")
            assert "dm 0" not in log_text(app)  # only this session's message so far
            for _ in range(20):
                await pilot.press("pageup")
                await pilot.pause()
                if "<bob> dm 0" in log_text(app):
                    break
            await wait_for_text(app, pilot, "<bob> dm 0")
            texts = [line.text for line in screen.model.buffers[key].lines if line.nick == "bob"]
            assert texts == [f"dm {n}" for n in range(61)] + ["newest dm"]
            await wait_until(lambda: not screen.model.buffers[key].more_before, what="the start was reached")
