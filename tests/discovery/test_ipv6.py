"""Discovery over IPv6 on this host's loopback (::1): beacons, queries and replies, a dual-stack listener that
hears IPv4 and IPv6, the reply rate limit keyed by /64, the IPv6 settings and the loopback-only guard.

Real multicast on a link (``ff02::7879%IFACE``) is tested inside network namespaces: test_ipv6_namespaces.py.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from chat_client.discover_cli import main as discover_main
from chat_client.net.discovery import DiscoveryListener
from chat_server.beacon.beacon import Beacon, QueryLimiter
from chat_server.beacon.config import MULTICAST_GROUP_V6, BeaconConfig
from shared.discovery import DestinationRefused, encode_query, split_zone
from tests.waiting import wait_until

from .helpers import INFO, loopback_config


def loopback6_config(port: int, **changes: Any) -> BeaconConfig:
    """A beacon that announces to [::1]:`port` and takes queries on an ephemeral port of ::1."""
    return loopback_config(port, **{"addresses": ("::1",), "bind_address_v6": "::1", **changes})


async def test_beacon_to_ipv6_loopback_is_heard() -> None:
    """A beacon sent to ::1 reaches a listener bound to ::1; the table shows ``[::1]:7878``."""
    async with DiscoveryListener(listen=("::1", 0), query=None) as listener:
        with Beacon(loopback6_config(listener.listen_address[1]), lambda: INFO):
            await wait_until(lambda: listener.servers(), what="the IPv6 beacon")
    (server,) = listener.servers()
    assert (server.host, server.address, server.rtt) == ("::1", "[::1]:7878", None)


async def test_query_over_ipv6_is_answered() -> None:
    """A query to the beacon's IPv6 socket gets a reply: the server is listed with its round-trip time."""
    with Beacon(loopback6_config(9, interval=3600.0), lambda: INFO) as beacon:
        host, port = beacon.query_address
        assert host == "::1"
        async with DiscoveryListener(listen=("::1", 0), query=(host, port)) as listener:
            await wait_until(lambda: listener.servers() and listener.servers()[0].rtt is not None)
    assert beacon.stats.replies_sent >= 1
    assert listener.servers()[0].address == "[::1]:7878"


async def test_dual_stack_listener_hears_both_families_as_one_server() -> None:
    """A beacon to 127.0.0.1 and ::1 reaches a listener on :: twice, from 127.0.0.1 (not ::ffff:127.0.0.1)
    and from ::1, and the server is one row with both addresses."""
    async with DiscoveryListener(listen=("::", 0), query=None) as listener:
        config = loopback6_config(listener.listen_address[1], addresses=("127.0.0.1", "::1"))
        with Beacon(config, lambda: INFO):
            await wait_until(lambda: listener.servers() and len(listener.servers()[0].addresses) == 2)
    (server,) = listener.servers()
    assert set(server.addresses) == {"127.0.0.1", "::1"}


def test_replies_are_rate_limited_per_ipv6_64() -> None:
    """Sources in one /64 share one reply bucket (a host may use any of its addresses); another /64 has its
    own, and so does an IPv4 source."""
    limiter = QueryLimiter(BeaconConfig(query_burst=2, query_rate=0.001))
    assert limiter.allow("2001:db8:1:2::1")
    assert limiter.allow("2001:db8:1:2::2")
    assert not limiter.allow("2001:db8:1:2:ffff::3")
    assert limiter.allow("2001:db8:1:3::1")
    assert limiter.allow("192.0.2.7")


def test_a_beacon_with_ipv6_addresses_only_opens_no_ipv4_socket() -> None:
    """The beacon opens a socket per family its addresses use: ::1 alone is answered over IPv6 only."""
    with Beacon(loopback6_config(9, interval=3600.0), lambda: INFO) as beacon:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            client.sendto(encode_query(7), beacon.query_address)
            _reply, source = client.recvfrom(1024)
        assert source[0] == "::1"
        assert [sock.family for sock in beacon._socks] == [socket.AF_INET6]


def test_ipv6_settings_are_accepted_and_checked() -> None:
    """IPv6 groups (with a zone), IPv6 unicast and both families together are valid addresses; a malformed
    IPv6 address and an IPv4 `bind_address_v6` are not."""
    for addresses in (
        (f"{MULTICAST_GROUP_V6}%eth0",),
        ("2001:db8::7",),
        ("255.255.255.255", MULTICAST_GROUP_V6),
    ):
        assert BeaconConfig(addresses=addresses).addresses == addresses
    with pytest.raises(ValueError, match="not an IP address"):
        BeaconConfig(addresses=("ff02::zz",))
    with pytest.raises(ValueError, match="bind_address_v6"):
        BeaconConfig(bind_address_v6="0.0.0.0")
    assert split_zone("ff02::7879%eth0") == ("ff02::7879", "eth0")
    assert split_zone("::1") == ("::1", None)


def test_guard_refuses_the_ipv6_group() -> None:
    """Under the loopback-only guard, a beacon to the IPv6 group refuses to start."""
    beacon = Beacon(BeaconConfig(enabled=True, addresses=(f"{MULTICAST_GROUP_V6}%lo",)), lambda: INFO)
    with pytest.raises(DestinationRefused):
        beacon.start()


def test_discover_refuses_the_ipv6_group_under_the_guard(capsys: pytest.CaptureFixture[str]) -> None:
    """``--discover-address ff02::7879%lo`` is refused (exit 2) while the guard is on: nothing is sent."""
    status = discover_main(["--discover-address", f"{MULTICAST_GROUP_V6}%lo", "--discover-seconds", "0.1"])
    assert status == 2
    assert "refusing to send" in capsys.readouterr().err
