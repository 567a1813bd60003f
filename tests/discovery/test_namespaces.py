"""A real broadcast across a real (virtual) link: a beacon in one network namespace, `--discover` in another.

The test builds its own small LAN: two network namespaces joined by a veth pair (10.213.0.1/24 and
10.213.0.2/24), each with a default route through the link so that 255.255.255.255 and multicast have
somewhere to go. Nothing is added to the host's own namespace, the loopback-only guard is lifted only in the
environment of the two subprocesses running inside the namespaces, and the namespaces (and with them the
veth pair) are deleted at the end whatever happens. Root is needed for `ip netns`.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.discovery import LOOPBACK_ONLY_ENV
from tests.waiting import DEADLINE

StartServer = Callable[..., None]
REPO = Path(__file__).resolve().parents[2]
SERVER_IP = "10.213.0.1"
CLIENT_IP = "10.213.0.2"


@dataclass(frozen=True)
class Lan:
    """Two namespaces on one virtual link."""

    server_ns: str
    client_ns: str


def ip(*args: str) -> None:
    """Run one `ip` command (bounded), failing the test with its error output."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=DEADLINE, check=False)
    assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr.strip()}"


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    """Create the two namespaces and the veth link between them; delete them afterwards."""
    tag = str(os.getpid())
    server_ns, client_ns = f"mpchat-{tag}-srv", f"mpchat-{tag}-cli"
    server_if, client_if = f"mpd{tag}s"[:15], f"mpd{tag}c"[:15]
    created: list[str] = []
    try:
        for namespace in (server_ns, client_ns):
            ip("netns", "add", namespace)
            created.append(namespace)
        # Both ends are created directly inside their namespaces: the host never sees the link.
        veth = ("type", "veth", "peer", "name", client_if, "netns", client_ns)
        ip("link", "add", server_if, "netns", server_ns, *veth)
        for namespace, interface, address in (
            (server_ns, server_if, SERVER_IP),
            (client_ns, client_if, CLIENT_IP),
        ):
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", interface)
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("-n", namespace, "link", "set", interface, "up")
            ip("-n", namespace, "route", "add", "default", "dev", interface)
        yield Lan(server_ns, client_ns)
    finally:
        for namespace in created:
            subprocess.run(
                ["ip", "netns", "del", namespace], capture_output=True, timeout=DEADLINE, check=False
            )


def unguarded_env() -> dict[str, str]:
    """This process's environment without the loopback-only guard (used only inside the namespaces)."""
    env = {key: value for key, value in os.environ.items() if key != LOOPBACK_ONLY_ENV}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def start_server(lan: Lan) -> Iterator[StartServer]:
    """Start beacon processes in the server namespace; stop them (by their own pids) afterwards."""
    processes: list[subprocess.Popen[str]] = []

    def start(name: str, *options: str) -> None:
        command = [
            "ip",
            "netns",
            "exec",
            lan.server_ns,
            sys.executable,
            "-m",
            "tests.discovery.beacon_process",
        ]
        process = subprocess.Popen(
            [*command, "--name", name, "--beacon", *options],
            cwd=REPO,
            env=unguarded_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], DEADLINE)
        assert ready, "the beacon process did not start in time"
        assert process.stdout.readline().strip() == "ready", process.stderr.read() if process.stderr else ""

    yield start
    for process in processes:
        assert process.stdin is not None
        process.stdin.close()  # the beacon process stops when its stdin closes
        try:
            process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=DEADLINE)


def discover(lan: Lan, *options: str) -> subprocess.CompletedProcess[str]:
    """Run `chat-client --discover`'s code in the client namespace and return its result."""
    command = ["ip", "netns", "exec", lan.client_ns, sys.executable, "-m", "chat_client.discover_cli"]
    return subprocess.run(
        [*command, "--discover-seconds", "1.5", *options],
        cwd=REPO,
        env=unguarded_env(),
        capture_output=True,
        text=True,
        timeout=4 * DEADLINE,
        check=False,
    )


def row_of(output: str, name: str) -> list[str]:
    """The table row of server `name`, split into its cells."""
    rows = [line for line in output.splitlines() if line.startswith(name)]
    assert len(rows) == 1, output
    return rows[0][len(name) :].split()


def test_broadcast_beacon_crosses_the_link(lan: Lan, start_server: StartServer) -> None:
    """Listening only, the client hears the server's broadcast beacons (default address and port)."""
    start_server("Beacon-A", "--beacon-interval", "0.2")
    result = discover(lan, "--discover-address", "")
    assert result.returncode == 0, result.stderr
    cells = row_of(result.stdout, "Beacon-A")
    assert cells[:3] == [f"{SERVER_IP}:7878", "2", "lobby(2)"]
    assert cells[-3:] == ["-", "-", "-"]  # heard, not asked: no RTT, no clock offset; no TLS


def test_broadcast_query_is_answered_across_the_link(lan: Lan, start_server: StartServer) -> None:
    """With the default query (to 255.255.255.255), the server answers and the table shows the RTT."""
    start_server("Query-B", "--beacon-interval", "3600")
    result = discover(lan)
    assert result.returncode == 0, result.stderr
    cells = row_of(result.stdout, "Query-B")
    assert cells[0] == f"{SERVER_IP}:7878"
    assert cells[-4] == "ms"  # "0.2 ms": an answered query
    assert cells[-2] == "s"  # "+0.0 s": the clock offset
    assert cells[-1] == "-"  # no TLS


def test_multicast_beacon_and_query_cross_the_link(lan: Lan, start_server: StartServer) -> None:
    """With the multicast group on both sides, beacons and queries work as with broadcast."""
    group = "239.255.78.79"
    start_server("Multicast-C", "--beacon-address", group, "--beacon-interval", "3600")
    result = discover(lan, "--discover-address", group)
    assert result.returncode == 0, result.stderr
    cells = row_of(result.stdout, "Multicast-C")
    assert cells[0] == f"{SERVER_IP}:7878"
    assert cells[-4] == "ms"


def test_nothing_heard_exits_with_status_1(lan: Lan) -> None:
    """With no server on the LAN, --discover says so and exits 1."""
    result = discover(lan, "--discover-seconds", "0.3")
    assert result.returncode == 1
    assert "No chat servers" in result.stdout


def test_real_server_and_client_find_each_other_and_chat(lan: Lan, tmp_path: Path) -> None:
    """`chat-server --beacon` on one host; `chat-client --discover` on another lists it; then they chat."""
    server_command = ["ip", "netns", "exec", lan.server_ns, sys.executable, "-m", "chat_server"]
    options = [
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--beacon",
        "--beacon-interval",
        "0.2",
    ]
    server = subprocess.Popen(
        [*server_command, *options],
        cwd=REPO,
        env=unguarded_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], DEADLINE)
        assert ready, "the server did not start in time"
        port = server.stdout.readline().strip().rsplit(":", 1)[-1]
        assert port.isdigit(), server.stderr.read() if server.stderr else ""

        client_command = ["ip", "netns", "exec", lan.client_ns, sys.executable, "-m", "chat_client"]
        found = subprocess.run(
            [*client_command, "--discover", "--discover-seconds", "1.5"],
            cwd=REPO,
            env=unguarded_env(),
            capture_output=True,
            text=True,
            timeout=4 * DEADLINE,
            check=False,
        )
        assert found.returncode == 0, found.stderr
        assert f"{SERVER_IP}:{port}" in found.stdout

        # Connect to the address the table gave, as the user would, and say something.
        chat = subprocess.run(
            [*client_command, "--plain", "--host", SERVER_IP, "--port", port, "--nick", "bob"],
            input="hello across the link\n/quit\n",
            cwd=REPO,
            env={**unguarded_env(), "MPCHAT_CONFIG_DIR": str(tmp_path / "cfg")},
            capture_output=True,
            text=True,
            timeout=4 * DEADLINE,
            check=False,
        )
        assert chat.returncode == 0, chat.stderr
        assert "hello across the link" in chat.stdout
    finally:
        server.terminate()  # by its own pid: `ip netns exec` replaces itself with the server
        try:
            server.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=DEADLINE)
