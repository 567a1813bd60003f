"""The LAN beacon of a cluster's server lists the cluster's other servers (docs/discovery.md, `servers`).

On loopback here: two chat servers in cluster mode on the real three-node NATS cluster, their beacons sent
to a test socket. Across a real (virtual) link in network namespaces: tests/cluster/test_beacon_lan.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from chat_server.server import ChatServer
from shared.addresses import host_port
from shared.discovery import Announcement
from tests.discovery.helpers import loopback_config, udp_socket
from tests.discovery.test_server_wiring import announcement_where


def beacon_of(listener: socket.socket, server: ChatServer, servers: tuple[str, ...]) -> Announcement:
    """The first beacon of `server` (by its port) that lists exactly `servers`."""
    port = server.address[1]
    return announcement_where(
        listener, f"port {port} listing {servers}", lambda b: b.port == port and (b.servers or ()) == servers
    )


def test_each_servers_beacon_lists_the_others(start_cluster_server: Callable[..., ChatServer]) -> None:
    """Each beacon names the other servers as they announce themselves; one that stops leaves the list."""
    with udp_socket() as listener:
        beacon = loopback_config(listener.getsockname()[1])
        one = start_cluster_server("one", beacon=beacon)
        two = start_cluster_server("two", beacon=beacon)
        three = start_cluster_server("three", beacon=beacon)
        address = {server: host_port(*server.address) for server in (one, two, three)}
        beacon_of(listener, one, tuple(sorted((address[two], address[three]))))
        beacon_of(listener, two, tuple(sorted((address[one], address[three]))))
        three.stop()  # a clean stop leaves the servers bucket at once
        beacon_of(listener, one, (address[two],))
