"""`/stats [NICK]` in the plain line mode and in the TUI, against a real server with a registered admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_client import ChatClient
from chat_client.model.admincommands import StatsCommand
from chat_client.model.commands import CommandError, parse
from shared import Figure, StatsReport

from .helpers import LiveServer, fast_server_config
from .test_library import FAST
from .test_plain import killed_on_exit, plain_client
from .tui_helpers import connected_app, submit, wait_for_chat, wait_for_text

CHEAP = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}
PASSWORD = "hunter2"


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose admin is `root` (registered below, by each test that needs it)."""
    with LiveServer(fast_server_config(tmp_path / "server", admins=("root",), **CHEAP)) as live:
        yield live


async def register_root(server: LiveServer) -> None:
    """Register `root` with `PASSWORD`, then log out."""
    async with ChatClient(server.host, server.port, "root", options=FAST) as root:
        await root.register(PASSWORD)


def test_the_command_parses() -> None:
    """/stats alone, with one nick, and not with two."""
    assert parse("/stats") == StatsCommand(None)
    assert parse("/stats bob") == StatsCommand("bob")
    with pytest.raises(CommandError, match="usage: /stats"):
        parse("/stats bob carol")


def test_a_report_is_shown_as_lines_of_figures() -> None:
    """A heading, then `name value` pairs; floats without trailing zeros."""
    from chat_client.model.admincommands import stats_lines

    report = StatsReport(figures=(Figure(name="connections", value=3), Figure(name="rate", value=2.5)))
    assert stats_lines(report) == ["server stats:", "  connections 3 · rate 2.5"]
    named = StatsReport(figures=(Figure(name="queued_bytes", value=0),), nick="bob")
    assert stats_lines(named)[0] == "stats of bob:"


async def test_plain_mode_shows_the_stats_to_an_admin(
    admin_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin's /stats and /stats NICK print the figures; a plain user's /stats prints not_admin."""
    await register_root(admin_server)
    monkeypatch.setenv("MPCHAT_NICK_PASSWORD", PASSWORD)  # read by the client process at its start
    root = plain_client(admin_server, "root", "--room", "ops")
    monkeypatch.delenv("MPCHAT_NICK_PASSWORD")
    with killed_on_exit(root) as process, killed_on_exit(plain_client(admin_server, "eve")) as eve:
        out, _err = process.communicate("/stats\n/stats root\n/quit\n", timeout=30)
        eve_out, _eve_err = eve.communicate("/stats\n/quit\n", timeout=30)
    assert "server stats:" in out
    assert "connections " in out
    assert "stats of root:" in out
    assert "sendq_hard " in out
    assert "not_admin" in eve_out


async def test_the_tui_shows_the_stats_to_an_admin(admin_server: LiveServer, private_dirs: Path) -> None:
    """In the TUI, /stats lists the figures in the current buffer; /stats NICK one connection's."""
    await register_root(admin_server)
    app = connected_app(admin_server, private_dirs / "root", "root", nick_password=PASSWORD)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_chat(app, pilot)
        await submit(pilot, "/stats")
        await wait_for_text(app, pilot, "server stats:")
        await wait_for_text(app, pilot, "uptime_s")
        await submit(pilot, "/stats nobody")
        await wait_for_text(app, pilot, "no_such_nick")
        await submit(pilot, "/stats root")
        await wait_for_text(app, pilot, "stats of root:")
