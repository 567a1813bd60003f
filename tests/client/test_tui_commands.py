"""Every slash command through the TUI against a real server, plus the palette, mentions and settings."""

from __future__ import annotations

from pathlib import Path

from chat_client import ChatClient
from chat_client.settings import load_settings
from chat_client.tui.app import ChatApp
from chat_client.tui.screens.connect import ConnectScreen
from chat_client.tui.screens.help import HelpScreen
from chat_client.tui.widgets.chat_input import ChatInput
from chat_client.tui.widgets.panels import StatusLine, TopicBar
from shared import Said
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_library import FAST, Recorder
from .tui_helpers import connected_app, log_text, submit, wait_for_chat, wait_for_text

SIZE = (120, 40)


async def test_commands(server: LiveServer, private_dirs: Path) -> None:
    """/me /topic /away /who /rooms /nick /help and an unknown command each do what they say."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        bob_events = Recorder(bob)
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            await submit(pilot, "/me waves")
            await wait_for_text(app, pilot, "* alice waves ✓")
            await wait_until(lambda: any(e.action and e.text == "waves" for e in bob_events.of(Said)))
            await submit(pilot, "/topic release [v2] today")
            await wait_until(lambda: "release [v2] today" in str(screen.query_one(TopicBar).render()))
            await submit(pilot, "/away lunch")
            await wait_for_text(app, pilot, "you are away: lunch")
            await submit(pilot, "/who")
            await wait_for_text(app, pilot, "in lobby (2): ")
            members = log_text(app).split("in lobby (2): ")[1].splitlines()[0]
            assert members == "alice (away), @bob"  # sorted by nick; bob created lobby: its operator
            await submit(pilot, "/rooms")
            await wait_for_text(app, pilot, "rooms on this server (1), as name (members): topic")
            await wait_for_text(app, pilot, "lobby (2): release [v2] today")
            await submit(pilot, "/nick alicia")
            await wait_until(lambda: "as alicia" in str(screen.query_one(StatusLine).render()))
            await submit(pilot, "/help")
            await wait_until(lambda: isinstance(app.screen, HelpScreen), what="the help screen")
            assert isinstance(app.screen, HelpScreen)
            assert "/msg NICK [TEXT]" in app.screen.text()
            await pilot.press("escape")
            await wait_until(lambda: app.screen is screen, what="the chat screen again")
            await submit(pilot, "/frobnicate")
            await wait_for_text(app, pilot, "unknown command /frobnicate")
            await submit(pilot, "/msg no!pe hi")
            await wait_for_text(app, pilot, "nick may hold only")
            assert not [key for key in screen.model.buffers if key.startswith("@")]
            await submit(pilot, "//not a command")
            await wait_for_text(app, pilot, "<alicia> /not a command")
            await pilot.press("up", "up")
            assert screen.query_one(ChatInput).value == "/msg no!pe hi"


async def test_mention_in_another_room_notifies(server: LiveServer, private_dirs: Path) -> None:
    """A mention in a room not on screen raises a notification with the text shown literally."""
    async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
        await bob.join("dev")
        app = connected_app(server, private_dirs)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            screen = await wait_for_chat(app, pilot)
            await submit(pilot, "/join dev")
            await wait_until(lambda: screen.model.current == "#dev")
            await bob.say("lobby", "ping Alice [b]now[/b]")
            await wait_until(lambda: app._notifications, what="a notification")
            notification = next(iter(app._notifications))
            assert notification.title == "Mention in lobby"
            assert notification.message == "bob: ping Alice [b]now[/b]"


async def test_palette_switches_rooms(server: LiveServer, private_dirs: Path) -> None:
    """Ctrl+P offers the rooms: picking one shows it."""
    app = connected_app(server, private_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_chat(app, pilot)
        await submit(pilot, "/join dev")
        await wait_until(lambda: screen.model.current == "#dev")
        await pilot.press("ctrl+p", *"go to #lobby")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(lambda: screen.model.current == "#lobby", what="lobby shown via the palette")


async def test_connect_screen_remembers_the_last_server(server: LiveServer, private_dirs: Path) -> None:
    """After a login the settings hold host, port and nick, and the connect screen starts from them."""
    app = connected_app(server, private_dirs, nick="zoe")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_chat(app, pilot)
    settings = load_settings(private_dirs)
    assert (settings.host, settings.port, settings.nick) == (server.host, server.port, "zoe")
    fresh = ChatApp(config_dir=private_dirs)
    async with fresh.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(fresh.screen, ConnectScreen)
        assert fresh.screen.query_one("#nick").value == "zoe"  # type: ignore[attr-defined]
        assert fresh.screen.query_one("#port").value == str(server.port)  # type: ignore[attr-defined]


async def test_connect_screen_shows_a_refused_login(server: LiveServer, private_dirs: Path) -> None:
    """Typing a nick in use shows the server's reason on the connect screen; another nick gets in."""
    async with ChatClient(server.host, server.port, "taken", options=FAST):
        app = ChatApp(host=server.host, port=server.port, config_dir=private_dirs, options=FAST)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ConnectScreen)
            await pilot.press(*"taken", "enter")
            await wait_until(lambda: "nick_taken" in str(screen.query_one("#connect-status").render()))
            screen.query_one("#nick").value = ""  # type: ignore[attr-defined]
            await pilot.click("#nick")
            await pilot.press(*"free", "enter")
            await wait_for_chat(app, pilot)


async def test_connect_screen_lists_servers_heard_on_the_lan(server: LiveServer, private_dirs: Path) -> None:
    """A real beacon (on loopback) shows up on the connect screen; picking it connects to that server."""
    from chat_client.net.discovery import DiscoveryListener
    from chat_server.beacon.beacon import Beacon
    from chat_server.beacon.config import BeaconConfig
    from shared.discovery import BeaconInfo, new_server_id

    listeners: list[DiscoveryListener] = []

    def loopback_listener() -> DiscoveryListener:
        listener = DiscoveryListener(listen=("127.0.0.1", 0), query=None)
        listeners.append(listener)
        return listener

    app = ChatApp(config_dir=private_dirs, options=FAST, discovery=loopback_listener)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: listeners and listeners[0].ready.is_set(), what="listener bound")
        port = listeners[0].listen_address[1]
        info = BeaconInfo(
            server_id=new_server_id(), name="lanbox [b]x[/b]", port=server.port, users=2, rooms=[("lobby", 2)]
        )
        config = BeaconConfig(enabled=True, addresses=("127.0.0.1",), port=port, query_port=0, interval=0.2)
        with Beacon(config, lambda: info):
            screen = app.screen
            assert isinstance(screen, ConnectScreen)
            lan = screen.query_one("#lan")
            await wait_until(lambda: lan.option_count == 1, what="the server listed")  # type: ignore[attr-defined]
            assert "lanbox [b]x[/b]" in str(lan.get_option_at_index(0).prompt)  # type: ignore[attr-defined]
            screen.query_one("#nick").value = "carol"  # type: ignore[attr-defined]
            lan.highlighted = 0  # type: ignore[attr-defined]
            lan.action_select()  # type: ignore[attr-defined]
            chat = await wait_for_chat(app, pilot)
            await wait_until(lambda: chat.model.current == "#lobby", what="logged in to the beacon's server")
            assert chat.model.nick == "carol"


async def test_a_lan_cluster_server_brings_its_other_servers(server: LiveServer, private_dirs: Path) -> None:
    """Choosing a server heard on the LAN that announces its cluster fills the host field with the `--host`
    list (it, then the others) and connects: here the server heard is gone, and the client goes on to the
    other one its beacon named."""
    import socket

    from textual.widgets import OptionList

    from chat_client.net.discovery import DiscoveredServer
    from chat_client.tui.ui_messages import ServersHeard

    with socket.socket() as probe:  # a port where nothing listens: the server heard has just died
        probe.bind((server.host, 0))
        gone = probe.getsockname()[1]
    heard = DiscoveredServer(
        server_id="lab",
        name="Lab",
        host=server.host,
        port=gone,
        tls=False,
        fingerprint=None,
        users=0,
        rooms=(),
        truncated=False,
        addresses=(server.host,),
        last_seen=0.0,
        servers=(f"{server.host}:{server.port}",),
    )
    app = ChatApp(nick="dora", config_dir=private_dirs, options=FAST, discovery=None)
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(ServersHeard([heard], None))
        await wait_until(
            lambda: "cluster of 2" in str(app.screen.query_one("#lan", OptionList).render_line(0).text)
        )
        lan = app.screen.query_one("#lan", OptionList)
        lan.focus()
        lan.highlighted = 0
        await pilot.press("enter")
        chat = await wait_for_chat(app, pilot)
        await wait_until(lambda: chat.model.nick == "dora", what="logged in on the other server")


async def test_theme_choice_is_remembered(private_dirs: Path) -> None:
    """A theme picked in the app is saved and used at the next start."""
    app = ChatApp(config_dir=private_dirs, discovery=None)
    async with app.run_test(size=SIZE) as pilot:
        app.theme = "nord"
        await pilot.pause()
    assert load_settings(private_dirs).theme == "nord"
    again = ChatApp(config_dir=private_dirs, discovery=None)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert again.theme == "nord"


async def test_a_failing_worker_is_reported_not_fatal(private_dirs: Path) -> None:
    """A bug in a background worker becomes an error notification; the app keeps running."""
    from chat_client.net.discovery import DiscoveryListener

    def broken_listener() -> DiscoveryListener:
        raise RuntimeError("boom [b]x[/b]")

    app = ChatApp(config_dir=private_dirs, discovery=broken_listener)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(lambda: app._notifications, what="an error notification")
        await pilot.pause()
        notification = next(iter(app._notifications))
        assert notification.severity == "error"
        assert "boom [b]x[/b]" in notification.message
        assert isinstance(app.screen, ConnectScreen)


async def test_a_client_told_where_to_connect_sends_nothing_to_the_lan(
    server: LiveServer, private_dirs: Path
) -> None:
    """With host and nick given, the app connects at once and starts no LAN discovery (no query leaves)."""
    from chat_client.net.discovery import DiscoveryListener

    made: list[DiscoveryListener] = []

    def recorded_listener() -> DiscoveryListener:
        listener = DiscoveryListener(listen=("127.0.0.1", 0), query=None)
        made.append(listener)
        return listener

    app = connected_app(server, private_dirs, "dora", discovery=recorded_listener)
    async with app.run_test(size=SIZE) as pilot:
        chat = await wait_for_chat(app, pilot)
        await wait_until(lambda: chat.model.current == "#lobby", what="logged in")
    assert made == []
