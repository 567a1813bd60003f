"""IPv6 multicast across a real (virtual) link: a beacon in one network namespace, `--discover` in another,
both on the link-local group ``ff02::7879`` with the interface as its zone; then a real server and client
that find each other that way and chat over IPv6 link-local addresses.

As in test_namespaces.py: two namespaces joined by a veth pair created inside them, nothing added to the
host's namespace, the loopback-only guard lifted only in the subprocesses inside the namespaces, and the
namespaces deleted at the end whatever happens. Duplicate address detection is turned off in the namespaces
(before the link exists), so the link-local addresses are usable at once; the fixture still waits until
the kernel lists them. Root is needed for `ip netns`.
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

from chat_server.beacon.config import MULTICAST_GROUP_V6
from tests.waiting import DEADLINE, wait_until_sync

from .test_namespaces import REPO, ip, row_of, unguarded_env

StartBeacon = Callable[..., None]


@dataclass(frozen=True)
class Lan6:
    """Two namespaces on one virtual link, with each end's interface and link-local address."""

    server_ns: str
    client_ns: str
    server_if: str
    client_if: str
    server_ll: str

    @property
    def server_group(self) -> str:
        """The group as the server names it: ``ff02::7879%<its interface>``."""
        return f"{MULTICAST_GROUP_V6}%{self.server_if}"

    @property
    def client_group(self) -> str:
        """The group as the client names it."""
        return f"{MULTICAST_GROUP_V6}%{self.client_if}"

    def server_seen_from_client(self, port: int) -> str:
        """The server's address as the client's table shows it: link-local, zone = the client's interface."""
        return f"[{self.server_ll}%{self.client_if}]:{port}"


def link_local(namespace: str, interface: str) -> str | None:
    """The usable (not tentative) link-local IPv6 address of `interface`, or None yet."""
    result = subprocess.run(
        ["ip", "-n", namespace, "-6", "-o", "addr", "show", "dev", interface, "scope", "link"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    for line in result.stdout.splitlines():
        if "tentative" not in line:
            return line.split("inet6", 1)[1].split()[0].split("/")[0]
    return None


def wait_for_link_local(namespace: str, interface: str) -> str:
    """Wait until `interface` has a usable link-local address, and return it."""
    wait_until_sync(
        lambda: link_local(namespace, interface) is not None,
        what=f"a link-local address on {interface} in {namespace}",
    )
    address = link_local(namespace, interface)
    assert address is not None
    return address


@pytest.fixture(scope="module")
def lan6() -> Iterator[Lan6]:
    """Create the two namespaces and the veth link (IPv6 link-local, plus IPv4); delete them afterwards."""
    tag = str(os.getpid())
    server_ns, client_ns = f"mpchat6-{tag}-srv", f"mpchat6-{tag}-cli"
    server_if, client_if = f"mp6{tag}s"[:15], f"mp6{tag}c"[:15]
    created: list[str] = []
    try:
        for namespace in (server_ns, client_ns):
            ip("netns", "add", namespace)
            created.append(namespace)
            for scope in ("all", "default"):  # no duplicate address detection on links created from now on
                subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        namespace,
                        "sysctl",
                        "-qw",
                        f"net.ipv6.conf.{scope}.accept_dad=0",
                    ],
                    capture_output=True,
                    timeout=DEADLINE,
                    check=True,
                )
        veth = ("type", "veth", "peer", "name", client_if, "netns", client_ns)
        ip("link", "add", server_if, "netns", server_ns, *veth)
        for namespace, interface, address in (
            (server_ns, server_if, "10.214.0.1"),
            (client_ns, client_if, "10.214.0.2"),
        ):
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", interface)
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("-n", namespace, "link", "set", interface, "up")
            ip("-n", namespace, "route", "add", "default", "dev", interface)
        server_ll = wait_for_link_local(server_ns, server_if)
        wait_for_link_local(client_ns, client_if)
        yield Lan6(server_ns, client_ns, server_if, client_if, server_ll)
    finally:
        for namespace in created:
            subprocess.run(
                ["ip", "netns", "del", namespace], capture_output=True, timeout=DEADLINE, check=False
            )


@pytest.fixture
def start_beacon(lan6: Lan6) -> Iterator[StartBeacon]:
    """Start beacon processes in the server namespace; stop them (by their own pids) afterwards."""
    processes: list[subprocess.Popen[str]] = []

    def start(name: str, *options: str) -> None:
        command = [
            "ip",
            "netns",
            "exec",
            lan6.server_ns,
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


def discover(lan6: Lan6, *options: str) -> subprocess.CompletedProcess[str]:
    """Run `chat-client --discover`'s code in the client namespace and return its result."""
    command = ["ip", "netns", "exec", lan6.client_ns, sys.executable, "-m", "chat_client.discover_cli"]
    return subprocess.run(
        [*command, "--discover-seconds", "1.5", *options],
        cwd=REPO,
        env=unguarded_env(),
        capture_output=True,
        text=True,
        timeout=4 * DEADLINE,
        check=False,
    )


def test_ipv6_multicast_query_is_answered_across_the_link(lan6: Lan6, start_beacon: StartBeacon) -> None:
    """A query to ff02::7879%IFACE is answered from the server's link-local address, with an RTT."""
    start_beacon("Six-A", "--beacon-address", lan6.server_group, "--beacon-interval", "3600")
    result = discover(lan6, "--discover-address", lan6.client_group)
    assert result.returncode == 0, result.stderr
    cells = row_of(result.stdout, "Six-A")
    assert cells[0] == lan6.server_seen_from_client(7878)
    assert cells[-4] == "ms"  # an answered query


def test_ipv6_multicast_beacon_is_heard_across_the_link(lan6: Lan6, start_beacon: StartBeacon) -> None:
    """With queries unanswered, the client still lists the server from its beacons to the IPv6 group."""
    start_beacon("Six-B", "--beacon-address", lan6.server_group, "--beacon-interval", "0.2", "--no-answer")
    result = discover(lan6, "--discover-address", lan6.client_group)
    assert result.returncode == 0, result.stderr
    cells = row_of(result.stdout, "Six-B")
    assert cells[0] == lan6.server_seen_from_client(7878)
    assert cells[-3:] == ["-", "-", "-"]  # heard, not asked


def test_one_server_on_both_families_is_one_row(lan6: Lan6, start_beacon: StartBeacon) -> None:
    """A beacon to IPv4 broadcast and to the IPv6 group reaches the dual-stack listener both ways: one row."""
    start_beacon(
        "Six-C",
        "--beacon-address",
        "255.255.255.255",
        "--beacon-address",
        lan6.server_group,
        "--beacon-interval",
        "0.2",
        "--no-answer",
    )
    result = discover(lan6, "--discover-address", lan6.client_group)
    assert result.returncode == 0, result.stderr
    row_of(result.stdout, "Six-C")  # exactly one row


def test_real_server_and_client_find_each_other_and_chat_over_ipv6(lan6: Lan6, tmp_path: Path) -> None:
    """`chat-server --host :: --beacon` on the IPv6 group; `--discover` on the other host lists it at its
    link-local address; the client connects to that address (with its zone) and chats."""
    server_command = ["ip", "netns", "exec", lan6.server_ns, sys.executable, "-m", "chat_server"]
    options = ["--host", "::", "--port", "0", "--data-dir", str(tmp_path), "--beacon"]
    options += ["--beacon-address", lan6.server_group, "--beacon-interval", "0.2"]
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
        first_line = server.stdout.readline().strip()
        assert first_line.startswith("mpchat server listening on [::]:"), (
            server.stderr.read() if server.stderr else ""
        )
        port = first_line.rsplit(":", 1)[-1]

        client_command = ["ip", "netns", "exec", lan6.client_ns, sys.executable, "-m", "chat_client"]
        found = subprocess.run(
            [
                *client_command,
                "--discover",
                "--discover-address",
                lan6.client_group,
                "--discover-seconds",
                "1.5",
            ],
            cwd=REPO,
            env=unguarded_env(),
            capture_output=True,
            text=True,
            timeout=4 * DEADLINE,
            check=False,
        )
        assert found.returncode == 0, found.stderr
        assert lan6.server_seen_from_client(int(port)) in found.stdout

        # Connect to the address the table gave (its zone included), as the user would, and say something.
        host = f"{lan6.server_ll}%{lan6.client_if}"
        chat = subprocess.run(
            [*client_command, "--plain", "--host", host, "--port", port, "--nick", "bob"],
            input="hello over link-local IPv6\n/quit\n",
            cwd=REPO,
            env={**unguarded_env(), "MPCHAT_CONFIG_DIR": str(tmp_path / "cfg")},
            capture_output=True,
            text=True,
            timeout=4 * DEADLINE,
            check=False,
        )
        assert chat.returncode == 0, chat.stderr
        assert "hello over link-local IPv6" in chat.stdout
    finally:
        server.terminate()  # by its own pid: `ip netns exec` replaces itself with the server
        try:
            server.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=DEADLINE)
