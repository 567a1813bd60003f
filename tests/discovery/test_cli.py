"""The `--discover` command on loopback: options, the printed table, exit statuses, hostile names."""

from __future__ import annotations

import argparse
import io

import pytest

from chat_client.discover_cli import (
    DEFAULT_DISCOVER_SECONDS,
    EXIT_FAILED,
    EXIT_FOUND,
    EXIT_NONE_FOUND,
    add_discover_arguments,
    cluster_lines,
    format_table,
    run_discover,
)
from chat_client.net.discovery import DiscoveredServer
from chat_server.beacon.beacon import Beacon
from shared.discovery import DEFAULT_DISCOVERY_PORT

from .helpers import INFO, free_udp_port, loopback_config


def parse(*argv: str) -> argparse.Namespace:
    """Parse `argv` with only the discovery options."""
    parser = argparse.ArgumentParser()
    add_discover_arguments(parser)
    return parser.parse_args(argv)


def run(*argv: str) -> tuple[int, str]:
    """Run the command with `argv`; return its exit status and what it printed."""
    out = io.StringIO()
    return run_discover(parse(*argv), out), out.getvalue()


def test_options_and_defaults() -> None:
    """The four options exist with the documented defaults."""
    args = parse()
    assert (args.discover, args.discover_address, args.discover_port, args.discover_seconds) == (
        False,
        "255.255.255.255",
        DEFAULT_DISCOVERY_PORT,
        DEFAULT_DISCOVER_SECONDS,
    )
    assert parse("--discover").discover


def test_query_answered_on_loopback_prints_the_table() -> None:
    """Querying a beacon on loopback prints name, address, users, rooms and RTT, and exits 0."""
    with Beacon(loopback_config(9, interval=3600.0), lambda: INFO) as beacon:
        port = str(beacon.query_address[1])
        status, output = run(
            "--discover-address", "127.0.0.1", "--discover-port", port, "--discover-seconds", "0.3"
        )
    assert status == EXIT_FOUND
    header, row = output.splitlines()
    assert header.split() == ["NAME", "ADDRESS", "USERS", "ROOMS", "RTT", "CLOCK", "TLS"]
    cells = row.split()
    assert cells[:6] == ["Lab", "server", "127.0.0.1:7878", "3", "lobby(2)", "dev(1)"]
    assert cells[7] == "ms"


def test_listen_only_hears_a_loopback_broadcast() -> None:
    """With an empty --discover-address the command only listens, and hears beacons."""
    port = free_udp_port()
    with Beacon(loopback_config(port, addresses=("127.255.255.255",)), lambda: INFO):
        status, output = run(
            "--discover-address", "", "--discover-port", str(port), "--discover-seconds", "0.5"
        )
    assert status == EXIT_FOUND
    assert output.splitlines()[1].split()[-2:] == ["-", "-"]


def test_nothing_heard_exits_1() -> None:
    """No server: a plain sentence and exit status 1."""
    status, output = run(
        "--discover-address", "", "--discover-port", str(free_udp_port()), "--discover-seconds", "0.2"
    )
    assert (status, output.strip()) == (EXIT_NONE_FOUND, "No chat servers heard in 0.2 s.")


def test_default_query_address_is_refused_under_the_guard(capsys: pytest.CaptureFixture[str]) -> None:
    """Under the test guard the default (LAN broadcast) fails with status 2 instead of sending."""
    status, output = run("--discover-port", str(free_udp_port()), "--discover-seconds", "0.2")
    assert (status, output) == (EXIT_FAILED, "")
    assert "MPCHAT_DISCOVERY_LOOPBACK_ONLY" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [("--discover-port", "70000"), ("--discover-seconds", "0")])
def test_bad_values_exit_2(argv: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """An impossible port or duration is a usage error."""
    assert run(*argv)[0] == EXIT_FAILED
    assert "chat-client:" in capsys.readouterr().err


def server(**changes: object) -> DiscoveredServer:
    """A discovered server as the table receives it."""
    fields: dict[str, object] = {
        "server_id": "x",
        "name": "Lab",
        "host": "10.0.0.5",
        "port": 7878,
        "tls": False,
        "fingerprint": None,
        "users": 1,
        "rooms": (("lobby", 1),),
        "truncated": False,
        "addresses": ("10.0.0.5",),
        "last_seen": 0.0,
    }
    fields.update(changes)
    return DiscoveredServer(**fields)  # type: ignore[arg-type]


def test_table_never_prints_control_characters() -> None:
    """Even a name that slipped past decoding is printed with visible placeholders, never as escapes."""
    table = format_table([server(name="Evil\x1b[2J\u202e", rooms=(("r\x07", 1),))])
    assert "\x1b" not in table
    assert "\x07" not in table
    assert "\u202e" not in table
    assert "Evil␛[2J" in table


def test_table_marks_truncated_room_lists_and_cuts_long_cells() -> None:
    """A truncated list ends with an ellipsis, and very long names are cut to the column width."""
    row = format_table([server(name="n" * 100, truncated=True, rtt=0.0012, clock_offset=-0.5)]).splitlines()[
        1
    ]
    assert "n" * 31 + "…" in row
    assert "n" * 32 not in row
    assert row.split()[-7:] == ["lobby(1)", "…", "1.2", "ms", "-0.5", "s", "-"]


def test_table_columns_line_up_with_wide_characters() -> None:
    """Wide (East Asian) characters count as two cells, so the next column still lines up."""
    lines = format_table([server(name="日本語サーバ"), server(name="Lab", server_id="y")]).splitlines()
    wide, narrow = sorted(lines[1:], key=lambda line: "Lab" in line)
    # Six wide characters take twelve cells: six more than their six code points.
    assert wide.index("10.0.0.5") + 6 == narrow.index("10.0.0.5")


def test_table_shows_users_and_room_member_counts() -> None:
    """Each room is listed with its member count."""
    table = format_table([server(users=42, rooms=(("a", 3), ("b", 0)))])
    assert "a(3) b(0)" in table


def test_a_cluster_server_gets_a_line_with_its_host_list() -> None:
    """Below the table, a server that announces its cluster gets the `--host` list that reaches it first
    and then the others; a single server gets no such line."""
    clustered = server(name="Lab", servers=("10.0.0.6:7878", "[fd00::7]:7000"))
    assert cluster_lines([clustered, server(name="Alone", server_id="y")]) == [
        "Lab is in a cluster of 3 servers: --host 10.0.0.5,10.0.0.6:7878,[fd00::7]:7000 --port 7878"
    ]
