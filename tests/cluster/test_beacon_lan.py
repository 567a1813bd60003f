"""A cluster announced across a real (virtual) link: two chat servers in cluster mode with the beacon on in
one network namespace (with their NATS cluster), `chat-client --discover` in another; then the client joins
with the `--host` list the discovery printed.

The namespaces and the link are made as in tests/discovery/test_namespaces.py (its helpers are reused):
nothing is added to the host's namespace, the loopback-only guard is lifted only in the subprocesses inside
the namespaces, and the namespaces are deleted at the end whatever happens. Root is needed for `ip netns`.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.discovery.test_namespaces import REPO, Lan, ip, row_of, unguarded_env
from tests.waiting import DEADLINE

SERVER_IP = "10.214.0.1"
CLIENT_IP = "10.214.0.2"
#: Seconds the NATS cluster and both chat servers get to start inside the namespace (NATS elects leaders).
START_DEADLINE = 90.0


@pytest.fixture
def lan() -> Iterator[Lan]:
    """Two namespaces joined by a veth pair made inside them; deleted afterwards."""
    tag = str(os.getpid())
    server_ns, client_ns = f"mpchat-{tag}-csrv", f"mpchat-{tag}-ccli"
    server_if, client_if = f"mpc{tag}s"[:15], f"mpc{tag}c"[:15]
    created: list[str] = []
    try:
        for namespace in (server_ns, client_ns):
            ip("netns", "add", namespace)
            created.append(namespace)
        ip(
            "link",
            "add",
            server_if,
            "netns",
            server_ns,
            "type",
            "veth",
            "peer",
            "name",
            client_if,
            "netns",
            client_ns,
        )
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


def test_discover_lists_a_clusters_servers_and_the_host_list_works(lan: Lan, tmp_path: Path) -> None:
    """Each server's row is there; below the table each gets the `--host` list naming the other; a
    client given that list connects and chats."""
    command = ["ip", "netns", "exec", lan.server_ns, sys.executable, "-m", "tests.cluster.lan_cluster"]
    cluster = subprocess.Popen(
        [*command, "--address", SERVER_IP],
        cwd=REPO,
        env=unguarded_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cluster.stdout is not None
        ready, _, _ = select.select([cluster.stdout], [], [], START_DEADLINE)
        assert ready, "the cluster did not start in time"
        words = cluster.stdout.readline().split()
        assert words[:1] == ["ready"], cluster.stderr.read() if cluster.stderr else ""
        one, two = words[1:]

        client = ["ip", "netns", "exec", lan.client_ns, sys.executable, "-m", "chat_client"]
        found = subprocess.run(
            [*client, "--discover", "--discover-seconds", "1.5"],
            cwd=REPO,
            env=unguarded_env(),
            capture_output=True,
            text=True,
            timeout=4 * DEADLINE,
            check=False,
        )
        assert found.returncode == 0, found.stderr
        assert row_of(found.stdout, "Cluster-A")[0] == f"{SERVER_IP}:{one}"
        assert row_of(found.stdout, "Cluster-B")[0] == f"{SERVER_IP}:{two}"
        host_list = f"--host {SERVER_IP},{SERVER_IP}:{two} --port {one}"
        assert f"Cluster-A is in a cluster of 2 servers: {host_list}" in found.stdout
        assert (
            f"Cluster-B is in a cluster of 2 servers: --host {SERVER_IP},{SERVER_IP}:{one} --port {two}"
            in (found.stdout)
        )

        chat = subprocess.run(
            [*client, "--plain", *host_list.split(), "--nick", "bob"],
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
        assert cluster.stdin is not None
        cluster.stdin.close()  # the cluster process stops its servers and NATS nodes when stdin closes
        try:
            cluster.wait(timeout=4 * DEADLINE)
        except subprocess.TimeoutExpired:
            cluster.kill()  # by its own pid: `ip netns exec` replaced itself with it
            cluster.wait(timeout=DEADLINE)
