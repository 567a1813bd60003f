"""Multi-line messages between two TUIs (Pilot) against a real server: composed with Alt+Enter or
Shift+Enter, or pasted, sent as one message, and shown on the other side as one message whose further lines
sit indented under its text behind ┆."""

from __future__ import annotations

import re
from pathlib import Path

from textual import events

from chat_client.tui.app import ChatApp
from chat_client.tui.widgets.chat_input import ChatInput
from tests.waiting import wait_until

from .helpers import LiveServer
from .tui_helpers import connected_app, log_text, wait_for_chat, wait_for_text

SIZE = (100, 30)
#: A row of the log that starts a message: time, then a nick.
MESSAGE_START = re.compile(r"^\d\d:\d\d <")


def rows_from(app: ChatApp, first: str, count: int) -> list[str]:
    """`count` rows of the log, starting with the one holding `first`."""
    rows = log_text(app).splitlines()
    start = next(index for index, row in enumerate(rows) if first in row)
    return rows[start : start + count]


async def test_composed_and_pasted_lines_arrive_as_one_message(server: LiveServer, tmp_path: Path) -> None:
    """alice writes three lines with Alt+Enter and Shift+Enter, then pastes two lines: bob sees two
    messages, each one message with its further lines behind ┆, under its text, never at the left edge."""
    alice_app = connected_app(server, tmp_path / "alice", "alice", discovery=None)
    bob_app = connected_app(server, tmp_path / "bob", "bob", discovery=None)
    async with alice_app.run_test(size=SIZE) as alice, bob_app.run_test(size=SIZE) as bob:
        alice_screen = await wait_for_chat(alice_app, alice)
        bob_screen = await wait_for_chat(bob_app, bob)
        await wait_until(lambda: alice_screen.model.current == "#lobby" == bob_screen.model.current)
        await alice.press(*"one", "alt+enter", *"two", "shift+enter", *"three", "enter")
        await wait_for_text(bob_app, bob, "three")
        first, second, third = rows_from(bob_app, "<alice> one", 3)
        assert first.rstrip().endswith("<alice> one")
        assert re.fullmatch(r" +┆ two *", second), second
        assert re.fullmatch(r" +┆ three *", third), third
        assert second.index("two") == third.index("three") == first.index("one")

        alice_app.screen.query_one(ChatInput).post_message(events.Paste("pasted a\r\npasted b"))
        await alice.pause()
        await alice.press("enter")
        await wait_for_text(bob_app, bob, "pasted b")
        head, tail = rows_from(bob_app, "<alice> pasted a", 2)
        assert re.fullmatch(r" +┆ pasted b *", tail), tail
        messages = [row for row in log_text(bob_app).splitlines() if MESSAGE_START.match(row)]
        assert [row for row in messages if "<alice>" in row] == [first, head]
