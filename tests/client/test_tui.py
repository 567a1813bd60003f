"""The TUI through Pilot against a real server: chatting, rooms, direct messages, completion, unread."""

from __future__ import annotations

from pathlib import Path

from chat_client import ChatClient
from chat_client.tui.app import ChatApp
from chat_client.tui.widgets.chat_input import ChatInput
from shared import Said, Told
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_library import FAST, Recorder
from .tui_helpers import (
    connected_app,
    log_text,
    room_list_text,
    submit,
    type_line,
    wait_for_chat,
    wait_for_text,
)

SIZE = (120, 36)


async def test_two_users_chat(server: LiveServer, private_dirs: Path) -> None:
    """Alice types in the TUI, Bob (a library client) answers; both see the conversation."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        bob_events = Recorder(bob)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby", what="lobby shown")
            await type_line(pilot, "hello bob")
            await wait_until(lambda: any(e.text == "hello bob" for e in bob_events.of(Said)))
            await wait_for_text(app, pilot, "<alice> hello bob ✓")
            await bob.say("lobby", "hi alice")
            await wait_for_text(app, pilot, "<bob> hi alice")
            assert app.screen.query_one(ChatInput).value == ""
            assert log_text(app).count("hello bob") == 1


async def test_join_and_leave_rooms(server: LiveServer, private_dirs: Path) -> None:
    """/join opens and shows a room listed in the room list; /leave closes it."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await submit(pilot, "/join dev")
            await wait_until(lambda: screen.model.current == "#dev", what="dev shown")
            await pilot.pause()
            assert "dev" in room_list_text(app)
            await bob.join("dev")
            await wait_for_text(app, pilot, "bob joined")
            await bob.leave("dev")
            await wait_for_text(app, pilot, "bob left")
            await submit(pilot, "/leave")
            await wait_until(lambda: "#dev" not in screen.model.buffers, what="dev closed")
            await pilot.pause()
            assert "dev" not in room_list_text(app)


async def test_direct_messages_have_their_own_buffer(server: LiveServer, private_dirs: Path) -> None:
    """A DM from Bob opens an @bob buffer; /msg answers him there."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        bob_events = Recorder(bob)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await bob.tell("alice", "psst")
            await wait_until(lambda: "@bob" in screen.model.buffers, what="DM buffer")
            await pilot.pause()
            assert "bob" in room_list_text(app)
            await submit(pilot, "/msg bob secret reply")
            assert screen.model.current == "@bob"
            await wait_for_text(app, pilot, "<bob> psst")
            await wait_for_text(app, pilot, "<alice> secret reply")
            await wait_until(lambda: any(e.text == "secret reply" for e in bob_events.of(Told)))


async def test_tab_completes_a_nick(server: LiveServer, private_dirs: Path) -> None:
    """Typing the start of a member's nick and Tab completes it."""
    async with ChatClient(server.host, server.port, "bobby", options=FAST):
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: "bobby" in screen.model.nicks(), what="bobby known")
            await pilot.press("b", "o", "tab")
            assert app.screen.query_one(ChatInput).value == "bobby: "
            await pilot.press(*"hi", "ctrl+a")
            await pilot.press("ctrl+k")
            await pilot.press(*"/jo", "tab")
            assert app.screen.query_one(ChatInput).value == "/join "


async def test_unread_counts_change(server: LiveServer, private_dirs: Path) -> None:
    """Messages in a room not on screen raise its unread count; showing the room clears it."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await submit(pilot, "/join dev")
            await wait_until(lambda: screen.model.current == "#dev")
            await bob.say("lobby", "one")
            await bob.say("lobby", "two alice")
            await wait_until(lambda: screen.model.buffers["#lobby"].unread == 2, what="two unread")
            await pilot.pause()
            assert "lobby ! (2)" in room_list_text(app)
            screen.switch_to("#lobby")
            await pilot.pause()
            assert screen.model.buffers["#lobby"].unread == 0
            assert "(2)" not in room_list_text(app)
            await wait_for_text(app, pilot, "<bob> two alice")


async def test_server_restart_reconnects_and_shows_missed_messages_once(
    server: LiveServer, private_dirs: Path
) -> None:
    """The server is stopped and restarted; the TUI reconnects and shows what it missed, exactly once."""
    from chat_lab.proxy import FaultProxy

    proxy = FaultProxy(lambda: (server.host, server.port))
    await proxy.start()
    try:
        app = ChatApp(
            host="127.0.0.1",
            port=proxy.port,
            nick="alice",
            connect_now=True,
            config_dir=private_dirs,
            options=FAST,
        )
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
                await bob.say("lobby", "before the restart", wait=True)
                await wait_for_text(app, pilot, "<bob> before the restart")
                # Alice stays cut off after the restart until bob has said what she must catch up on.
                proxy.refuse = True
                await server.astop()
                await wait_until(lambda: "reconnecting" in str(screen.query_one("#status").render()))
                await server.astart()
                await wait_until(lambda: bob.connected and "lobby" in bob.rooms, what="bob back")
                await bob.say("lobby", "missed one", wait=True)
                await bob.say("lobby", "missed two", wait=True)
                proxy.refuse = False
                await wait_for_text(app, pilot, "<bob> missed two")
                await wait_until(lambda: "● connected" in str(screen.query_one("#status").render()))
                await bob.say("lobby", "live again", wait=True)
                await wait_for_text(app, pilot, "<bob> live again")
                shown = log_text(app)
                assert shown.count("before the restart") == 1
                assert shown.count("missed one") == 1
                assert shown.count("missed two") == 1
                order = [
                    shown.index(t) for t in ("before the restart", "missed one", "missed two", "live again")
                ]
                assert order == sorted(order)
    finally:
        await proxy.close()
