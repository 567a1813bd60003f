"""The cluster's servers announce each other: `welcome.servers` lists the others (the servers bucket, a
JetStream key-value bucket with a lease), and a server that stops is no longer listed."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from chat_server.server import ChatServer
from shared.addresses import host_port
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]

_nicks = (f"probe{n}" for n in itertools.count())


def announced(server: ChatServer) -> tuple[str, ...]:
    """The `servers` of a fresh login's welcome on `server`."""
    with ChatTestClient(server.address) as probe:
        return probe.login(next(_nicks), []).servers


def test_welcome_lists_the_other_servers(start_cluster_server: Callable[..., ChatServer]) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    three = start_cluster_server("three")
    address = {server: host_port(*server.address) for server in (one, two, three)}
    wait_until(
        lambda: announced(one) == tuple(sorted((address[two], address[three]))), what="one: two, three"
    )
    assert announced(two) == tuple(sorted((address[one], address[three])))
    three.stop()  # a clean stop leaves the bucket at once
    wait_until(lambda: announced(one) == (address[two],), what="three no longer announced")


def test_single_server_welcome_lists_no_servers(make_single: Callable[..., ChatServer]) -> None:
    with ChatTestClient(make_single().address) as alice:
        assert alice.login("alice", []).servers == ()
