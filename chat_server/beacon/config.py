"""The LAN beacon's settings: `BeaconConfig`, its named defaults, the config-file table and the command line.

* `BeaconConfig`: every setting, each defaulting to a named constant below; it checks its values when built.
* `beacon_config_from_table(table)` builds one from a config-file table (``[beacon]`` in server.toml).
* `add_beacon_arguments(parser)` adds ``--beacon``, ``--beacon-address``, ``--beacon-port`` and
  ``--beacon-interval``; `beacon_config_from_args(args, base)` applies them on top of `base` (e.g. the
  config file's values).

The beacon itself (its thread, its socket, its rate limits) is `chat_server.beacon.beacon`.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.discovery import DEFAULT_DISCOVERY_PORT

#: Where beacons go by default: the limited broadcast address (every host on the local link).
DEFAULT_BEACON_ADDRESS = "255.255.255.255"
#: The administratively scoped (RFC 2365) multicast group to use instead of, or as well as, broadcast.
MULTICAST_GROUP = "239.255.78.79"
#: The IPv6 group (IPv6 has no broadcast): link-local scope (ff02::), so it never leaves the link; give the
#: interface as the address's zone, e.g. ``ff02::7879%eth0`` (7879: the discovery port, in hex digits).
MULTICAST_GROUP_V6 = "ff02::7879"
DEFAULT_BEACON_PORT = DEFAULT_DISCOVERY_PORT
#: Seconds between beacons, and the random spread around it (0.2 = ±20 %) so servers do not beat together.
DEFAULT_BEACON_INTERVAL = 5.0
DEFAULT_BEACON_JITTER = 0.2
#: The local addresses the IPv4 and IPv6 beacon sockets bind to (all interfaces: queries may come in on any).
DEFAULT_BIND_ADDRESS = "0.0.0.0"
DEFAULT_BIND_ADDRESS_V6 = "::"
#: Replies to one source address: a burst, then this many per second.
DEFAULT_QUERY_RATE = 1.0
DEFAULT_QUERY_BURST = 4
#: Replies to everyone together: bounds what the beacon sends whatever the number of sources.
DEFAULT_REPLY_RATE = 20.0
DEFAULT_REPLY_BURST = 40
#: Source addresses whose rate is tracked at once (the least recently seen is forgotten first).
DEFAULT_MAX_QUERY_SOURCES = 256


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "enabled": (bool,),
    "answer_queries": (bool,),
    "addresses": (tuple,),
    "port": (int,),
    "query_port": (int, type(None)),
    "interval": (int, float),
    "jitter": (int, float),
    "bind_address": (str,),
    "bind_address_v6": (str,),
    "interface": (str, type(None)),
    "query_rate": (int, float),
    "query_burst": (int,),
    "reply_rate": (int, float),
    "reply_burst": (int,),
    "max_query_sources": (int,),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BeaconConfig:
    """The beacon's settings; the defaults are the named constants of this module.

    `addresses` are IP literals. IPv4: a broadcast address (255.255.255.255, or a subnet's directed
    broadcast such as 192.168.1.255 to pick one interface), a multicast group (sent with TTL 1), or a unicast
    address. IPv6: a multicast group (sent with hop limit 1), usually link-local with the interface as its
    zone (``ff02::7879%eth0``; without a zone the system picks the interface), or a unicast address. The
    beacon opens one UDP socket per family its addresses use: the IPv4 one bound to `bind_address`, the IPv6
    one (IPv6 only) to `bind_address_v6`. `port` is where beacons go; the beacon listens for queries on
    `query_port` (None: the same port; 0: an ephemeral port, for tests). `interface` is the local IPv4
    address IPv4 multicast is sent from and the group joined on (None: the system's choice).
    """

    enabled: bool = False
    addresses: tuple[str, ...] = (DEFAULT_BEACON_ADDRESS,)
    port: int = DEFAULT_BEACON_PORT
    query_port: int | None = None
    interval: float = DEFAULT_BEACON_INTERVAL
    jitter: float = DEFAULT_BEACON_JITTER
    bind_address: str = DEFAULT_BIND_ADDRESS
    bind_address_v6: str = DEFAULT_BIND_ADDRESS_V6
    interface: str | None = None
    answer_queries: bool = True
    query_rate: float = DEFAULT_QUERY_RATE
    query_burst: int = DEFAULT_QUERY_BURST
    reply_rate: float = DEFAULT_REPLY_RATE
    reply_burst: int = DEFAULT_REPLY_BURST
    max_query_sources: int = DEFAULT_MAX_QUERY_SOURCES

    def __post_init__(self) -> None:
        for name, kinds in _FIELD_TYPES.items():
            value = getattr(self, name)
            # bool is an int subclass: a flag is never a number, and a number never a flag.
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"beacon setting {name} has the wrong type: {value!r}")
        if not all(isinstance(address, str) for address in self.addresses):
            raise ValueError(f"beacon addresses must be strings: {self.addresses!r}")
        if not self.addresses:
            raise ValueError("the beacon needs at least one address")
        for address in self.addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"beacon address {address!r} is not an IP address") from None
        for address in (self.bind_address, *filter(None, [self.interface])):
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise ValueError(f"beacon address {address!r} is not an IPv4 address") from None
        try:
            ipaddress.IPv6Address(self.bind_address_v6)
        except ValueError:
            raise ValueError(f"bind_address_v6 {self.bind_address_v6!r} is not an IPv6 address") from None
        for name in ("port", "query_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} {port} is not a UDP port")
        if not self.interval > 0:
            raise ValueError(f"interval must be positive, not {self.interval!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be from 0 to below 1, not {self.jitter!r}")
        for name in ("query_rate", "query_burst", "reply_rate", "reply_burst", "max_query_sources"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")


def beacon_config_from_table(table: Mapping[str, Any]) -> BeaconConfig:
    """Build a `BeaconConfig` from a config-file table (e.g. ``[beacon]`` in server.toml).

    Keys are the field names; lists become tuples. An unknown key or a bad value raises ValueError.
    """
    known = {field.name for field in dataclasses.fields(BeaconConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"unknown beacon setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in table.items()
    }
    return BeaconConfig(**values)


def add_beacon_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--beacon``, ``--beacon-address``, ``--beacon-port`` and ``--beacon-interval`` to `parser`."""
    group = parser.add_argument_group("LAN beacon (announces the server name, port, users and public rooms)")
    group.add_argument(
        "--beacon",
        action="store_true",
        default=None,
        help="announce this server on the LAN by UDP; room names become visible to everyone on the LAN",
    )
    group.add_argument(
        "--beacon-address",
        action="append",
        metavar="IP",
        help=f"where beacons go (repeatable): broadcast, a multicast group such as {MULTICAST_GROUP}, or "
        f"the IPv6 group {MULTICAST_GROUP_V6}%%IFACE (default {DEFAULT_BEACON_ADDRESS})",
    )
    group.add_argument(
        "--beacon-port", type=int, metavar="PORT", help=f"UDP port (default {DEFAULT_BEACON_PORT})"
    )
    group.add_argument(
        "--beacon-interval",
        type=float,
        metavar="SECONDS",
        help=(
            f"seconds between beacons, ±{DEFAULT_BEACON_JITTER * 100:.0f}%% "
            f"(default {DEFAULT_BEACON_INTERVAL:g})"
        ),
    )


def beacon_config_from_args(args: argparse.Namespace, base: BeaconConfig | None = None) -> BeaconConfig:
    """Return `base` (default: the defaults) with the options given on the command line applied.

    Raises ValueError for a bad value (the caller reports it as a usage error).
    """
    changes: dict[str, Any] = {}
    if getattr(args, "beacon", None):
        changes["enabled"] = True
    if getattr(args, "beacon_address", None):
        changes["addresses"] = tuple(args.beacon_address)
    if getattr(args, "beacon_port", None) is not None:
        changes["port"] = args.beacon_port
    if getattr(args, "beacon_interval", None) is not None:
        changes["interval"] = args.beacon_interval
    return dataclasses.replace(base or BeaconConfig(), **changes)
