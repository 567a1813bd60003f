"""The fault proxy's UDP mode (`chat_lab.proxy.UdpFaultProxy`), against the server's real beacon on loopback:
the discovery query is the time query (the reply carries the server's clock)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chat_lab.proxy import ProxyThread, UdpFaultProxy
from chat_server.beacon.beacon import Beacon
from shared.discovery import Reply, decode_datagram, encode_query
from tests.discovery.helpers import INFO, loopback_config, udp_socket
from tests.server.client import wait_until

#: How long "nothing arrives" is watched for.
QUIET = 0.3


@pytest.fixture
def beacon() -> Iterator[Beacon]:
    """A real beacon answering queries on an ephemeral loopback port, with rate limits out of the way."""
    with udp_socket() as sink:
        config = loopback_config(
            sink.getsockname()[1],
            interval=3600.0,
            query_rate=1000.0,
            query_burst=1000,
            reply_rate=1000.0,
            reply_burst=1000,
        )
        with Beacon(config, lambda: INFO) as running:
            yield running


def through(beacon: Beacon, **faults: Any) -> ProxyThread[UdpFaultProxy]:
    """A UDP proxy in front of the beacon with these faults on both ways (started by `with`)."""
    proxy = UdpFaultProxy(beacon.query_address, seed=3)
    for name, value in faults.items():
        setattr(proxy.to_server, name, value)
        setattr(proxy.to_client, name, value)
    return ProxyThread(proxy)


def ask(sock: socket.socket, address: tuple[str, int], nonce: int) -> None:
    sock.sendto(encode_query(nonce), address)


def replies(sock: socket.socket, quiet: float = QUIET) -> list[Reply]:
    """Every reply that arrives until nothing has come for `quiet` seconds."""
    found: list[Reply] = []
    sock.settimeout(quiet)
    while True:
        try:
            data = sock.recv(2048)
        except TimeoutError:
            return found
        reply = decode_datagram(data)
        assert isinstance(reply, Reply)
        found.append(reply)


def test_a_query_and_its_reply_pass_the_proxy(beacon: Beacon) -> None:
    """The time query through a clean proxy: one reply, with our nonce and the server's clock."""
    with through(beacon) as proxy, udp_socket() as sock:
        ask(sock, proxy.address, 41)
        [reply] = replies(sock)
        assert reply.nonce == 41
        assert abs(reply.clock - time.time() * 1000) < 10_000


def test_loss_loses_datagrams(beacon: Beacon) -> None:
    """`loss` 1: no query reaches the beacon, no reply comes."""
    with through(beacon, loss=1.0) as proxy, udp_socket() as sock:
        ask(sock, proxy.address, 1)
        assert replies(sock) == []
        assert proxy.call(lambda p: p.stats_up.datagrams_lost) == 1
        assert beacon.stats.replies_sent == 0


def test_duplicate_sends_twice(beacon: Beacon) -> None:
    """`duplicate` 1 (both ways): the query arrives twice, and each of the two replies twice."""
    with through(beacon, duplicate=1.0) as proxy, udp_socket() as sock:
        ask(sock, proxy.address, 2)
        assert [r.nonce for r in replies(sock)] == [2, 2, 2, 2]


def test_delay_holds_each_datagram(beacon: Beacon) -> None:
    """`delay` 0.2 s each way: the reply comes 0.4 s after the query at the earliest."""
    with through(beacon, delay=0.2) as proxy, udp_socket() as sock:
        started = time.monotonic()
        ask(sock, proxy.address, 3)
        sock.settimeout(5)
        sock.recv(2048)
        assert time.monotonic() - started >= 0.4


def test_jitter_reorders_datagrams(beacon: Beacon) -> None:
    """`jitter` 0.15 s: twenty queries sent in order are answered out of order (UDP keeps no order)."""
    with through(beacon, jitter=0.15) as proxy, udp_socket() as sock:
        for nonce in range(20):
            ask(sock, proxy.address, nonce)
        nonces = [r.nonce for r in replies(sock, quiet=1.0)]
        assert sorted(nonces) == list(range(20))
        assert nonces != list(range(20))


def test_corrupt_breaks_a_datagram(beacon: Beacon) -> None:
    """`corrupt` 0 upstream: the query's first byte is inverted; the beacon counts it malformed, no reply."""
    proxy = UdpFaultProxy(beacon.query_address)
    proxy.to_server.corrupt = 0
    with ProxyThread(proxy) as running, udp_socket() as sock:
        ask(sock, running.address, 4)
        assert replies(sock) == []
        assert beacon.stats.malformed == 1


def test_freeze_holds_datagrams_until_thawed(beacon: Beacon) -> None:
    """`freeze`: the query waits in the proxy; `thaw` sends it, and the reply comes."""
    with through(beacon) as proxy, udp_socket() as sock:
        proxy.call(lambda p: p.freeze("up"))
        ask(sock, proxy.address, 5)
        assert replies(sock) == []
        proxy.call(lambda p: p.thaw())
        assert [r.nonce for r in replies(sock)] == [5]


def test_discard_drops_the_answers(beacon: Beacon) -> None:
    """`discard` down: the beacon answers, the client never sees it."""
    proxy = UdpFaultProxy(beacon.query_address)
    proxy.to_client.discard = True
    with ProxyThread(proxy) as running, udp_socket() as sock:
        ask(sock, running.address, 6)
        assert replies(sock) == []
        assert beacon.stats.replies_sent == 1


def test_thawing_one_way_sends_only_what_was_held_that_way(beacon: Beacon) -> None:
    """Both ways frozen, a query held going up: `thaw down` sends nothing, `thaw up` sends the query, and the
    reply passes; every datagram is counted in once."""
    with through(beacon) as proxy, udp_socket() as sock:
        proxy.call(lambda p: p.freeze("both"))
        ask(sock, proxy.address, 7)
        wait_until(lambda: proxy.call(lambda p: p.stats_up.bytes_in) > 0)
        proxy.call(lambda p: p.thaw("down"))
        assert replies(sock) == []
        assert beacon.stats.replies_sent == 0
        proxy.call(lambda p: p.thaw("up"))
        assert [r.nonce for r in replies(sock)] == [7]
        up_in, up_out = proxy.call(lambda p: (p.stats_up.bytes_in, p.stats_up.bytes_out))
        assert up_in == up_out == len(encode_query(7))


def test_observe_sees_each_senders_datagrams(beacon: Beacon) -> None:
    """`observe` on the way up numbers the senders in the order they were heard and sees each query, even one
    the proxy then loses."""
    seen: list[tuple[int, bytes]] = []
    proxy = UdpFaultProxy(beacon.query_address)
    proxy.to_server.observe = lambda number, data: seen.append((number, data))
    proxy.to_server.loss = 1.0
    with ProxyThread(proxy) as running, udp_socket() as first, udp_socket() as second:
        ask(first, running.address, 1)
        wait_until(lambda: len(seen) == 1)
        ask(second, running.address, 2)
        wait_until(lambda: len(seen) == 2)  # a new sender's first datagram waits for its socket to open
        ask(first, running.address, 3)
        wait_until(lambda: len(seen) == 3)
    assert seen == [(1, encode_query(1)), (2, encode_query(2)), (1, encode_query(3))]
    assert beacon.stats.replies_sent == 0
