"""A beacon in a process of its own, for the network-namespace tests.

``python -m tests.discovery.beacon_process --name NAME [--beacon-address ...] [--beacon-interval ...]
[--no-answer]`` announces a fixed server (TCP port 7878, two rooms) with the server's own command-line
options, prints ``ready`` once the sockets are bound (with ``--no-answer`` it sends beacons but answers no
query), and stops when its standard input closes or after `--lifetime` seconds.
"""

from __future__ import annotations

import argparse
import select
import sys

from chat_server.beacon.beacon import Beacon
from chat_server.beacon.config import BeaconConfig, add_beacon_arguments, beacon_config_from_args
from shared.discovery import BeaconInfo


def main() -> int:
    """Run the beacon until stdin closes or the lifetime ends."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--lifetime", type=float, default=60.0)
    parser.add_argument("--no-answer", action="store_true")
    add_beacon_arguments(parser)
    args = parser.parse_args()
    config = beacon_config_from_args(args, BeaconConfig(enabled=True, answer_queries=not args.no_answer))
    announced = BeaconInfo(
        server_id="feedface" * 4, name=args.name, port=7878, users=2, rooms=(("lobby", 2), ("lab", 1))
    )
    with Beacon(config, lambda: announced):
        print("ready", flush=True)
        select.select([sys.stdin], [], [], args.lifetime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
