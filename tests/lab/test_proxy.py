"""The fault proxy (`chat_lab.proxy`, docs/lab.md): every switch, against a real chat server on loopback."""

from __future__ import annotations

import time

from chat_server.server import ChatServer
from shared import (
    DEFAULT_LIMITS,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    SENT_BY_SERVER,
    Ack,
    Error,
    FrameReassembler,
    Hello,
    Ping,
    Pong,
    Said,
    Say,
    Welcome,
    decode_body,
)
from tests.server.client import ChatTestClient, wait_until

from .conftest import Front

#: How long "nothing arrives" is watched for: long enough to see a wrong answer on a loaded machine.
QUIET = 0.3


def test_a_clean_proxy_passes_a_login_and_a_ping(front: Front) -> None:
    """With no faults the proxy is invisible: login, ping and pong as directly."""
    with front() as proxy, ChatTestClient(proxy.address) as client:
        assert client.login("alice").nick == "alice"
        client.send(Ping(token=7))
        assert client.recv(Pong).token == 7
        assert proxy.call(lambda p: p.stats_up.bytes_out) == proxy.call(lambda p: p.stats_up.bytes_in)


def test_delay_holds_every_block(front: Front) -> None:
    """`delay` on the way down: the pong comes at least that late."""
    with front(down={"delay": 0.3}) as proxy, ChatTestClient(proxy.address) as client:
        client.login("alice")
        started = time.monotonic()
        client.send(Ping(token=1))
        client.recv(Pong)
        assert time.monotonic() - started >= 0.3


def test_jitter_never_reorders_a_tcp_stream(front: Front) -> None:
    """`jitter` delays each block by a random part, but TCP keeps the order: 30 pongs come back in order."""
    with front(jitter=0.05) as proxy, ChatTestClient(proxy.address) as client:
        client.login("alice")
        for token in range(30):
            client.send(Ping(token=token))
        assert [client.recv(Pong).token for _ in range(30)] == list(range(30))


def test_bandwidth_limits_the_rate(front: Front) -> None:
    """`bandwidth` 8000 bytes a second upstream: 20 messages of 200 characters take their time."""
    with front(up={"bandwidth": 8000}) as proxy, ChatTestClient(proxy.address) as client:
        client.login("alice", rooms=["lab"])
        before = proxy.call(lambda p: p.stats_up.bytes_out)
        started = time.monotonic()
        for n in range(20):
            client.send(Say(room="lab", text="x" * 200, ref=n + 1))
        for n in range(20):
            client.recv(Ack, ref=n + 1)
        sent = proxy.call(lambda p: p.stats_up.bytes_out) - before
        assert sent > 4000
        assert time.monotonic() - started >= 0.8 * sent / 8000


def test_split_cuts_every_write_into_pieces(front: Front) -> None:
    """`split` 1 down and 7 up: every write is that small, and both ends still reassemble the frames."""
    with front(up={"split": 7}, down={"split": 1}) as proxy, ChatTestClient(proxy.address) as client:
        client.login("alice")
        client.send(Ping(token=3))
        assert client.recv(Pong).token == 3
        down = proxy.call(lambda p: p.stats_down)
        up = proxy.call(lambda p: p.stats_up)
        assert down.largest_write == 1
        assert down.writes == down.bytes_out > 20
        assert up.largest_write == 7


def test_coalesce_merges_writes(front: Front) -> None:
    """`coalesce` upstream: five pings sent one by one reach the server in one write, and are all answered."""
    with front(up={"coalesce": 0.5}) as proxy, ChatTestClient(proxy.address) as client:
        client.login("alice")
        writes = proxy.call(lambda p: p.stats_up.writes)
        for token in range(5):
            client.send(Ping(token=token))
        assert [client.recv(Pong).token for _ in range(5)] == list(range(5))
        assert proxy.call(lambda p: p.stats_up.writes) == writes + 1


def test_freezing_one_direction_holds_it_and_lets_the_other_flow(front: Front, server: ChatServer) -> None:
    """`freeze` down: the server still gets alice's message (bob sees it), alice's ack waits; thawed, it
    arrives."""
    with (
        front() as proxy,
        ChatTestClient(proxy.address) as alice,
        ChatTestClient(server.address[:2]) as bob,
    ):
        alice.login("alice", rooms=["lab"])
        bob.login("bob", rooms=["lab"])
        proxy.call(lambda p: p.freeze("down"))
        alice.send(Say(room="lab", text="one way", ref=5))
        assert bob.recv(Said).text == "one way"
        assert not [m for m in alice.drain(QUIET) if isinstance(m, Ack)]
        assert proxy.call(lambda p: p.held("down")) > 0
        proxy.call(lambda p: p.thaw())
        assert alice.recv(Ack, ref=5)


def test_drop_after_closes_the_connection_after_n_bytes(front: Front) -> None:
    """`drop_after` 12 upstream: the server gets 12 bytes of the hello, then both sides are closed."""
    with front(up={"drop_after": 12}) as proxy, ChatTestClient(proxy.address) as client:
        client.hello("alice")
        assert not [m for m in client.wait_closed() if isinstance(m, Welcome)]
        assert proxy.call(lambda p: p.stats_up.bytes_out) == 12


def test_drop_at_closes_each_connection_at_a_time(front: Front) -> None:
    """`drop_at` 0.4 s: the login works, then the connection is closed, no sooner than 0.4 s after it
    opened."""
    with front() as proxy:
        proxy.call(lambda p: setattr(p, "drop_at", 0.4))
        started = time.monotonic()
        with ChatTestClient(proxy.address) as client:
            client.login("alice")
            client.wait_closed()
        assert time.monotonic() - started >= 0.4


def test_corrupt_inverts_one_byte(front: Front) -> None:
    """`corrupt` 4 upstream inverts the first byte of the hello's body (a map becomes a number): the server
    answers with a protocol error and closes."""
    with front(up={"corrupt": 4}) as proxy, ChatTestClient(proxy.address) as client:
        client.hello("alice")
        received = client.wait_closed()
        assert [m for m in received if isinstance(m, Error)]
        assert not [m for m in received if isinstance(m, Welcome)]


def test_discard_throws_bytes_away_and_keeps_the_connection(front: Front) -> None:
    """`discard` down: the login's answers never arrive, the connection stays open, the bytes are counted."""
    with front(down={"discard": True}) as proxy, ChatTestClient(proxy.address) as client:
        client.hello("alice")
        assert client.drain(QUIET) == []
        assert not client.closed
        down = proxy.call(lambda p: p.stats_down)
        assert down.bytes_in > 0
        assert down.bytes_out == 0


def test_refuse_closes_new_connections_and_cut_closes_the_current_ones(front: Front) -> None:
    """`refuse`: a new connection is closed at once; `cut`: a live one is closed."""
    with front() as proxy:
        with ChatTestClient(proxy.address) as client:
            client.login("alice")
            proxy.call(lambda p: setattr(p, "refuse", True))
            with ChatTestClient(proxy.address) as refused:
                assert refused.wait_closed() == []
            proxy.run(proxy.proxy.cut())
            client.wait_closed()
        wait_until(lambda: proxy.call(lambda p: p.connections) == 2, what="both connections counted")


def test_observe_sees_each_sides_bytes_per_connection_before_any_fault(front: Front) -> None:
    """`observe` on the way down gets each connection's number and the server's bytes as they were read, even
    those the faults then throw away: two clients, and each one's welcome in its own stream."""
    seen: dict[int, bytes] = {}

    def observe(number: int, data: bytes) -> None:
        seen[number] = seen.get(number, b"") + data

    with (
        front(down={"observe": observe, "discard": True}) as proxy,
        ChatTestClient(proxy.address) as alice,
        ChatTestClient(proxy.address) as bob,
    ):
        alice.send(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick="alice"))
        bob.send(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick="bob"))
        wait_until(lambda: b"alice" in seen.get(1, b"") and b"bob" in seen.get(2, b""), what="the welcomes")
        assert proxy.call(lambda p: p.stats_down.bytes_out) == 0
    frames = {number: FrameReassembler(1 << 20) for number in seen}
    for number, data in seen.items():
        frames[number].feed(data)
    welcomes = {
        number: decode_body(next(frames[number].frames()), SENT_BY_SERVER, DEFAULT_LIMITS) for number in seen
    }
    assert {number: (w.nick if isinstance(w, Welcome) else w) for number, w in welcomes.items()} == {
        1: "alice",
        2: "bob",
    }
