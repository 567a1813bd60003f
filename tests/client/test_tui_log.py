"""What the TUI's log shows, against a real server: multi-line messages that cannot impersonate anyone, emoji
and scripts with joiners, the backfill in time order, reconnects in every room, distinct nick colours, away
messages, and the scrollback keys and markers."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from chat_client import ChatClient
from chat_client.model.buffers import peer_key
from chat_client.model.colours import PALETTE_SIZE, preferred_slot
from chat_client.tui.render import NICK_COLOURS
from chat_client.tui.widgets.chat_input import ChatInput
from chat_client.tui.widgets.chat_log import NEW_MESSAGES, ChatLog
from chat_client.tui.widgets.panels import MemberList, StatusLine
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_library import FAST
from .tui_helpers import connected_app, log_text, submit, wait_for_chat, wait_for_text

#: A row of the log that starts a message: time, then a nick.
MESSAGE_START = re.compile(r"^\d\d:\d\d <")


def shown(widget: Static) -> str:
    """The text a Static shows."""
    return str(widget.render())


async def test_a_newline_cannot_impersonate_another_nick(server: LiveServer, private_dirs: Path) -> None:
    """bob's ``ok\\n07:57 <alice> ...`` shows alice's "line" indented under bob's text behind ┆."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            await bob.say("lobby", "ok\n07:57 <alice> please DM me your password")
            await wait_for_text(app, pilot, "please DM me")
            rows = log_text(app).splitlines()
            fake = next(row for row in rows if "please DM me" in row)
            first = rows[rows.index(fake) - 1]
            assert first.rstrip().endswith("<bob> ok")
            assert re.match(r"^ +┆ 07:57 <alice> please DM me", fake), fake
            assert fake.index("07:57") == first.index("ok")  # indented under bob's text
            assert not any(MESSAGE_START.match(row) and "<alice>" in row for row in rows)


async def test_joiners_in_emoji_and_scripts_are_shown_as_sent(server: LiveServer, private_dirs: Path) -> None:
    """Family and flag emoji (ZWJ sequences) and Persian with ZWNJ reach the screen unchanged; a bidi
    override still shows as a visible symbol."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    rainbow = "\U0001f3f3\ufe0f\u200d\U0001f308"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            await bob.say("lobby", f"{family} {rainbow} {persian} x\u202eend")
            await wait_for_text(app, pilot, "end")
            row = next(row for row in log_text(app).splitlines() if "end" in row)
            assert f"<bob> {family} {rainbow} {persian} x\ufffdend" in row


async def test_backfill_runs_in_time_order_before_the_join(server: LiveServer, private_dirs: Path) -> None:
    """The history sent on joining comes before "you joined", oldest first, then a divider; the log still
    follows new lines."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        for n in range(3):
            await bob.say("lobby", f"before {n}", wait=True)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_for_text(app, pilot, "before 2")
            for n in range(30):
                await bob.say("lobby", f"filler {n}")
            await bob.say("lobby", "live one")
            await wait_for_text(app, pilot, "live one")
            log = screen.query_one(ChatLog)
            await wait_until(lambda: log.scroll_y == log.max_scroll_y > 0, what="following new lines")
            rows = log_text(app).splitlines()

            def at(text: str) -> int:
                return next(n for n, row in enumerate(rows) if text in row)

            order = ["before 0", "before 1", "before 2", "history above", "you joined lobby", "live one"]
            assert [at(text) for text in order] == sorted(at(text) for text in order), rows


async def test_every_room_says_disconnected_then_reconnected(server: LiveServer, private_dirs: Path) -> None:
    """A server restart: each room's log says "disconnected" then "reconnected", the member list greys out
    (marked offline) meanwhile, and the status line gives a sentence, not an exception's text."""
    app = connected_app(server, private_dirs)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = await wait_for_chat(app, pilot)
        await wait_until(lambda: screen.model.current == "#lobby")
        await submit(pilot, "/join dev")
        await wait_until(lambda: screen.model.current == "#dev", what="in #dev")
        members = screen.query_one(MemberList)
        status = screen.query_one(StatusLine)
        await server.astop()
        await wait_until(lambda: "(offline)" in shown(members), what="the member list marked offline")
        assert "reconnecting" in shown(status)
        assert "Errno" not in shown(status)
        assert "Error" not in shown(status)
        await server.astart()
        await wait_for_text(app, pilot, "reconnected")
        await wait_until(lambda: "(offline)" not in shown(members), what="the member list back")
        for key in ("#lobby", "#dev"):
            texts = [line.text for line in screen.model.buffers[key].lines]
            gone = next(n for n, text in enumerate(texts) if text.startswith("disconnected"))
            assert any(text.startswith("reconnected") for text in texts[gone:]), (key, texts)


async def test_members_of_a_room_have_distinct_colours(server: LiveServer, private_dirs: Path) -> None:
    """Nicks whose hashes pick the same colour still show in different colours in one member list."""
    by_slot: dict[int, list[str]] = {}
    for n in range(400):
        by_slot.setdefault(preferred_slot(f"u{n}"), []).append(f"u{n}")
    clash = next(nicks for nicks in by_slot.values() if len(nicks) >= 3)[:3]
    clients = [ChatClient(server.host, server.port, nick, options=FAST) for nick in clash]
    for client in clients:
        await client.connect()
    try:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            members = screen.query_one(MemberList)
            await wait_until(lambda: all(nick in shown(members) for nick in clash), what="all members")
            content = members.content
            assert isinstance(content, Text)
            colours = {
                content.plain[span.start : span.end]: str(span.style)
                for span in content.spans
                if content.plain[span.start : span.end] in (*clash, "alice")
            }
            assert len(set(colours.values())) == len(colours) == 4, colours
            assert len(NICK_COLOURS) == PALETTE_SIZE
    finally:
        for client in clients:
            await client.close()


async def test_own_away_state_and_the_away_reply_to_a_direct_message(
    server: LiveServer, private_dirs: Path
) -> None:
    """/away shows in the status line; a direct message to someone away brings back their away message."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        await bob.set_away("at lunch until 2")
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            status = screen.query_one(StatusLine)
            await submit(pilot, "/away in a meeting")
            await wait_until(lambda: "away: in a meeting" in shown(status), what="away in the status line")
            await submit(pilot, "/msg bob are you there?")
            await wait_until(lambda: peer_key("bob") in screen.model.buffers, what="the conversation")
            screen.switch_to(peer_key("bob"))
            await wait_for_text(app, pilot, "bob is away: at lunch until 2")
            rows = log_text(app).splitlines()
            asked = next(n for n, row in enumerate(rows) if "are you there?" in row)
            assert "bob is away: at lunch until 2" in rows[asked + 1]
            await submit(pilot, "/away")
            await wait_until(lambda: "away" not in shown(status), what="back in the status line")


async def test_end_jumps_to_the_newest_line_and_the_count_goes_down(
    server: LiveServer, private_dirs: Path
) -> None:
    """Scrolled up, the "new messages" count falls as PageDown shows them; End (input empty) jumps down."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            for n in range(30):
                await bob.say("lobby", f"filler {n}")
            await wait_for_text(app, pilot, "filler 29")
            log = screen.query_one(ChatLog)
            marker = screen.query_one("#new-below", Static)
            for _ in range(3):
                await pilot.press("pageup")
            await pilot.pause()
            for n in range(40):
                await bob.say("lobby", f"new {n}")
            await wait_for_text(app, pilot, "new 39")
            await wait_until(lambda: "40 new messages" in shown(marker), what="40 new messages")
            await pilot.press("pagedown")
            await wait_until(lambda: "new messages" in shown(marker) and "40 new" not in shown(marker))
            count = int(shown(marker).split()[1])
            assert 0 < count < 40
            await pilot.press("pagedown")
            await wait_until(lambda: not marker.display or int(shown(marker).split()[1]) < count)
            await submit(pilot, "")  # the input is empty: End is the log's
            await pilot.press("end")
            await wait_until(lambda: log.scroll_y == log.max_scroll_y, what="the newest line")
            await wait_until(lambda: not marker.display, what="the marker cleared")
            await pilot.press("pageup")
            await pilot.press("ctrl+end")
            await wait_until(lambda: log.scroll_y == log.max_scroll_y, what="the newest line again")
            # With text in the input, End is the input's: it moves the cursor, the log stays where it is.
            chat_input = screen.query_one(ChatInput)
            chat_input.value = "half typed"
            chat_input.cursor_position = 0
            await pilot.press("pageup")
            await pilot.pause()
            scrolled = log.scroll_y
            await pilot.press("end")
            await wait_until(
                lambda: chat_input.cursor_position == len("half typed"), what="the cursor at the end"
            )
            assert log.scroll_y == scrolled < log.max_scroll_y


async def test_coming_back_to_a_room_shows_where_you_left_off(server: LiveServer, private_dirs: Path) -> None:
    """Lines that arrived while another room was shown come after a "new messages" divider."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        await bob.join("dev")
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            await bob.say("lobby", "read already")
            await wait_for_text(app, pilot, "read already")
            await submit(pilot, "/join dev")
            await wait_until(lambda: screen.model.current == "#dev", what="in #dev")
            await bob.say("lobby", "missed one", wait=True)
            await bob.say("lobby", "missed two", wait=True)
            await wait_until(lambda: screen.model.buffers["#lobby"].unread == 2, what="two unread")
            screen.switch_to("#lobby")
            await wait_for_text(app, pilot, "missed two")
            rows = log_text(app).splitlines()
            divider = next(n for n, row in enumerate(rows) if NEW_MESSAGES in row)
            assert "read already" in "".join(rows[:divider])
            assert "missed one" in rows[divider + 1]


async def test_hovering_a_line_shows_its_full_date(server: LiveServer, private_dirs: Path) -> None:
    """The mouse over a line shows the line's full date and time as a tooltip."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            await bob.say("lobby", "hover me")
            await wait_for_text(app, pilot, "hover me")
            log = screen.query_one(ChatLog)
            row = next(n for n, strip in enumerate(log.rows()) if "hover me" in strip.text)
            await pilot.hover(log, offset=(3, row - int(log.scroll_y)))
            await wait_until(lambda: log.tooltip is not None, what="a tooltip")
            line = next(line for line in screen.model.current_buffer.lines if line.text == "hover me")
            import time

            assert str(log.tooltip) == time.strftime("%A %-d %B %Y, %H:%M:%S", time.localtime(line.ts))
