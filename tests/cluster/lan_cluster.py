"""A small cluster in a process of its own, for the network-namespace test (tests/cluster/test_beacon_lan.py).

``python -m tests.cluster.lan_cluster --address IP`` starts, inside whatever network namespace it runs in, a
three-node NATS JetStream cluster on that namespace's loopback and two chat servers in cluster mode on it,
each listening on all addresses with the LAN beacon on (broadcast, every 0.2 s) and announcing itself to the
other's clients as ``IP:PORT``. Once each server's `welcome` names the other it prints ``ready PORT1 PORT2``;
it stops everything (each NATS node by its PID) when its standard input closes or after `--lifetime` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import sys
import tempfile
from pathlib import Path

from benchmarks.natscluster import NatsCluster, free_ports
from chat_server.beacon.config import BeaconConfig
from chat_server.cluster.config import ClusterConfig
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from tests.server.conftest import TEST_SETTINGS
from tests.waiting import wait_until_sync


def main() -> int:
    """Run the cluster until stdin closes or the lifetime ends."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True, help="this namespace's address on the link")
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        nats = NatsCluster(Path(folder) / "nats")
        stack.callback(nats.stop)
        nats.start()
        ports = free_ports(2)
        servers = []
        for number, port in enumerate(ports):
            cluster = ClusterConfig(urls=nats.urls, announce=f"{args.address}:{port}")
            settings = {
                **TEST_SETTINGS,
                "host": "0.0.0.0",
                "port": port,
                "data_dir": Path(folder) / f"chat{number}",
                "server_name": f"Cluster-{'AB'[number]}",
                "cluster": cluster,
                "beacon": BeaconConfig(enabled=True, interval=0.2),
            }
            servers.append(stack.enter_context(ChatServer(ServerConfig(**settings))))
        for server, other in ((servers[0], ports[1]), (servers[1], ports[0])):
            wanted = (f"{args.address}:{other}",)
            wait_until_sync(lambda s=server, w=wanted: s.cluster_servers == w, what=f"{wanted} announced")
        print("ready", *ports, flush=True)
        select.select([sys.stdin], [], [], args.lifetime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
