"""Replies, reactions, edits and deletions in the TUI, between two TUIs (Pilot) against a real server: the
message cursor and its action keys on one side, the views updated in place on the other."""

from __future__ import annotations

import re
from pathlib import Path

from chat_client import ChatClient
from chat_client.tui.app import ChatApp
from chat_client.tui.screens.chat import ChatScreen
from chat_client.tui.screens.choose import ChoiceDialog
from chat_client.tui.screens.react import ReactionPicker
from chat_client.tui.screens.thread import ThreadPanel
from chat_client.tui.widgets.chat_input import ChatInput
from chat_client.tui.widgets.chat_log import ChatLog
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_library import FAST
from .tui_helpers import connected_app, log_text, submit, wait_for_chat, wait_for_text

SIZE = (110, 30)


def rows(app: ChatApp) -> list[str]:
    """The log's rows, as drawn."""
    return log_text(app).splitlines()


def row_after(app: ChatApp, text: str, offset: int = 1) -> str:
    """The row `offset` rows after (or before, negative) the first row holding `text`."""
    drawn = rows(app)
    index = next(n for n, row in enumerate(drawn) if text in row)
    return drawn[index + offset]


async def two_chatting(server: LiveServer, tmp_path: Path) -> tuple[ChatApp, ChatApp]:
    """alice's and bob's TUIs."""
    alice = connected_app(server, tmp_path / "alice", "alice", discovery=None)
    bob = connected_app(server, tmp_path / "bob", "bob", discovery=None)
    return alice, bob


async def test_reply_react_edit_delete_between_two_tuis(server: LiveServer, tmp_path: Path) -> None:
    """bob selects alice's message with Alt+Up and replies (r), reacts (+); alice edits hers (e) and
    deletes it (d, confirmed); each side sees the quote, the reactions, (edited) and the tombstone, in
    place."""
    alice_app, bob_app = await two_chatting(server, tmp_path)
    async with alice_app.run_test(size=SIZE) as alice, bob_app.run_test(size=SIZE) as bob:
        alice_screen = await wait_for_chat(alice_app, alice)
        bob_screen = await wait_for_chat(bob_app, bob)
        await wait_until(lambda: alice_screen.model.current == "#lobby" == bob_screen.model.current)
        await submit(alice, "the build is green")
        await wait_for_text(bob_app, bob, "<alice> the build is green")

        # bob: Alt+Up selects the newest message, r prepares a reply to it.
        await bob.press("alt+up")
        log = bob_screen.query_one(ChatLog)
        selected = log.selected
        assert selected is not None
        assert selected.text == "the build is green"
        assert bob_app.focused is log
        await bob.press("r")
        chat_input = bob_screen.query_one(ChatInput)
        assert chat_input.value == f"/reply {selected.id} "
        assert bob_app.focused is chat_input
        await bob.press(*"ship it", "enter")
        await wait_for_text(alice_app, alice, "<bob> ship it")
        quote = row_after(alice_app, "<bob> ship it", -1)
        assert re.fullmatch(r" +↳ alice: the build is green *", quote), quote

        # bob: react with the first emoji of the picker.
        await bob.press("alt+up", "up")  # the newest is his reply; Up goes to alice's message
        assert log.selected is not None
        assert log.selected.id == selected.id
        await bob.press("plus")
        await wait_until(lambda: isinstance(bob_app.screen, ReactionPicker), what="the picker")
        await bob.press("enter")
        await wait_for_text(alice_app, alice, "╰ 👍 1")
        reactions = row_after(alice_app, "<alice> the build is green")
        assert re.fullmatch(r" +╰ 👍 1 *", reactions), reactions

        # alice: edit her message; the reply's quote follows it; bob's view does not move.
        bob_log = bob_screen.query_one(ChatLog)
        top_before = bob_log.scroll_y
        await alice.press("alt+up", "up")
        alice_log = alice_screen.query_one(ChatLog)
        assert alice_log.selected is not None
        assert alice_log.selected.own
        await alice.press("e")
        alice_input = alice_screen.query_one(ChatInput)
        assert alice_input.message == f"/edit {selected.id} the build is green"
        await alice.press("ctrl+u")
        await submit(alice, f"/edit {selected.id} the build is *red*")
        await wait_for_text(bob_app, bob, "the build is red (edited)")
        assert "↳ alice: the build is *red*" in log_text(bob_app)
        assert bob_log.scroll_y == top_before

        # alice: delete it, confirming.
        await alice.press("alt+up", "up", "d")
        await wait_until(lambda: isinstance(alice_app.screen, ChoiceDialog), what="the confirmation")
        await alice.press("enter")
        await wait_for_text(bob_app, bob, "<alice> message deleted")
        assert "↳ alice: message deleted" in log_text(bob_app)
        assert "the build is red" not in log_text(bob_app)


async def test_thread_jump_copy_and_who_reacted(server: LiveServer, tmp_path: Path) -> None:
    """j jumps from a reply to its parent; c copies its text; w says who reacted; t shows the thread in a
    side panel; Escape leaves the cursor."""
    alice_app, bob_app = await two_chatting(server, tmp_path)
    async with alice_app.run_test(size=SIZE, notifications=True) as alice, bob_app.run_test(size=SIZE) as bob:
        alice_screen = await wait_for_chat(alice_app, alice)
        bob_screen = await wait_for_chat(bob_app, bob)
        await wait_until(lambda: alice_screen.model.current == "#lobby" == bob_screen.model.current)
        await submit(alice, "lunch?")
        await wait_for_text(bob_app, bob, "<alice> lunch?")
        parent = bob_screen.model.current_buffer.lines[-1]
        await submit(bob, f"/reply {parent.id} yes")
        await submit(bob, f"/reply {parent.id} at noon")
        await submit(bob, f"/react {parent.id} 🎉")
        await wait_for_text(alice_app, alice, "╰ 🎉 1")
        await wait_for_text(alice_app, alice, "<bob> at noon")

        log = alice_screen.query_one(ChatLog)
        await alice.press("alt+up")  # bob's "at noon"
        await alice.press("j")
        assert log.selected is not None
        assert log.selected.text == "lunch?"
        await alice.press("c")
        assert alice_app.clipboard == "lunch?"
        await alice.press("w")
        await wait_until(lambda: any("🎉 bob" in str(n.message) for n in alice_app._notifications))
        await alice.press("t")
        await wait_until(lambda: isinstance(alice_app.screen, ThreadPanel), what="the thread panel")
        panel_text = " ".join(str(static.render()) for static in alice_app.screen.query(".thread-reply"))
        assert "yes" in panel_text
        assert "at noon" in panel_text
        await alice.press("escape")
        await wait_until(lambda: isinstance(alice_app.screen, ChatScreen), what="the panel closed")
        await alice.press("escape")  # leaves the message cursor
        assert alice_app.focused is alice_screen.query_one(ChatInput)
        assert log.selected is None


async def test_updates_in_place_keep_the_view_still(server: LiveServer, tmp_path: Path) -> None:
    """While alice reads older lines, reactions and edits to messages above and inside her view change
    those messages in place: the rows she is looking at stay where they are."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        ids = []
        for number in range(60):
            entry = await bob.say("lobby", f"line {number:02}", wait=True)
            assert entry.id is not None
            ids.append(entry.id)
        app = connected_app(server, tmp_path / "alice", "alice", discovery=None)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_for_text(app, pilot, "<bob> line 59")
            log = screen.query_one(ChatLog)
            log.scroll_to(y=log.max_scroll_y - 30, animate=False, immediate=True)
            await pilot.pause()
            height = log.scrollable_content_region.height

            def in_view() -> list[str]:
                top = int(log.scroll_y)
                return rows(app)[top : top + height]

            before = in_view()
            assert any("line 3" in row for row in before), before
            assert "line 01" not in " ".join(before)
            await bob.react(ids[1], "👍")  # above the view: a row more up there
            await bob.edit(ids[2], "line 02, now *much* longer " + "x" * 120)  # above too: rows more
            await wait_until(lambda: "╰ 👍 1" in log_text(app), what="the reaction drawn")
            await wait_until(lambda: "now much longer" in log_text(app), what="the edit drawn")
            await pilot.pause()
            assert in_view() == before
            middle = next(row for row in before if "<bob> line" in row).split("<bob> ")[1].strip()
            inside = ids[int(middle.split()[1])]
            await bob.react(inside, "🎉")  # inside the view: the rows above it stay
            await wait_until(lambda: "╰ 🎉 1" in log_text(app), what="the reaction in view")
            await pilot.pause()
            after = in_view()
            cut = next(n for n, row in enumerate(before) if middle in row)
            assert after[: cut + 1] == before[: cut + 1]
            assert "╰ 🎉 1" in after[cut + 1]


async def test_jump_loads_older_history_to_find_the_parent(server: LiveServer, tmp_path: Path) -> None:
    """j on a reply to a message older than what the TUI loaded fetches older pages until it is there."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        root = await bob.say("lobby", "the very first question", wait=True)
        assert root.id is not None
        for number in range(150):
            await bob.say("lobby", f"filler {number}")
        await bob.wait_delivered(30)
        app = connected_app(server, tmp_path / "alice", "alice", discovery=None)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_for_text(app, pilot, "<bob> filler 149")
            assert screen.model.current_buffer.find(root.id) is None  # not in the backfill
            await bob.say("lobby", "answering it at last", reply_to=root.id, wait=True)
            await wait_for_text(app, pilot, "↳ #")  # the parent is not loaded: its id only
            await pilot.press("alt+up", "j")
            log = screen.query_one(ChatLog)
            await wait_until(
                lambda: log.selected is not None and log.selected.id == root.id, timeout=20, what="the parent"
            )
            assert "↳ bob: the very first question" in log_text(app)
