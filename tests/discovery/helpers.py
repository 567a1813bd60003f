"""Helpers for the discovery tests: deadline waits, loopback beacon configurations and raw UDP sockets."""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

from chat_server.beacon.config import BeaconConfig
from shared.discovery import BeaconInfo
from tests.waiting import DEADLINE

#: Beacon interval in tests: short, so nothing waits for a default of seconds.
FAST_INTERVAL = 0.05

INFO = BeaconInfo(
    server_id="0123456789abcdef0123456789abcdef",
    name="Lab server",
    port=7878,
    users=3,
    rooms=(("lobby", 2), ("dev", 1)),
)


def info(**changes: Any) -> BeaconInfo:
    """`INFO` with some fields changed."""
    return dataclasses.replace(INFO, **changes)


def loopback_config(port: int, **changes: Any) -> BeaconConfig:
    """A beacon that announces to 127.0.0.1:`port` and takes queries on an ephemeral loopback port."""
    settings: dict[str, Any] = {
        "enabled": True,
        "addresses": ("127.0.0.1",),
        "port": port,
        "query_port": 0,
        "bind_address": "127.0.0.1",
        "interval": FAST_INTERVAL,
    }
    settings.update(changes)
    return BeaconConfig(**settings)


def udp_socket(host: str = "127.0.0.1", timeout: float = DEADLINE) -> socket.socket:
    """A UDP socket bound to an ephemeral port on `host` (loopback), with a receive timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(timeout)
    return sock


def free_udp_port() -> int:
    """A UDP port that was free a moment ago (for a process that must be told its port in advance)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
