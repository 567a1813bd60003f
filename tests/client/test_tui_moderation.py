"""Moderation in the TUI, two real apps against a real server: the member list marks the operator, the topic
bar shows the room's modes, and a /kick shows in both clients' buffers (the kicked one is put out)."""

from __future__ import annotations

from pathlib import Path

from chat_client.tui.screens.chat import ChatScreen
from chat_client.tui.widgets.panels import MemberList, TopicBar
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_tui_commands import SIZE
from .tui_helpers import connected_app, log_text, submit, wait_for_chat, wait_for_text


def members(screen: ChatScreen) -> str:
    """The member list as shown."""
    return str(screen.query_one(MemberList).render())


async def test_kick_shows_in_both_buffers_and_the_operator_is_marked(
    server: LiveServer, private_dirs: Path
) -> None:
    alice_app = connected_app(server, private_dirs / "alice", "alice")
    bob_app = connected_app(server, private_dirs / "bob", "bob")
    async with alice_app.run_test(size=SIZE) as alice, bob_app.run_test(size=SIZE) as bob:
        alice_screen = await wait_for_chat(alice_app, alice)
        bob_screen = await wait_for_chat(bob_app, bob)
        await submit(alice, "/join den")
        await wait_until(lambda: alice_screen.model.current == "#den")
        await submit(bob, "/join den")
        await wait_until(lambda: bob_screen.model.current == "#den")
        for screen in (alice_screen, bob_screen):
            await wait_until(lambda screen=screen: "@alice" in members(screen) and "bob" in members(screen))
        assert "@bob" not in members(alice_screen)
        await submit(alice, "/topiclock on")
        await wait_until(lambda: "topic locked" in str(bob_screen.query_one(TopicBar).render()))
        await wait_for_text(bob_app, bob, "alice locked the topic")
        await submit(alice, "/kick bob [red]spam[/red]")
        await wait_for_text(alice_app, alice, "alice kicked bob ([red]spam[/red])")  # markup shown as typed
        await wait_until(lambda: "bob" not in members(alice_screen))
        assert "bob left" not in log_text(alice_app)
        # bob's den buffer is closed: he is told where he is looking now.
        await wait_for_text(bob_app, bob, "you left den (kicked by alice: [red]spam[/red])")
        assert "#den" not in bob_screen.model.buffers
        await submit(bob, "/join den")  # a kick is not a ban
        await wait_until(lambda: bob_screen.model.current == "#den")
        await submit(bob, "/kick alice")
        await wait_for_text(bob_app, bob, "not_operator: you are not an operator of den")
        assert "alice" in members(bob_screen)
