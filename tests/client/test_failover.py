"""Several servers of one chat (`--host a,b`): the client tries them in turn and fails over between them.

Real servers on 127.0.0.1, each with its own history; a port that refuses connections (bound, never
listening) stands for a server that is down, and the lab's fault proxy for one that vanishes mid-session.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Input

from chat_client import ChatClient, ClientOptions, Connected, Reconnecting
from chat_client.net.backoff import Backoff
from chat_client.net.errors import ConnectionLost
from chat_client.plain.linemode import run_plain
from chat_client.tui.app import ChatApp
from chat_client.tui.screens.chat import ChatScreen
from chat_client.tui.screens.connect import ConnectScreen
from chat_lab.proxy import FaultProxy
from shared.addresses import describe_servers, parse_servers
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .test_cli import run_client
from .test_library import FAST, Recorder

SIZE = (120, 36)

#: A backoff far longer than any test: a test that passes did not wait for it.
PATIENT = replace(FAST, backoff=Backoff(initial=60, maximum=60))


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens (held bound, so nobody takes it): a server that is down."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A second server, with a history of its own."""
    with LiveServer(fast_server_config(tmp_path / "other")) as live:
        yield live


def back_after_failover(events: Recorder) -> bool:
    """True once the client logged in again after failing over (a `Connected` after a `Reconnecting`)."""
    kinds = [type(event) for event in events.events]
    return Reconnecting in kinds and Connected in kinds[kinds.index(Reconnecting) :]


def servers(*ports: int) -> str:
    return ",".join(f"127.0.0.1:{port}" for port in ports)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chat.lan", [("chat.lan", 7878)]),
        ("a.lan,b.lan:7000", [("a.lan", 7878), ("b.lan", 7000)]),
        (" a.lan , b.lan ", [("a.lan", 7878), ("b.lan", 7878)]),
        ("::1", [("::1", 7878)]),
        ("fe80::1%eth0,[::1]:7000", [("fe80::1%eth0", 7878), ("::1", 7000)]),
        ("[2001:db8::7]", [("2001:db8::7", 7878)]),
        ("a.lan,a.lan:7878", [("a.lan", 7878)]),
    ],
)
def test_servers_are_read_as_written(text: str, expected: list[tuple[str, int]]) -> None:
    assert parse_servers(text, 7878) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("a.lan,,b.lan", "empty"),
        (":7000", "no host"),
        ("a.lan:0", "1 to 65535"),
        ("a.lan:http", "1 to 65535"),
        ("[::1", "[ADDRESS]:PORT"),
        ("[::1]7000", "[ADDRESS]:PORT"),
    ],
)
def test_a_bad_server_list_is_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_servers(text, 7878)


def test_servers_are_described_as_people_read_them() -> None:
    assert describe_servers("a.lan,[::1]:7000", 7878) == "a.lan:7878, [::1]:7000"
    assert describe_servers("::1", 7000) == "[::1]:7000"


async def test_a_server_that_is_down_is_passed_over_at_once(server: LiveServer, refusing_port: int) -> None:
    """The first server refuses connections: the first login goes to the next one, without a backoff."""
    async with asyncio.timeout(20):
        async with ChatClient(servers(refusing_port, server.port), 0, "alice", options=PATIENT) as alice:
            assert alice.endpoint.port == server.port
            assert [endpoint.port for endpoint in alice.servers] == [refusing_port, server.port]
            await alice.say("lobby", "made it", wait=True)


async def test_when_every_server_is_down_the_first_login_fails_at_once(refusing_port: int) -> None:
    """No server of the list answers: `connect()` fails after one round, as with one server."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        client = ChatClient(servers(refusing_port, other.getsockname()[1]), 0, "alice", options=PATIENT)
        async with asyncio.timeout(20):
            with pytest.raises(ConnectionLost):
                await client.connect()


async def test_a_full_server_sends_the_client_to_the_next_one(tmp_path: Path, server: LiveServer) -> None:
    """`server_full` means "not this server": the login tries the next one at once."""
    with LiveServer(fast_server_config(tmp_path / "full", max_clients=1)) as full:
        async with ChatClient(full.host, full.port, "carol", options=FAST):
            async with asyncio.timeout(20):
                async with ChatClient(servers(full.port, server.port), 0, "alice", options=PATIENT) as alice:
                    assert alice.endpoint.port == server.port


async def test_a_server_that_vanishes_mid_session_is_failed_over(
    server: LiveServer, other_server: LiveServer
) -> None:
    """The server in use vanishes (its connection cut, its port refusing): the client logs in to the next
    server at once, says so in `Reconnecting.server`, and what it sends goes there."""
    front = FaultProxy(lambda: (server.host, server.port))
    await front.start()
    try:
        async with (
            ChatClient(servers(front.port, other_server.port), 0, "alice", options=PATIENT) as alice,
            ChatClient(other_server.host, other_server.port, "bob", options=FAST) as bob,
        ):
            events = Recorder(alice)
            seen = Recorder(bob)
            assert alice.endpoint.port == front.port
            front.refuse = True
            await front.cut()
            await wait_until(lambda: back_after_failover(events), what="alice back, on the other server")
            assert alice.endpoint.port == other_server.port
            assert [event.server for event in events.of(Reconnecting)] == [f"127.0.0.1:{other_server.port}"]
            await alice.say("lobby", "still here", wait=True)
            await wait_until(lambda: "still here" in seen.texts("lobby"), what="bob to hear alice")
    finally:
        await front.close()


async def test_a_server_shutting_down_is_failed_over(server: LiveServer, other_server: LiveServer) -> None:
    """A server that stops (`server_shutdown`) sends its clients to the next server, not into a backoff."""
    async with ChatClient(servers(server.port, other_server.port), 0, "alice", options=PATIENT) as alice:
        events = Recorder(alice)
        await server.astop()
        await wait_until(lambda: back_after_failover(events), what="alice on the other server")
        assert alice.endpoint.port == other_server.port
        await alice.say("lobby", "moved", wait=True)


async def test_the_line_mode_takes_a_server_list(server: LiveServer, refusing_port: int) -> None:
    """`--plain` with a list: the line is delivered through the server that answers."""
    options = ClientOptions(connect_timeout=5, backoff=Backoff(initial=60, maximum=60))
    out, err = io.StringIO(), io.StringIO()
    async with asyncio.timeout(30):
        async with ChatClient(server.host, server.port, "bob", options=FAST) as bob:
            seen = Recorder(bob)
            status = await run_plain(
                servers(refusing_port, server.port),
                0,
                "ci",
                room="lobby",
                options=options,
                source=io.StringIO("built\n"),
                out=out,
                err=err,
            )
            assert status == 0, err.getvalue()
            await wait_until(lambda: "built" in seen.texts("lobby"), what="bob to hear the line")


def test_the_command_line_refuses_a_bad_list_clearly() -> None:
    result = run_client("--plain", "--host", "a.lan,,b.lan", "--nick", "ci")
    assert result.returncode == 2
    assert "--host" in result.stderr
    assert "empty" in result.stderr


async def test_the_connect_screen_takes_a_server_list(
    server: LiveServer, refusing_port: int, private_dirs: Path
) -> None:
    """The TUI's connect screen: a bad list is refused with its reason; a good one logs in through the
    server that answers, and the list is remembered as typed."""
    app = ChatApp(config_dir=private_dirs, options=PATIENT, discovery=None)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ConnectScreen)
        screen.query_one("#host", Input).value = "127.0.0.1,,127.0.0.2"
        screen.query_one("#port", Input).value = "7878"
        screen.query_one("#nick", Input).value = "erin"
        await pilot.click("#connect")
        await wait_until(lambda: "empty server name" in str(screen.query_one("#connect-status").render()))
        listed = servers(refusing_port, server.port)
        host = screen.query_one("#host", Input)
        host.value = listed
        host.focus()
        status = screen.query_one("#connect-status")
        await pilot.press("enter")
        try:
            await wait_until(lambda: isinstance(app.screen, ChatScreen), what="the chat screen")
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}; the connect screen says: {status.render()}") from None
        assert app.client is not None
        assert app.client.endpoint.port == server.port
        await app.quit_chat(None)
    assert listed in (private_dirs / "client.json").read_text()
