"""The client's discovery listener on loopback: hearing, de-duplicating, expiring, querying, abuse."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from chat_client.net.discovery import (
    MAX_SERVERS,
    DiscoveredServer,
    DiscoveryListener,
    ServerTable,
    discover,
)
from chat_server.beacon.beacon import Beacon
from shared.discovery import (
    Announcement,
    DestinationRefused,
    decode_datagram,
    encode_beacon,
    encode_reply,
)
from tests.waiting import wait_until

from .helpers import INFO, info, loopback_config, udp_socket
from .hostile import HOSTILE


@pytest.fixture
async def listener() -> AsyncIterator[DiscoveryListener]:
    """A listen-only discovery listener on an ephemeral loopback port, expiring after 0.5 s."""
    async with DiscoveryListener(listen=("127.0.0.1", 0), query=None, expiry=0.5) as started:
        yield started


def names(listener: DiscoveryListener) -> list[str]:
    """The names of the servers the listener lists."""
    return [server.name for server in listener.servers()]


async def test_beacon_is_heard_and_decoded(listener: DiscoveryListener) -> None:
    """A beacon on loopback shows up as a server with the announced fields and the source address."""
    with Beacon(loopback_config(listener.listen_address[1]), lambda: INFO):
        await wait_until(listener.servers)
    (server,) = listener.servers()
    assert (server.server_id, server.name, server.address, server.users) == (
        INFO.server_id,
        "Lab server",
        "127.0.0.1:7878",
        3,
    )
    assert server.rooms == (("lobby", 2), ("dev", 1))
    assert (server.rtt, server.clock_offset) == (None, None)  # heard, never asked


async def test_one_server_through_two_addresses_is_listed_once(listener: DiscoveryListener) -> None:
    """Two beacons with the same server id from two addresses make one entry with both addresses."""
    port = listener.listen_address[1]
    with (
        Beacon(loopback_config(port, bind_address="127.0.0.1"), lambda: INFO),
        Beacon(loopback_config(port, bind_address="127.0.0.2"), lambda: INFO),
    ):
        await wait_until(lambda: any(len(server.addresses) == 2 for server in listener.servers()))
    (server,) = listener.servers()
    assert set(server.addresses) == {"127.0.0.1", "127.0.0.2"}
    assert server.host in server.addresses


async def test_two_servers_are_listed_by_name(listener: DiscoveryListener) -> None:
    """Different server ids are different servers, sorted by name."""
    port = listener.listen_address[1]
    with (
        Beacon(loopback_config(port), lambda: info(server_id="b", name="Beta")),
        Beacon(loopback_config(port), lambda: info(server_id="a", name="alpha")),
    ):
        await wait_until(lambda: len(listener.servers()) == 2)
    assert names(listener) == ["alpha", "Beta"]


async def test_server_expires_after_the_configured_silence() -> None:
    """A server not heard from for `expiry` seconds leaves the list, and the callback says so."""
    updates: list[list[DiscoveredServer]] = []
    async with DiscoveryListener(
        listen=("127.0.0.1", 0), query=None, expiry=0.3, on_update=updates.append
    ) as listener:
        with Beacon(loopback_config(listener.listen_address[1]), lambda: INFO):
            await wait_until(listener.servers)
        await wait_until(lambda: not listener.servers())
    assert len(updates[0]) == 1
    assert updates[-1] == []


async def test_update_callback_fires_on_change_not_on_every_beacon(listener: DiscoveryListener) -> None:
    """Repeated identical beacons refresh the entry without flooding the callback."""
    updates: list[list[DiscoveredServer]] = []
    listener.on_update = updates.append
    with udp_socket() as sender:
        for _ in range(5):
            sender.sendto(encode_beacon(INFO), listener.listen_address)
        sender.sendto(encode_beacon(info(users=4)), listener.listen_address)
        await wait_until(lambda: listener.stats.received == 6)
    assert [update[0].users for update in updates] == [3, 4]


async def test_query_reply_gives_rtt_and_clock_offset() -> None:
    """A query answered by a beacon on loopback fills in the round-trip time and clock offset."""
    with Beacon(loopback_config(9, interval=3600.0), lambda: INFO) as beacon:
        async with DiscoveryListener(listen=("127.0.0.1", 0), query=beacon.query_address) as listener:
            await wait_until(listener.servers)
            (server,) = listener.servers()
    assert server.rtt is not None
    assert 0 <= server.rtt < 10
    assert server.clock_offset is not None
    assert abs(server.clock_offset) < 10  # same machine, same clock
    assert listener.stats.queries_sent >= 1


async def test_discover_returns_the_servers_heard() -> None:
    """discover(seconds) queries, listens for that long and returns the list."""
    with Beacon(loopback_config(9, interval=3600.0), lambda: INFO) as beacon:
        servers = await discover(0.3, listen=("127.0.0.1", 0), query=beacon.query_address)
    assert [server.name for server in servers] == ["Lab server"]


async def test_reply_to_a_query_we_did_not_send_is_ignored(listener: DiscoveryListener) -> None:
    """A reply whose nonce matches no query of ours (spoofed or stale) changes nothing."""
    with udp_socket() as sender:
        sender.sendto(encode_reply(INFO, nonce=12345, clock_ms=1), listener.listen_address)
        await wait_until(lambda: listener.stats.ignored == 1)
    assert listener.servers() == []


async def test_garbage_and_hostile_datagrams_change_nothing_but_counters(listener: DiscoveryListener) -> None:
    """After every hostile datagram, a valid beacon is still heard and the list holds only it."""
    with udp_socket() as sender:
        for data in HOSTILE.values():
            sender.sendto(data, listener.listen_address)
        sender.sendto(encode_beacon(INFO), listener.listen_address)
        await wait_until(listener.servers)  # datagrams from one socket arrive in order on loopback
    assert listener.stats.malformed == len(HOSTILE)
    assert names(listener) == ["Lab server"]
    server = listener.servers()[0]
    assert all(name.isprintable() for name, _ in server.rooms)


async def test_flood_of_server_ids_keeps_the_list_bounded(listener: DiscoveryListener) -> None:
    """Beacons from more servers than MAX_SERVERS keep the list at MAX_SERVERS entries."""
    flood = MAX_SERVERS * 3
    with udp_socket() as sender:
        for number in range(flood):
            sender.sendto(encode_beacon(info(server_id=f"id-{number}")), listener.listen_address)
        await wait_until(lambda: listener.stats.received == flood)
    assert len(listener.servers()) == MAX_SERVERS
    assert listener.stats.servers_dropped == flood - MAX_SERVERS


async def test_broadcast_on_loopback_reaches_every_listener_on_the_port() -> None:
    """A beacon to 127.255.255.255 reaches two listeners sharing the port (SO_REUSEADDR)."""
    async with DiscoveryListener(listen=("0.0.0.0", 0), query=None) as first:
        port = first.listen_address[1]
        async with DiscoveryListener(listen=("0.0.0.0", port), query=None) as second:
            with Beacon(loopback_config(port, addresses=("127.255.255.255",)), lambda: INFO):
                await wait_until(lambda: first.servers() and second.servers())
    assert names(first) == names(second) == ["Lab server"]


async def test_default_listener_refuses_to_query_under_the_test_guard() -> None:
    """The default query address (LAN broadcast) raises instead of sending while the guard is on."""
    listener = DiscoveryListener(listen=("127.0.0.1", 0))
    with pytest.raises(DestinationRefused, match=r"255\.255\.255\.255"):
        await listener.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = listener.listen_address


async def test_query_address_may_be_a_host_name() -> None:
    """A host name is resolved once, and the guard checks the address it resolved to."""
    with Beacon(loopback_config(9, interval=3600.0), lambda: INFO) as beacon:
        query = ("localhost", beacon.query_address[1])
        async with DiscoveryListener(listen=("127.0.0.1", 0), query=query) as listener:
            await wait_until(listener.servers)
    assert listener.servers()[0].rtt is not None


async def test_run_closes_its_sockets_when_cancelled() -> None:
    """run() (the Textual worker shape) releases the port when its task is cancelled."""
    listener = DiscoveryListener(listen=("127.0.0.1", 0), query=None)
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.ready.wait(), timeout=10)
    port = listener.listen_address[1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", port))  # would raise if the listener still held it


def test_table_expires_one_address_but_keeps_the_server() -> None:
    """A server heard through two addresses keeps the live one when the other goes quiet."""
    table = ServerTable(expiry=10.0)
    beacon = decode_datagram(encode_beacon(INFO))
    assert isinstance(beacon, Announcement)
    table.heard(beacon, "10.0.0.1", now=0.0)
    table.heard(beacon, "10.0.1.1", now=5.0)
    assert table.expire(now=12.0)
    (server,) = table.servers()
    assert (server.host, server.addresses) == ("10.0.1.1", ("10.0.1.1",))
    assert table.expire(now=16.0)
    assert table.servers() == []


def test_table_makes_room_by_dropping_the_server_heard_longest_ago() -> None:
    """When full, a new server replaces the one heard from longest ago."""
    table = ServerTable(max_servers=2)
    for number, now in ((1, 0.0), (2, 1.0), (3, 2.0)):
        datagram = decode_datagram(encode_beacon(info(server_id=f"s{number}", name=f"s{number}")))
        assert isinstance(datagram, Announcement)
        table.heard(datagram, "10.0.0.1", now=now)
    assert [server.server_id for server in table.servers()] == ["s2", "s3"]
    assert table.dropped == 1
