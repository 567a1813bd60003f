"""Abuse limits beyond the per-connection request bucket, at and just past each bound, over real TCP:

* new connections per address per minute (`max_connections_per_minute`), refused at the acceptor with
  `too_many_connections` and a `retry_after_ms`, not counted as clients, while another address gets in;
* join floods (`rate_joins_burst` / `rate_joins`) and nick-change floods (`rate_nicks_burst` / `rate_nicks`,
  which also covers `register` and `unregister`): refused with `rate_limited` (not fatal), and counted
  towards `flood_refusals` like every other refusal.
"""

from __future__ import annotations

from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Ack, ChangeNick, Error, History, Join, NickChanged, Register, Say, Unregister
from tests.server.client import ChatTestClient, wait_until

from .canary import Canary
from .test_addresses import CANARY_SOURCES, refusal

MakeServer = Callable[..., ChatServer]
StartCanary = Callable[..., Canary]


def test_new_connections_per_minute_per_address(make_server: MakeServer, start_canary: StartCanary) -> None:
    """3 connections a minute from 127.0.0.2 are admitted (each logs in and leaves), the 4th is refused with
    too_many_connections (fatal, retry_after_ms about 20 s) and never counted; 127.0.0.3 still gets in."""
    server = make_server(max_connections_per_minute=3)
    canary = start_canary(server, sources=CANARY_SOURCES)
    for n in range(3):
        with ChatTestClient(server.address, source="127.0.0.2") as client:
            client.login(f"two-{n}")
    with ChatTestClient(server.address, source="127.0.0.2") as refused:
        errors = [m for m in refused.wait_closed() if isinstance(m, Error)]
    assert [(e.code, e.fatal) for e in errors] == [("too_many_connections", True)]
    assert "new connections a minute" in errors[0].message
    assert errors[0].retry_after_ms is not None
    assert 1_000 < errors[0].retry_after_ms <= 20_000
    wait_until(lambda: server.stats().connections == 2, 5, "only the canary's connections to remain")
    with ChatTestClient(server.address, source="127.0.0.3") as other:
        assert other.login("three").nick == "three"
    assert refusal(server, "127.0.0.2") == [("too_many_connections", True)]  # still refused, still unchecked
    canary.wait_rounds(3)
    canary.stop()


def test_join_flood_is_refused_past_its_burst(make_server: MakeServer) -> None:
    """With rate_joins_burst 3 (and a negligible refill), 3 joins are answered, the 4th is rate_limited (not
    fatal, with retry_after_ms); other requests still go through."""
    server = make_server(rate_joins=0.001, rate_joins_burst=3)
    with ChatTestClient(server.address) as client:
        client.login("joiner", rooms=[])
        for ref, room in enumerate(("r1", "r2", "r3"), start=1):
            client.send(Join(room=room, ref=ref))
            client.recv(History, ref=ref)
        client.send(Join(room="r4", ref=4))
        error = client.recv(Error, ref=4)
        assert (error.code, error.fatal) == ("rate_limited", False)
        assert error.retry_after_ms is not None
        assert error.retry_after_ms > 100_000
        client.send(Say(room="r1", text="still here", ref=5))
        client.recv(Ack, ref=5)


def test_nick_flood_is_refused_past_its_burst_and_ends_in_excess_flood(make_server: MakeServer) -> None:
    """With rate_nicks_burst 2, two nick changes pass and the third is rate_limited; refusals count towards
    flood_refusals (3): the fourth refusal in a row ends the connection with excess_flood."""
    server = make_server(
        rate_nicks=0.001, rate_nicks_burst=2, rate_messages=0.001, rate_burst=100, flood_refusals=3
    )
    with ChatTestClient(server.address) as client:
        client.login("n0", rooms=[])
        for ref in (1, 2):
            client.send(ChangeNick(nick=f"n{ref}", ref=ref))
            assert client.recv(NickChanged).new == f"n{ref}"
        for ref in (3, 4, 5):
            client.send(ChangeNick(nick=f"n{ref}", ref=ref))
            error = client.recv(Error, ref=ref)
            assert (error.code, error.fatal) == ("rate_limited", False)
        client.send(ChangeNick(nick="n6", ref=6))
        final = [(m.code, m.fatal) for m in client.wait_closed() if isinstance(m, Error)]
        assert final == [("excess_flood", True)]


def test_register_and_unregister_share_the_nick_bucket(make_server: MakeServer) -> None:
    """`register` costs a password hash, so it spends from the nick bucket too: with rate_nicks_burst 1, one
    nick change leaves no room for a registration."""
    server = make_server(rate_nicks=0.001, rate_nicks_burst=1, scrypt_n=16, scrypt_r=1, scrypt_p=1)
    with ChatTestClient(server.address) as client:
        client.login("m0", rooms=[])
        client.send(ChangeNick(nick="m1", ref=1))
        client.recv(NickChanged)
        client.send(Register(password="pw", ref=2))
        assert client.recv(Error, ref=2).code == "rate_limited"
        client.send(Unregister(password="pw", ref=3))
        assert client.recv(Error, ref=3).code == "rate_limited"
