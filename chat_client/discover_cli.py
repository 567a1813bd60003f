"""The `--discover` command: listen and query for a few seconds, then print the servers found as a table.

Seams: `add_discover_arguments(parser)` adds ``--discover``, ``--discover-address``, ``--discover-port`` and
``--discover-seconds``; `run_discover(args)` runs the discovery and returns the exit status (0: servers found,
1: none found, 2: discovery could not run); `lan_listener_factory(address, port)` makes the TUI's connect
screen listen and query as ``--discover-address`` and ``--discover-port`` say. ``python -m
chat_client.discover_cli [options]`` runs it on its own (the tests use this path).

Every name in the table came from the network, so it goes through `shared.text.visible` first.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from shared.fingerprint import grouped
from shared.text import visible

if TYPE_CHECKING:
    from chat_client.net.discovery import DiscoveredServer, DiscoveryListener

#: The defaults of ``--discover-address`` and ``--discover-port``: the same values as
#: `chat_client.net.discovery.DEFAULT_QUERY_ADDRESS` and `shared.discovery.DEFAULT_DISCOVERY_PORT` (tested),
#: repeated because every `chat-client` builds this parser, and the TUI must not import the discovery modules
#: before its first frame.
DEFAULT_QUERY_ADDRESS = "255.255.255.255"
DEFAULT_DISCOVERY_PORT = 7879
#: Seconds `--discover` listens by default: a query round trip plus most of one beacon interval.
DEFAULT_DISCOVER_SECONDS = 3.0
#: Widest the name and rooms columns get before they are cut with an ellipsis.
NAME_WIDTH = 32
ROOMS_WIDTH = 48

EXIT_FOUND = 0
EXIT_NONE_FOUND = 1
EXIT_FAILED = 2


def add_discover_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--discover``, ``--discover-address``, ``--discover-port`` and ``--discover-seconds``."""
    group = parser.add_argument_group("LAN discovery")
    group.add_argument(
        "--discover", action="store_true", help="list the chat servers announcing themselves on the LAN"
    )
    group.add_argument(
        "--discover-address",
        default=DEFAULT_QUERY_ADDRESS,
        metavar="ADDRESS",
        help="where queries go, with --discover and from the connect screen: broadcast, a multicast group "
        "(IPv6: ff02::7879%%IFACE, then IPv6 beacons are heard too) or one host; '' sends none and only "
        f"listens (default {DEFAULT_QUERY_ADDRESS})",
    )
    group.add_argument(
        "--discover-port",
        type=int,
        default=DEFAULT_DISCOVERY_PORT,
        metavar="PORT",
        help=f"UDP port beacons arrive on and queries go to (default {DEFAULT_DISCOVERY_PORT})",
    )
    group.add_argument(
        "--discover-seconds",
        type=float,
        default=DEFAULT_DISCOVER_SECONDS,
        metavar="SECONDS",
        help=f"how long to listen (default {DEFAULT_DISCOVER_SECONDS:g})",
    )


def run_discover(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Discover servers as `args` says, print the table to `out` (stdout), and return the exit status."""
    out = out or sys.stdout
    if not 0 <= args.discover_port <= 65535:
        print(f"chat-client: --discover-port {args.discover_port} is not a UDP port", file=sys.stderr)
        return EXIT_FAILED
    if not args.discover_seconds > 0:
        print("chat-client: --discover-seconds must be positive", file=sys.stderr)
        return EXIT_FAILED
    import asyncio

    from chat_client.net.discovery import DEFAULT_LISTEN_ADDRESS, discover
    from shared.discovery import DestinationRefused

    query = (args.discover_address, args.discover_port) if args.discover_address else None
    try:
        servers = asyncio.run(
            discover(args.discover_seconds, listen=(DEFAULT_LISTEN_ADDRESS, args.discover_port), query=query)
        )
    except (OSError, DestinationRefused) as error:
        print(f"chat-client: discovery failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    if not servers:
        print(f"No chat servers heard in {args.discover_seconds:g} s.", file=out)
        return EXIT_NONE_FOUND
    print(format_table(servers), file=out)
    clusters = cluster_lines(servers)
    if clusters:
        print("", *(f"  {line}" for line in clusters), sep="\n", file=out)
    return EXIT_FOUND


def lan_listener_factory(address: str, port: int) -> Callable[[], DiscoveryListener]:
    """The connect screen's discovery: queries to `address` (none if empty) and beacons heard on `port`.

    With the defaults it is the plain `DiscoveryListener()`; with an IPv6 group (``ff02::7879%eth0``) the
    screen hears IPv6 servers too. The discovery modules are imported only when the app starts discovery,
    after its first frame.
    """

    def make() -> DiscoveryListener:
        from chat_client.net.discovery import DEFAULT_LISTEN_ADDRESS, DiscoveryListener

        return DiscoveryListener(
            listen=(DEFAULT_LISTEN_ADDRESS, port), query=(address, port) if address else None
        )

    return make


def format_table(servers: Sequence[DiscoveredServer]) -> str:
    """The servers as an aligned text table: name, address:port, users, rooms, RTT and clock offset."""
    header = ("NAME", "ADDRESS", "USERS", "ROOMS", "RTT", "CLOCK", "TLS")
    rows = [header] + [
        (
            _cut(visible(server.name, keep_newlines=False), NAME_WIDTH),
            server.address,
            str(server.users),
            _cut(_rooms(server), ROOMS_WIDTH),
            "-" if server.rtt is None else f"{server.rtt * 1000:.1f} ms",
            "-" if server.clock_offset is None else f"{server.clock_offset:+.1f} s",
            _tls(server),
        )
        for server in servers
    ]
    widths = [max(_width(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join(_row_line(row, widths) for row in rows)


def cluster_lines(servers: Sequence[DiscoveredServer]) -> list[str]:
    """For each server that announces a cluster, the `--host` list that reaches it and fails over to the
    cluster's other servers (docs/cluster.md); printed below the table, after a blank line, indented."""
    return [
        f"{_cut(visible(server.name, keep_newlines=False), NAME_WIDTH)} is in a cluster of"
        f" {len(server.servers) + 1} servers: --host {server.host_list} --port {server.port}"
        for server in servers
        if server.servers
    ]


def _row_line(row: Sequence[str], widths: Sequence[int]) -> str:
    cells = (cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True))
    return "  ".join(cells).rstrip()


def _tls(server: DiscoveredServer) -> str:
    """A dash, or "key" and the start of the announced fingerprint (shown, never trusted over a pin)."""
    if not server.tls:
        return "-"
    return f"key {grouped(server.fingerprint)[:19]}…" if server.fingerprint else "yes"


def _rooms(server: DiscoveredServer) -> str:
    if not server.rooms:
        return "-"
    listed = " ".join(f"{visible(name, keep_newlines=False)}({members})" for name, members in server.rooms)
    return listed + (" …" if server.truncated else "")


def _width(text: str) -> int:
    """Terminal cells `text` takes: wide East Asian characters take two, combining marks none."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def _cut(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    while _width(text) > width - 1:
        text = text[:-1]
    return text + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """Run discovery on its own: ``python -m chat_client.discover_cli [--discover-...]``."""
    parser = argparse.ArgumentParser(prog="chat-client --discover", description=__doc__.splitlines()[0])
    add_discover_arguments(parser)
    return run_discover(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
