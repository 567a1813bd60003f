"""Refusals at accept are always readable.

`too_many_connections` and `server_full` are sent by the acceptor before the client speaks. A client that
writes its `hello` at once and only then reads must still find the error frame (docs/protocol.md,
"Connection life"): the server half-closes and reads what the client sends for `refusal_linger` seconds
instead of closing with unread input, which makes the kernel send a reset that overtakes (and destroys) a
frame still on its way. Loopback delivers a frame before the reset can catch it, so the races run in a
network namespace whose loopback slows the server's data segments down (tests/server/slow_link.py).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Error, Hello, encode
from tests.server.client import ChatTestClient, wait_until

from .slow_link import run_in_namespace, slow_data_from

MakeConfig = Callable[..., ServerConfig]
MakeServer = Callable[..., ChatServer]

#: How many times each race is run.
ATTEMPTS = 50


def hello_first_then_read(address: tuple[str, int], nick: str) -> list[tuple[str, bool]]:
    """Connect, write a full `hello` at once, only then read until the server closes; the errors read."""
    client = ChatTestClient(address)
    try:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.sock.sendall(encode(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick)))
        received = client.wait_closed(10)
    finally:
        client.close()
    return [(m.code, m.fatal) for m in received if isinstance(m, Error)]


def refusals_read(config: ServerConfig, expected: str) -> None:
    """In a slow-link namespace: one client in, then `ATTEMPTS` hello-first clients all read `expected`."""

    def body(namespace: str) -> None:
        with ChatServer(config) as server:
            slow_data_from(namespace, server.address[1])
            with ChatTestClient(server.address) as first:
                first.login("first")
                for n in range(ATTEMPTS):
                    assert hello_first_then_read(server.address, f"late{n}") == [(expected, True)], n
                wait_until(lambda: server.stats().lingering == 0, 10, "the refused sockets closed")

    run_in_namespace(body)


def test_too_many_connections_is_readable_after_a_hello(make_config: MakeConfig) -> None:
    """max_clients_per_ip 1 and one client in: 50 clients that write their hello first all read the fatal
    too_many_connections, though the frame travels slower than a reset would."""
    refusals_read(make_config(max_clients_per_ip=1), "too_many_connections")


def test_server_full_is_readable_after_a_hello(make_config: MakeConfig) -> None:
    """The same for server_full (max_clients 1)."""
    refusals_read(make_config(max_clients=1), "server_full")


def test_a_refused_client_that_never_closes_is_closed_after_refusal_linger(make_server: MakeServer) -> None:
    """A refused client that keeps its socket open is held at most refusal_linger seconds, and at most
    max_lingering refused sockets are held at once (the oldest is closed first); the acceptor never waits."""
    server = make_server(max_clients_per_ip=1, refusal_linger=60.0, max_lingering=2)
    with ChatTestClient(server.address) as first:
        first.login("first")
        refused = [ChatTestClient(server.address) for _ in range(4)]
        try:
            for client in refused:
                codes = [(m.code, m.fatal) for m in client.wait_closed(10) if isinstance(m, Error)]
                assert codes == [("too_many_connections", True)]
            wait_until(lambda: server.stats().lingering == 2, 10, "two refused sockets held")
        finally:
            for client in refused:
                client.close()
        wait_until(lambda: server.stats().lingering == 0, 10, "closed once the clients closed")
    server = make_server(max_clients_per_ip=1, refusal_linger=0.5)
    with ChatTestClient(server.address) as first:
        first.login("first")
        with ChatTestClient(server.address) as silent:
            assert [m.code for m in silent.wait_closed(10) if isinstance(m, Error)] == [
                "too_many_connections"
            ]
            wait_until(lambda: server.stats().lingering == 1, 10, "held while the client is open")
            wait_until(lambda: server.stats().lingering == 0, 10, "closed after refusal_linger")
