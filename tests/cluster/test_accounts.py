"""Registered nicks across the cluster: a registration, a password change and an unregistration made on one
server hold on the other (the log carries the hash, every server's copy checks logins), and of two
registrations of one nick in the log the first wins on every server."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import msgpack

from chat_server.cluster.config import ClusterConfig
from chat_server.cluster.link import NatsLink
from chat_server.passwords import ScryptCost, hash_password
from chat_server.server import ChatServer
from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Error, Hello, Register, Registration, Unregister, Welcome
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]

#: A scrypt cost that takes microseconds (the defaults take tens of milliseconds per hash).
CHEAP: dict[str, Any] = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}


def attempt(server: ChatServer, nick: str, password: str | None = None) -> Welcome | Error:
    """One login with `password` for the nick: the welcome, or the error refusing it."""
    with ChatTestClient(server.address) as client:
        client.send(
            Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick, rooms=(), nick_password=password)
        )
        answer = client.recv_until(lambda m: isinstance(m, Welcome | Error))
        assert isinstance(answer, Welcome | Error)
        return answer


def refused_as_registered(server: ChatServer, nick: str, password: str | None = None) -> bool:
    """True if a login with `password` is refused because the nick is registered (to someone else)."""
    answer = attempt(server, nick, password)
    return isinstance(answer, Error) and answer.code == "nick_registered"


def log_in(server: ChatServer, nick: str, password: str | None = None) -> ChatTestClient:
    """A logged-in client (the nick freed elsewhere within a round of the nick bucket: waited for)."""
    clients: list[ChatTestClient] = []

    def welcomed_here() -> bool:
        client = ChatTestClient(server.address)
        client.send(
            Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick, rooms=(), nick_password=password)
        )
        if isinstance(client.recv_until(lambda m: isinstance(m, Welcome | Error)), Welcome):
            clients.append(client)
            return True
        client.close()
        return False

    wait_until(welcomed_here, what=f"{nick} logged in")
    return clients[0]


def publish_records(config: ClusterConfig, records: list[dict[str, Any]]) -> None:
    """Publish `records` into the cluster's log, back to back, as other servers would write them."""
    link = NatsLink(config)
    link.connect()
    try:

        async def publish(js: Any) -> None:
            for record in records:
                await js.publish(config.log_subject, msgpack.packb(record))

        link.run(publish, 10.0)
    finally:
        link.stop()


def register(client: ChatTestClient, password: str, old: str | None = None, ref: int = 1) -> Registration:
    """Register (or change the password of) the client's nick; the answer."""
    client.send(Register(password=password, old_password=old, ref=ref))
    return client.recv(Registration, ref=ref)


def test_a_registered_nicks_password_works_on_both_servers(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one", **CHEAP)
    two = start_cluster_server("two", **CHEAP)
    with log_in(one, "alice") as alice:
        assert register(alice, "right").registered
    # Server two's copy has the hash once it applied the record: the nick needs the password there too.
    wait_until(lambda: refused_as_registered(two, "alice"), what="two knows alice is registered")
    for server in (one, two):
        assert refused_as_registered(server, "alice", "wrong")
    log_in(two, "Alice", "right").close()
    log_in(one, "alice", "right").close()


def test_a_password_change_and_an_unregistration_hold_on_both_servers(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one", **CHEAP)
    two = start_cluster_server("two", **CHEAP)
    with log_in(one, "alice") as alice:
        assert register(alice, "first").registered
        assert register(alice, "second", old="first", ref=2).registered
    wait_until(lambda: refused_as_registered(two, "alice", "first"), what="two knows the new password")
    with log_in(two, "alice", "second") as alice:
        alice.send(Unregister(password="second", ref=3))
        assert not alice.recv(Registration, ref=3).registered
    # No longer registered on server one either: the nick is anyone's, without a password.
    log_in(one, "alice").close()


def test_of_two_registrations_of_one_nick_the_first_in_the_log_wins_everywhere(
    start_cluster_server: Callable[..., ChatServer], cluster_config: ClusterConfig
) -> None:
    one = start_cluster_server("one", **CHEAP)
    two = start_cluster_server("two", **CHEAP)
    # Two servers registering "alice" at once: both checked "not registered" and published. The records are
    # written here as two other servers would write them, back to back, so both really are in the log.
    cost = ScryptCost(n=16, r=1, p=1)
    records = []
    for origin, password in (("east", "first"), ("west", "second")):
        stored = hash_password(password, cost)
        records.append(
            {
                "k": "register",
                "o": origin,
                "t": 1,
                "ts": 1,
                "nick": "alice",
                "nick_key": "alice",
                "key": "alice",
                "salt": stored.salt,
                "hash": stored.digest,
                "cost": [cost.n, cost.r, cost.p],
                "expected": None,
            }
        )
    publish_records(cluster_config, records)
    for server in (one, two):
        applied = functools.partial(refused_as_registered, server, "alice")
        wait_until(applied, what="the registration applied")
        assert refused_as_registered(server, "alice", "second")
        log_in(server, "alice", "first").close()


def test_a_registration_that_lost_the_race_gets_the_single_servers_error(
    start_cluster_server: Callable[..., ChatServer], cluster_config: ClusterConfig
) -> None:
    one = start_cluster_server("one", **CHEAP)
    two = start_cluster_server("two", **CHEAP)
    with log_in(two, "alice") as alice:
        # Another server's registration of alice reaches the log first ...
        stored = hash_password("theirs", ScryptCost(n=16, r=1, p=1))
        record = {
            "k": "register",
            "o": "elsewhere",
            "t": 1,
            "ts": 1,
            "nick": "alice",
            "nick_key": "alice",
            "key": "alice",
            "salt": stored.salt,
            "hash": stored.digest,
            "cost": [16, 1, 1],
            "expected": None,
        }
        publish_records(cluster_config, [record])
        # ... so this one is refused, whether server two sees the other first (when it checks) or only when
        # it applies its own record after it: the log's order decides.
        alice.send(Register(password="mine", ref=1))
        assert alice.error("nick_registered").ref == 1
    for server in (one, two):
        wait_until(functools.partial(refused_as_registered, server, "alice", "mine"), what="mine refused")
        log_in(server, "alice", "theirs").close()
