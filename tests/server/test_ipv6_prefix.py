"""Per-address limits count an IPv6 client by its /64, over real sockets: a server on ``::`` in a network
namespace of its own, whose loopback carries addresses of two /64s, and clients bound to them.

The namespace holds the only copies of those addresses (2001:db8::/32 is the documentation prefix), so
nothing reaches or leaves the host's network; it is deleted at the end whatever happens. Root is needed for
`ip netns`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.waiting import DEADLINE

REPO = Path(__file__).resolve().parents[2]
SERVER = "2001:db8:64:1::1"
#: Three addresses of one /64 (a host's own), then one of the next /64 (another host).
SAME_64 = ("2001:db8:64:1::2", "2001:db8:64:1::3", "2001:db8:64:1:ffff::9")
OTHER_64 = "2001:db8:64:2::1"


def ip(*args: str) -> None:
    """Run one `ip` command (bounded), failing the test with its error output."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=DEADLINE, check=False)
    assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr.strip()}"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace whose loopback has the server's and the clients' addresses (no DAD)."""
    name = f"mpchat-{os.getpid()}-v6keys"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        for address in (SERVER, *SAME_64, OTHER_64):
            ip("-n", name, "addr", "add", f"{address}/64", "dev", "lo", "nodad")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=DEADLINE, check=False)


def test_limits_count_one_64_as_one_address(namespace: str, tmp_path: Path) -> None:
    """With a limit of 1, the first client of a /64 gets in and the others of that /64 are refused (though
    each has an address of its own), while a client of another /64 gets in: for `max_clients_per_ip` and
    for `max_connections_per_minute`."""
    command = ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.server.prefix_probe"]
    result = subprocess.run(
        [*command, str(tmp_path), SERVER, *SAME_64, OTHER_64],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=6 * DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    refused = ["too_many_connections"] * (len(SAME_64) - 1)
    assert answers["max_clients_per_ip"] == ["welcome", *refused, "welcome"]
    assert answers["max_connections_per_minute"] == ["welcome", *refused, "welcome"]
