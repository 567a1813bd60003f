"""The input line through the real app (Pilot) against a real server: key bursts, Tab, paste, the byte
counter, the dialogs, the help screen, and the connect screen at 80x24.

A burst is posted to the app as the terminal driver does, every key before the app handles the first one;
`pilot.press` would wait for each key to be handled, which hides ordering bugs.
"""

from __future__ import annotations

import socket
from pathlib import Path

from textual import events
from textual.app import App
from textual.widgets import Button, Static

from chat_client import ChatClient
from chat_client.settings import Settings, save_settings
from chat_client.tui.app import ChatApp
from chat_client.tui.screens.choose import ChoiceDialog
from chat_client.tui.screens.connect import ConnectScreen
from chat_client.tui.screens.help import HelpScreen, key_label
from chat_client.tui.screens.register import RegisterDialog, UnregisterDialog
from chat_client.tui.widgets.chat_input import ChatInput
from shared import FileOffered, Said
from tests.waiting import wait_until

from .helpers import LiveServer
from .offline import offline_screen
from .test_library import FAST, Recorder
from .tui_helpers import connected_app, wait_for_chat

SIZE = (120, 40)
_NAMES = {"\r": ("enter", None), "\t": ("tab", None), " ": ("space", " ")}


def burst(app: App[int], keys: str) -> None:
    """Post `keys` to the app at once, as one read from the terminal does (``\\r`` is Enter, ``\\t`` Tab)."""
    for char in keys:
        key, character = _NAMES.get(char, (char, char))
        app.post_message(events.Key(key, character))


def said(recorder: Recorder) -> list[str]:
    """The texts said in #lobby, as another member received them."""
    return [event.text for event in recorder.of(Said) if event.room == "lobby"]


async def test_a_burst_with_enters_sends_each_line_once_in_order(
    server: LiveServer, private_dirs: Path
) -> None:
    """`one⏎two⏎thr` in one read sends "one" and "two", and leaves "thr" in the input."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        bob_events = Recorder(bob)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            burst(app, "one\rtwo\rthr")
            await wait_until(lambda: said(bob_events) == ["one", "two"], what="one, two")
            assert screen.query_one(ChatInput).value == "thr"
            burst(app, "ee\r")
            await wait_until(lambda: said(bob_events) == ["one", "two", "three"], what="three")


async def test_tab_completes_the_keys_typed_just_before_it(server: LiveServer, private_dirs: Path) -> None:
    """`bo` Tab `hi` Enter in one read sends "bob: hi"."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        bob_events = Recorder(bob)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: "bob" in screen.model.nicks(), what="bob in the member list")
            burst(app, "bo\thi\r")
            await wait_until(lambda: said(bob_events) == ["bob: hi"], what="bob: hi")


async def test_a_multi_line_paste_is_one_message(server: LiveServer, private_dirs: Path) -> None:
    """A pasted block (CR LF line ends) shows above the input and goes as one message with its newlines."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        bob_events = Recorder(bob)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            burst(app, "see: ")
            app.post_message(events.Paste("first\r\nsecond\r\nthird\r\n"))
            burst(app, "!")
            await pilot.pause()
            chat_input = screen.query_one(ChatInput)
            assert (chat_input.block, chat_input.value) == ("see: first\nsecond\n", "third!")
            preview = screen.query_one("#block", Static)
            assert preview.display
            assert "3 lines" in str(preview.render())
            burst(app, "\r")
            await wait_until(lambda: said(bob_events) == ["see: first\nsecond\nthird!"], what="the block")
            assert not preview.display
            assert chat_input.message == ""


async def test_many_lines_ask_how_to_send_them(server: LiveServer, private_dirs: Path) -> None:
    """Past `paste_ask_lines`, Enter asks; Escape keeps the text, "As N messages" sends one per line."""
    save_settings(Settings(paste_ask_lines=3), private_dirs)
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        bob_events = Recorder(bob)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            app.post_message(events.Paste("l1\nl2\n\nl3\nl4"))
            await pilot.pause()
            await pilot.press("enter")
            await wait_until(lambda: isinstance(app.screen, ChoiceDialog), what="the question")
            await pilot.press("escape")
            await wait_until(lambda: app.screen is screen, what="the chat screen")
            assert screen.query_one(ChatInput).message == "l1\nl2\n\nl3\nl4"
            await pilot.press("enter")
            await wait_until(lambda: isinstance(app.screen, ChoiceDialog), what="the question again")
            assert "As 4 messages" in str(app.screen.query_one("#lines", Button).label)
            await pilot.click("#lines")
            await wait_until(lambda: said(bob_events) == ["l1", "l2", "l3", "l4"], what="four messages")
            assert screen.query_one(ChatInput).message == ""


async def test_a_paste_over_the_byte_limit_is_kept_and_offered_as_a_file(
    server: LiveServer, private_dirs: Path
) -> None:
    """1,500 × 漢 is 4,500 bytes: counted so, refused visibly, kept, and sent as a file when asked."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        bob_events = Recorder(bob)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            app.post_message(events.Paste("漢" * 1500))
            await pilot.pause()
            chat_input = screen.query_one(ChatInput)
            assert chat_input.counter == "4,500/4,096 B"
            assert chat_input.has_class("-too-long")
            await pilot.press("enter")
            await wait_until(lambda: isinstance(app.screen, ChoiceDialog), what="the offer")
            await pilot.press("escape")
            await wait_until(lambda: app.screen is screen)
            assert chat_input.value == "漢" * 1500
            await pilot.press("enter")
            await wait_until(lambda: isinstance(app.screen, ChoiceDialog), what="the offer again")
            await pilot.click("#file")
            await wait_until(lambda: bob_events.of(FileOffered), what="the file offer")
            offer = bob_events.of(FileOffered)[0]
            assert (offer.name, offer.size) == ("message-1.txt", 4500)
            assert said(bob_events) == []
            assert chat_input.message == ""


async def test_the_counter_counts_the_bytes_the_server_counts(private_dirs: Path) -> None:
    """The counter shows UTF-8 bytes of the text sent (`/me`'s text, not the command), none for commands."""
    app = ChatApp(config_dir=private_dirs, discovery=None)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_screen(offline_screen())
        await pilot.pause()
        chat_input = app.screen.query_one(ChatInput)
        await pilot.press(*"/me ", "é", "é", "漢")
        assert chat_input.counter == "7/4,096 B"
        await pilot.press("ctrl+u", *"/join dev")
        assert chat_input.counter == ""


async def test_alt_enter_and_backspace_edit_a_multi_line_message(private_dirs: Path) -> None:
    """Alt+Enter starts a new line of the same message; Backspace at a line's start joins it back."""
    app = ChatApp(config_dir=private_dirs, discovery=None)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_screen(offline_screen())
        await pilot.pause()
        chat_input = app.screen.query_one(ChatInput)
        await pilot.press(*"ab", "alt+enter", *"cd")
        assert chat_input.message == "ab\ncd"
        await pilot.press("home", "backspace")
        assert (chat_input.block, chat_input.value, chat_input.cursor_position) == ("", "abcd", 2)
        await pilot.press("alt+enter", "escape")
        assert chat_input.message == "cd"


async def test_help_screen_lists_every_key_and_command_and_searches(private_dirs: Path) -> None:
    """F1 opens the help: every binding active while typing is in it; typing narrows it; Escape closes."""
    app = ChatApp(config_dir=private_dirs, discovery=None)
    async with app.run_test(size=SIZE) as pilot:
        chat = offline_screen()
        await app.switch_screen(chat)
        await pilot.pause()
        chat_input = chat.query_one(ChatInput)
        await pilot.press("f1")
        await wait_until(lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        assert isinstance(app.screen, HelpScreen)
        help_screen = app.screen
        shown = help_screen.text()
        taken: set[str] = set()  # a key bound nearer the input shadows the same key further out
        for node in (chat_input, *chat_input.ancestors):
            for key, bindings in node._bindings.key_to_bindings.items():
                for binding in bindings if key not in taken else ():
                    if node is chat_input and binding.action.startswith("page_"):
                        continue  # inert in a one-line input: the screen's PageUp/PageDown apply
                    assert key_label(key) in shown, key
                    assert (binding.description or binding.action) in shown, binding
                    taken.add(key)
        assert "PageUp" in shown
        assert "Scroll up" in shown
        assert "/join ROOM [KEY]" in shown
        assert "/quit [REASON]" in shown
        await pilot.press(*"previous sent")
        narrowed = help_screen.text()
        assert "Previous sent line" in narrowed
        assert "/join" not in narrowed
        await pilot.press("escape")
        await wait_until(lambda: app.screen is chat, what="the chat screen")
        lines_before = len(chat.model.current_buffer.lines)
        await pilot.press(*"/help join", "enter")
        await wait_until(lambda: isinstance(app.screen, HelpScreen), what="the help for /join")
        assert "/join ROOM [KEY]" in app.screen.text()
        assert "/topic" not in app.screen.text()
        assert len(chat.model.current_buffer.lines) == lines_before  # nothing dumped into the room


async def test_escape_closes_every_dialog(private_dirs: Path) -> None:
    """Escape closes the help, the question dialog and both password dialogs."""
    app = ChatApp(config_dir=private_dirs, discovery=None)
    async with app.run_test(size=SIZE) as pilot:
        chat = offline_screen()
        await app.switch_screen(chat)
        await pilot.pause()
        dialogs = [
            HelpScreen([]),
            ChoiceDialog("really?", [("yes", "Yes")]),
            RegisterDialog("alice"),
            UnregisterDialog("alice"),
        ]
        for dialog in dialogs:
            await app.push_screen(dialog)
            await pilot.pause()
            await pilot.press("escape")
            await wait_until(lambda: app.screen is chat, what=f"{type(dialog).__name__} closed")


async def test_connect_error_is_visible_at_80x24(private_dirs: Path) -> None:
    """At 80x24 the reason connecting failed is on screen, without resizing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = ChatApp(
        host="127.0.0.1", port=port, nick="al", connect_now=True, config_dir=private_dirs, discovery=None
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: isinstance(app.screen, ConnectScreen))
        status = app.screen.query_one("#connect-status", Static)
        await wait_until(lambda: "cannot connect" in str(status.render()), what="the error")
        await pilot.pause()
        region = status.region
        assert region.height >= 1
        assert region.y >= 0
        assert region.bottom <= 24
        assert app.screen.query_one("#connect", Button).region.bottom <= 24
