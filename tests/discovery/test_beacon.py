"""The server's beacon thread on loopback: announcing, answering queries, refusing to amplify, rate limits."""

from __future__ import annotations

import argparse
import dataclasses
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from chat_server.beacon import config as beaconconfig
from chat_server.beacon.beacon import Beacon, QueryLimiter, jittered_interval, load_or_create_server_id
from chat_server.beacon.config import (
    DEFAULT_BEACON_ADDRESS,
    DEFAULT_BEACON_INTERVAL,
    DEFAULT_BEACON_PORT,
    BeaconConfig,
    add_beacon_arguments,
    beacon_config_from_args,
    beacon_config_from_table,
)
from shared.discovery import (
    DEFAULT_DISCOVERY_PORT,
    Announcement,
    BeaconInfo,
    DestinationRefused,
    Query,
    Reply,
    decode_datagram,
    encode_query,
)
from shared.schema import to_wire
from tests.waiting import wait_until_sync

from .helpers import INFO, info, loopback_config, udp_socket
from .hostile import HOSTILE


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A raw UDP socket on loopback standing in for a LAN listener."""
    with udp_socket() as sock:
        yield sock


def receive(sock: socket.socket) -> Announcement | Query | Reply:
    """The next datagram on `sock`, decoded (fails the test after the socket's timeout)."""
    data, _ = sock.recvfrom(4096)
    return decode_datagram(data)


def test_beacon_announces_to_its_target(listener: socket.socket) -> None:
    """A started beacon sends decodable beacons to the configured address, again and again."""
    with Beacon(loopback_config(listener.getsockname()[1]), lambda: INFO):
        first, second = receive(listener), receive(listener)
    assert isinstance(first, Announcement)
    assert isinstance(second, Announcement)
    assert (first.id, first.name, first.port, first.users) == (INFO.server_id, "Lab server", 7878, 3)


def test_each_beacon_takes_a_fresh_snapshot(listener: socket.socket) -> None:
    """The beacon calls the snapshot for every beacon, so counts follow the server."""
    users = iter(range(1000))
    with Beacon(loopback_config(listener.getsockname()[1]), lambda: info(users=next(users))):
        counts = [receive(listener).users for _ in range(3)]  # type: ignore[union-attr]
    assert counts == sorted(set(counts))
    assert len(counts) == 3


def test_a_failing_snapshot_does_not_stop_the_beacon(listener: socket.socket) -> None:
    """An exception in the server's snapshot is logged; the next beacon goes out."""
    calls = {"n": 0}

    def flaky() -> BeaconInfo:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("server bug")
        return INFO

    with Beacon(loopback_config(listener.getsockname()[1]), flaky):
        assert isinstance(receive(listener), Announcement)
    assert calls["n"] >= 2


def test_beacon_sends_to_every_configured_address() -> None:
    """With two addresses, each gets the beacons (e.g. broadcast and a multicast group)."""
    with udp_socket("127.0.0.1") as one, udp_socket_on("127.0.0.2", one.getsockname()[1]) as other:
        config = loopback_config(one.getsockname()[1], addresses=("127.0.0.1", "127.0.0.2"))
        with Beacon(config, lambda: INFO):
            assert isinstance(receive(one), Announcement)
            assert isinstance(receive(other), Announcement)


def udp_socket_on(host: str, port: int) -> socket.socket:
    """A UDP socket bound to `host`:`port` with a receive timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.settimeout(10.0)
    return sock


def test_stop_is_prompt_even_with_a_long_interval() -> None:
    """stop() wakes the thread at once instead of waiting for the next beacon."""
    beacon = Beacon(loopback_config(9, interval=3600.0), lambda: INFO)
    beacon.start()
    beacon.stop()  # joins with a bounded wait; without the wake-up the thread would still be asleep
    assert not any(thread.name == "mpchat-beacon" for thread in threading.enumerate())


def test_a_stopped_beacon_can_start_again(listener: socket.socket) -> None:
    """start() after stop() announces again (a server that turns its beacon off and on)."""
    beacon = Beacon(loopback_config(listener.getsockname()[1], interval=3600.0), lambda: INFO)
    with beacon:
        assert isinstance(receive(listener), Announcement)
    with beacon:
        assert isinstance(receive(listener), Announcement)


def test_stop_twice_and_restart_refused() -> None:
    """stop() is idempotent; starting a started beacon is a programming error."""
    beacon = Beacon(loopback_config(9, interval=3600.0), lambda: INFO)
    with beacon, pytest.raises(RuntimeError):
        beacon.start()
    beacon.stop()


# -- Queries -----------------------------------------------------------------------------------------------


def quiet_beacon(**changes: object) -> Beacon:
    """A beacon that sends its one beacon to a discard port and then only answers queries."""
    return Beacon(loopback_config(9, interval=3600.0, **changes), lambda: INFO)  # type: ignore[arg-type]


def test_query_gets_a_reply_echoing_the_nonce_with_the_server_clock() -> None:
    """A padded query is answered straight back, with its nonce and the server's clock in ms."""
    with quiet_beacon() as beacon, udp_socket() as client:
        before = int(time.time() * 1000)
        client.sendto(encode_query(42), beacon.query_address)
        reply = receive(client)
        after = int(time.time() * 1000)
    assert isinstance(reply, Reply)
    assert reply.nonce == 42
    assert before <= reply.clock <= after
    assert (reply.id, reply.rooms) == (INFO.server_id, (("lobby", 2), ("dev", 1)))


def test_undersized_query_gets_no_answer() -> None:
    """A query smaller than the reply would be is not answered (no amplification)."""
    small = msgpack.packb(to_wire(Query(proto="mpchat-discovery", version=1, nonce=1)), use_bin_type=True)
    with quiet_beacon() as beacon, udp_socket() as client:
        client.sendto(small, beacon.query_address)
        client.sendto(encode_query(2), beacon.query_address)
        reply = receive(client)  # datagrams are handled in order: an answer to 1 would come first
        wait_until_sync(lambda: beacon.stats.undersized == 1)
    assert isinstance(reply, Reply)
    assert reply.nonce == 2


def test_burst_from_one_source_is_rate_limited() -> None:
    """A burst of queries from one address gets `query_burst` replies, the rest are dropped."""
    with quiet_beacon(query_burst=3, query_rate=0.001) as beacon, udp_socket(timeout=0.0) as client:
        for nonce in range(10):
            client.sendto(encode_query(nonce), beacon.query_address)
        wait_until_sync(lambda: beacon.stats.replies_sent + beacon.stats.rate_limited == 10)
        replies = drain(client)
    assert (beacon.stats.replies_sent, beacon.stats.rate_limited) == (3, 7)
    assert sorted(reply.nonce for reply in replies) == [0, 1, 2]  # type: ignore[union-attr]


def test_overall_rate_limit_covers_all_sources() -> None:
    """Many sources together get no more than the overall burst."""
    config = {"query_burst": 100, "reply_burst": 4, "reply_rate": 0.001}
    with quiet_beacon(**config) as beacon:
        clients = [udp_socket(f"127.0.0.{n}", timeout=0.0) for n in range(1, 5)]
        try:
            for client in clients:
                for nonce in range(3):
                    client.sendto(encode_query(nonce), beacon.query_address)
            wait_until_sync(lambda: beacon.stats.replies_sent + beacon.stats.rate_limited == 12)
            received = sum(len(drain(client)) for client in clients)
        finally:
            for client in clients:
                client.close()
    assert (beacon.stats.replies_sent, beacon.stats.rate_limited, received) == (4, 8, 4)


def drain(sock: socket.socket) -> list[Announcement | Query | Reply]:
    """Every datagram already queued on the non-blocking `sock` (loopback delivery is immediate)."""
    datagrams = []
    while True:
        try:
            datagrams.append(decode_datagram(sock.recv(4096)))
        except BlockingIOError:
            return datagrams


def test_malformed_and_foreign_datagrams_are_counted_and_ignored() -> None:
    """Garbage, hostile datagrams and other servers' beacons get no answer; the next query does."""
    with quiet_beacon() as beacon, udp_socket() as client:
        for data in HOSTILE.values():
            client.sendto(data, beacon.query_address)
        client.sendto(encode_query(99), beacon.query_address)
        reply = receive(client)
        assert beacon.stats.malformed == len(HOSTILE)
    assert isinstance(reply, Reply)
    assert reply.nonce == 99


def test_query_limiter_refills_with_the_clock() -> None:
    """Per-source tokens come back at `query_rate` per second (injected clock, no waiting)."""
    now = [0.0]
    limiter = QueryLimiter(BeaconConfig(query_burst=2, query_rate=1.0), clock=lambda: now[0])
    assert [limiter.allow("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert limiter.allow("10.0.0.2")
    now[0] = 0.99
    assert not limiter.allow("10.0.0.1")
    now[0] = 1.0
    assert limiter.allow("10.0.0.1")


def test_query_limiter_forgets_the_oldest_source_beyond_its_bound() -> None:
    """The per-source table holds at most `max_query_sources` addresses."""
    limiter = QueryLimiter(BeaconConfig(query_burst=1, max_query_sources=2), clock=lambda: 0.0)
    assert limiter.allow("a")
    assert limiter.allow("b")
    assert limiter.allow("c")  # "a" is forgotten to make room...
    assert limiter.allow("a")  # ...so it starts with a full bucket again
    assert not limiter.allow("c")


# -- Safety guard ------------------------------------------------------------------------------------------


def test_default_config_refuses_to_start_under_the_test_guard() -> None:
    """The default target (LAN broadcast) raises instead of sending while the guard is on."""
    beacon = Beacon(BeaconConfig(enabled=True), lambda: INFO)
    with pytest.raises(DestinationRefused, match=r"255\.255\.255\.255"):
        beacon.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = beacon.query_address  # nothing was bound
    beacon.stop()


def test_no_reply_leaves_for_a_non_loopback_source_under_the_guard() -> None:
    """Even a reply (to a query's source address) is checked against the guard before it is sent."""
    with quiet_beacon() as beacon:
        # 0.0.0.0 is not loopback for the guard, yet stays on this host should the guard ever fail.
        assert not beacon._send(b"reply", ("0.0.0.0", 9))
        assert beacon.stats.send_errors == 1


def test_multicast_target_refused_under_the_test_guard() -> None:
    """A multicast group is not loopback either."""
    with pytest.raises(DestinationRefused):
        Beacon(loopback_config(9, addresses=("127.0.0.1", "239.255.78.79")), lambda: INFO).start()


# -- Configuration -----------------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    """Broadcast on the discovery port every few seconds, off unless asked for."""
    config = BeaconConfig()
    assert (config.enabled, config.addresses, config.port) == (False, (DEFAULT_BEACON_ADDRESS,), 7879)
    assert DEFAULT_BEACON_PORT == DEFAULT_DISCOVERY_PORT
    assert 2.0 <= config.interval == DEFAULT_BEACON_INTERVAL <= 10.0
    assert 0 < config.jitter < 1


@pytest.mark.parametrize(
    "changes",
    [
        {"addresses": ()},
        {"addresses": ("lan.example",)},
        {"addresses": ("::1::",)},
        {"bind_address_v6": "127.0.0.1"},
        {"port": 65536},
        {"interval": 0.0},
        {"jitter": 1.0},
        {"query_burst": 0},
        {"interface": "eth0"},
    ],
)
def test_bad_config_is_refused(changes: dict[str, object]) -> None:
    """Each invalid setting raises ValueError with the setting's name or value."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        BeaconConfig(**changes)  # type: ignore[arg-type]


def test_beacon_interval_is_jittered_within_bounds() -> None:
    """Intervals spread over interval ± jitter, so servers started together drift apart."""
    config = BeaconConfig(interval=5.0, jitter=0.2)
    delays = [jittered_interval(config, random.Random(seed)) for seed in range(200)]
    assert all(4.0 <= delay <= 6.0 for delay in delays)
    assert max(delays) - min(delays) > 1.0
    assert {jittered_interval(BeaconConfig(interval=5.0, jitter=0.0), random.Random())} == {5.0}


def test_every_setting_has_its_type_checked() -> None:
    """The type table covers exactly the fields of BeaconConfig (a new field cannot skip the check)."""
    assert set(beaconconfig._FIELD_TYPES) == {field.name for field in dataclasses.fields(BeaconConfig)}


def test_config_file_table_builds_a_config() -> None:
    """A ``[beacon]`` table with field names (lists for addresses) builds the same config."""
    table = {"enabled": True, "addresses": ["239.255.78.79"], "interval": 2.0, "interface": "192.168.1.5"}
    assert beacon_config_from_table(table) == BeaconConfig(
        enabled=True, addresses=("239.255.78.79",), interval=2.0, interface="192.168.1.5"
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"intervall": 2.0}, "unknown beacon setting"),
        ({"interval": "2"}, "wrong type"),
        ({"enabled": "yes"}, "wrong type"),
        ({"port": True}, "wrong type"),
        ({"port": -1}, "port"),
    ],
)
def test_bad_config_file_table_is_refused(table: dict[str, object], message: str) -> None:
    """Misspelled keys and wrong types are errors, never silently ignored."""
    with pytest.raises(ValueError, match=message):
        beacon_config_from_table(table)


def parse(*argv: str) -> argparse.Namespace:
    """Parse `argv` with only the beacon options."""
    parser = argparse.ArgumentParser()
    add_beacon_arguments(parser)
    return parser.parse_args(argv)


def test_command_line_options_apply_on_top_of_the_base_config() -> None:
    """--beacon, --beacon-address (repeatable), --beacon-port and --beacon-interval set their fields."""
    args = parse(
        "--beacon",
        "--beacon-address",
        "255.255.255.255",
        "--beacon-address",
        "239.255.78.79",
        "--beacon-port",
        "9999",
        "--beacon-interval",
        "2.5",
    )
    config = beacon_config_from_args(args, BeaconConfig(jitter=0.1))
    assert (config.enabled, config.addresses, config.port, config.interval, config.jitter) == (
        True,
        ("255.255.255.255", "239.255.78.79"),
        9999,
        2.5,
        0.1,
    )


def test_no_options_keep_the_base_config() -> None:
    """Without options the base (e.g. the config file's values) is kept, including `enabled`."""
    base = BeaconConfig(enabled=True, port=1234)
    assert beacon_config_from_args(parse(), base) == base


def test_bad_option_value_raises_value_error() -> None:
    """A bad interval from the command line is refused like one from a config file."""
    with pytest.raises(ValueError, match="interval"):
        beacon_config_from_args(parse("--beacon-interval", "0"))


def test_server_id_is_created_once_and_then_kept(tmp_path: Path) -> None:
    """The id file is created on first use and read back afterwards (a stable id across restarts)."""
    path = tmp_path / "data" / "server-id"
    first = load_or_create_server_id(path)
    assert load_or_create_server_id(path) == first
    assert path.read_text(encoding="ascii").strip() == first


def test_corrupt_server_id_file_is_replaced(tmp_path: Path) -> None:
    """A file holding something that is not a token gets a fresh id."""
    path = tmp_path / "server-id"
    path.write_bytes(b"\x00\xff not a token")
    server_id = load_or_create_server_id(path)
    assert len(server_id) == 32
    assert load_or_create_server_id(path) == server_id
