"""Several sessions of one registered nick in the client (issue 18), against a real server: the library's
`sessions` and `session_id`, a sibling's messages and direct messages shown as our own (never unread, never
a mention), joins, read markers and notification settings in step, and two TUIs of one nick side by side
(through Pilot), with `/sessions`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_client import ChatClient, Connected, Reconnecting
from chat_client.model.chat import SERVER_KEY, ChatModel, peer_key, room_key
from chat_client.model.status_events import session_lines
from chat_lab.proxy import FaultProxy
from shared import History, Joined, NotifySettings, ReadMarker, Said, Told
from shared.messages import Sessions
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config, run_plain_captured
from .test_library import FAST, Recorder
from .test_read_markers import CHEAP, PASSWORD, register
from .tui_helpers import connected_app, log_text, submit, wait_for_chat, wait_for_text

SIZE = (120, 36)


@pytest.fixture
def cheap(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with cheap nick hashing, stopped after the test."""
    with LiveServer(fast_server_config(tmp_path / "cheap", **CHEAP)) as live:
        yield live


def session(server: LiveServer, rooms: list[str], client: str = "desk") -> ChatClient:
    """A session of the registered nick alice."""
    return ChatClient(
        server.host,
        server.port,
        "alice",
        rooms=rooms,
        options=dataclasses.replace(FAST, client_name=client),
        nick_password=PASSWORD,
    )


async def test_two_library_sessions_of_one_nick_stay_in_step(cheap: LiveServer) -> None:
    await register(cheap, "alice", ["lobby"])
    async with (
        ChatClient(cheap.host, cheap.port, "bob", rooms=["lobby"], options=FAST) as bob,
        session(cheap, ["lobby"], "desk") as desk,
    ):
        desk_events = Recorder(desk)
        assert len(desk.sessions) == 1
        async with session(cheap, ["lobby"], "laptop") as laptop:
            laptop_events = Recorder(laptop)
            assert [s.client for s in laptop.sessions] == ["desk", "laptop"]
            assert laptop.session_id == laptop.sessions[-1].id
            await wait_until(lambda: len(desk.sessions) == 2, what="the desk hearing of the laptop")

            # The laptop's message reaches the desk as alice's own, and bob as alice's.
            sent = await laptop.say("lobby", "alice here, from the laptop", wait=True)
            assert sent is not None
            await wait_until(lambda: any(e.id == sent.id for e in desk_events.of(Said)), what="the echo")
            # A direct message: both sessions get bob's, and the desk sees what the laptop told bob.
            await bob.tell("alice", "hello, both of you", wait=True)
            await laptop.tell("bob", "psst", wait=True)
            await wait_until(lambda: len(desk_events.of(Told)) == 2, what="both direct messages")
            assert [(t.nick, t.to) for t in desk_events.of(Told)] == [("bob", "alice"), ("alice", "bob")]
            await wait_until(lambda: len(laptop_events.of(Told)) == 1, what="bob's direct message")

            # A join applies to the nick: the desk is in the attic too, and rejoins it after a reconnect.
            await laptop.join("attic")
            await wait_until(lambda: "attic" in desk.rooms, what="the desk in the attic")
            assert any(e.nick == "alice" for e in desk_events.of(Joined) if e.room == "attic")
            await wait_until(
                lambda: any(e.room == "attic" for e in desk_events.of(History)), what="the attic's history"
            )

            # Read markers and notification settings follow the nick.
            await desk.mark_read(sent.id, room="lobby")
            await wait_until(
                lambda: ReadMarker(room="lobby", id=sent.id) in laptop_events.of(ReadMarker),
                what="the laptop's marker",
            )
            await desk.set_notify("all", room="attic")
            await wait_until(lambda: bool(laptop_events.of(NotifySettings)), what="the laptop's settings")
            assert laptop_events.of(NotifySettings)[-1].levels[0].level == "all"

            # The model of the desk: the laptop's lines are its own (never unread, never a mention).
            # Looking at the server buffer once in the lobby: the laptop's line there arrives out of sight.
            model = ChatModel("alice")
            joined = next(
                n for n, e in enumerate(desk_events.events) if isinstance(e, History) and e.room == "lobby"
            )
            model.apply_all(desk_events.events[: joined + 1])
            model.switch(SERVER_KEY)
            model.apply_all(desk_events.events[joined + 1 :])
            lobby = model.buffers[room_key("lobby")]
            line = lobby.find(sent.id)
            assert line is not None
            assert line.own
            assert not line.mention
            assert lobby.unread == 0
            assert not lobby.mentioned
            to_bob = model.buffers[peer_key("bob")]
            assert [(ln.nick, ln.text, ln.own) for ln in to_bob.lines if ln.id is not None] == [
                ("bob", "hello, both of you", False),
                ("alice", "psst", True),
            ]
            assert model.read_markers.get(lobby.key) == sent.id
            assert model.notify_levels.get(room_key("attic")) == "all"
            assert session_lines(model)[0] == "alice is logged in from 2 session(s):"
        # The laptop ended: the desk hears of it.
        await wait_until(lambda: len(desk.sessions) == 1, what="the desk hearing the laptop end")
        assert any(len(e.sessions) == 1 for e in desk_events.of(Sessions))


async def test_two_tuis_of_one_nick_side_by_side(cheap: LiveServer, tmp_path: Path) -> None:
    """The desk's TUI shows what the laptop's TUI sends as its own line (in a room and to bob), follows its
    joins and notification levels; the laptop follows the desk's read markers (F4); /sessions lists both."""
    await register(cheap, "alice", ["lobby"])
    desk = connected_app(cheap, tmp_path / "desk", nick="alice", nick_password=PASSWORD, discovery=None)
    laptop = connected_app(cheap, tmp_path / "laptop", nick="alice", nick_password=PASSWORD, discovery=None)
    bob = ChatClient(cheap.host, cheap.port, "bob", rooms=["lobby"], options=FAST)
    async with bob, desk.run_test(size=SIZE) as desk_pilot:
        desk_screen = await wait_for_chat(desk, desk_pilot)
        async with laptop.run_test(size=SIZE) as laptop_pilot:
            laptop_screen = await wait_for_chat(laptop, laptop_pilot)
            lobby_key = room_key("lobby")
            await wait_until(
                lambda: desk_screen.model.current == lobby_key == laptop_screen.model.current,
                what="both in the lobby",
            )
            await wait_for_text(desk, desk_pilot, "another session of yours logged in")
            await submit(laptop_pilot, "sent from the laptop")
            await wait_for_text(desk, desk_pilot, "sent from the laptop")
            lobby = desk_screen.model.buffers[room_key("lobby")]
            (line,) = [ln for ln in lobby.lines if ln.text == "sent from the laptop"]
            assert line.own
            assert line.nick == "alice"
            # The desk marks everything read (F4): the laptop's marker follows.
            await desk_pilot.press("f4")
            await wait_until(
                lambda: laptop_screen.model.read_markers.get(lobby_key) == line.id, what="the laptop's marker"
            )
            # A direct message from the laptop shows on the desk as its own, in the conversation with bob.
            await submit(laptop_pilot, "/msg bob psst, from the laptop")
            await wait_until(
                lambda: peer_key("bob") in desk_screen.model.buffers, what="the desk's conversation"
            )
            conversation = desk_screen.model.buffers[peer_key("bob")]
            await wait_until(lambda: any(ln.text == "psst, from the laptop" for ln in conversation.lines))
            assert all(ln.own for ln in conversation.lines if ln.text == "psst, from the laptop")
            assert conversation.unread == 0
            await submit(laptop_pilot, "/join attic")
            await wait_until(
                lambda: room_key("attic") in desk_screen.model.buffers, what="the attic on the desk"
            )
            await wait_until(
                lambda: laptop_screen.model.current == room_key("attic"), what="the laptop upstairs"
            )
            await submit(laptop_pilot, "/notify all")
            await wait_until(
                lambda: desk_screen.model.notify_levels.get(room_key("attic")) == "all",
                what="the desk's notification level",
            )
            await submit(desk_pilot, "/sessions")
            await wait_for_text(desk, desk_pilot, "logged in from 2 session(s)")
            assert "(this one)" in log_text(desk)
            assert laptop_screen.model.session_id is not None


async def test_always_on_direct_messages_arrive_at_the_next_login(tmp_path: Path) -> None:
    """On an always-on server, what bob tells alice while none of her sessions is connected is stored, and
    her next login shows it in the conversation with bob, unread."""
    config = fast_server_config(tmp_path / "always-on", always_on=True, **CHEAP)
    with LiveServer(config) as server:
        await register(server, "alice", ["lobby"])
        async with ChatClient(server.host, server.port, "bob", rooms=["lobby"], options=FAST) as bob:
            ack = await bob.tell("alice", "ping me when you are back", wait=True)
            assert ack is not None
            assert ack.away is not None  # she is kept, away
            async with session(server, ["lobby"]) as alice:
                events = Recorder(alice)
                await wait_until(
                    lambda: any(h.direct for h in events.of(History)), what="the direct messages at login"
                )
                model = ChatModel("alice")
                model.apply_all(events.events)
                conversation = model.buffers[peer_key("bob")]
                (line,) = [ln for ln in conversation.lines if ln.id is not None]
                assert (line.nick, line.text, line.own) == ("bob", "ping me when you are back", False)


async def test_a_session_cut_off_and_restored_catches_up_with_its_sibling(cheap: LiveServer) -> None:
    """The laptop's connection is cut while the desk and bob talk: when it is back it has every message once,
    in order, the desk's as its own, and the desk heard it go and come back."""
    await register(cheap, "alice", ["lobby"])
    proxy = FaultProxy(lambda: (cheap.host, cheap.port))
    await proxy.start()
    try:
        async with (
            ChatClient(cheap.host, cheap.port, "bob", rooms=["lobby"], options=FAST) as bob,
            session(cheap, ["lobby"], "desk") as desk,
            ChatClient(
                "127.0.0.1",
                proxy.port,
                "alice",
                rooms=["lobby"],
                options=dataclasses.replace(FAST, client_name="laptop"),
                nick_password=PASSWORD,
            ) as laptop,
        ):
            events = Recorder(laptop)
            await wait_until(lambda: len(desk.sessions) == 2, what="two sessions")
            await bob.say("lobby", "before", wait=True)
            await wait_until(lambda: "before" in events.texts("lobby"), what="before")
            proxy.refuse = True
            await proxy.cut()
            await wait_until(lambda: events.of(Reconnecting), what="the laptop reconnecting")
            await bob.say("lobby", "one", wait=True)
            await desk.say("lobby", "two, from the desk", wait=True)
            proxy.refuse = False
            await wait_until(lambda: len(events.of(Connected)) == 2, what="the laptop back")
            await bob.say("lobby", "after", wait=True)
            await wait_until(lambda: "after" in events.texts("lobby"), what="after")
            assert events.texts("lobby")[-4:] == ["before", "one", "two, from the desk", "after"]
            assert events.texts("lobby").count("two, from the desk") == 1
            await wait_until(lambda: len(desk.sessions) == 2, what="the desk seeing two sessions again")
            model = ChatModel("alice")
            model.apply_all(events.events)
            (line,) = [ln for ln in model.buffers[room_key("lobby")].lines if ln.text == "two, from the desk"]
            assert line.own
    finally:
        await proxy.close()


async def test_plain_mode_lists_the_sessions_and_shows_a_siblings_message_as_its_own(
    cheap: LiveServer,
) -> None:
    """`--plain` as a second session: the login says another session is there, `/sessions` lists both (this
    one marked), and a message the desk sent before shows in the backfill under alice's own nick."""
    await register(cheap, "alice", ["lobby"])
    async with session(cheap, ["lobby"], "desk") as desk:
        await desk.say("lobby", "typed at the desk", wait=True)
        run = await run_plain_captured(
            cheap, "alice", lines="/sessions\n", room="lobby", options=FAST, nick_password=PASSWORD
        )
        await wait_until(lambda: len(desk.sessions) == 1, what="the plain session ended")
    assert run.status == 0, run.err
    assert "alice is also logged in from 1 other session(s): /sessions lists them" in run.out
    assert "alice is logged in from 2 session(s):" in run.out
    assert "desk, since" in run.out
    assert "(this one)" in run.out
    assert "<alice> typed at the desk" in run.out
