"""Abuse of a TLS port: plaintext clients, handshakes that never start or never finish, while a TLS canary
chats alongside with every message in order (docs/security.md, "TLS")."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable

from chat_server.server import ChatServer
from chat_server.tls import TlsConfig
from shared import Hello, encode
from tests.server.client import wait_until
from tests.server.tls_client import TlsTestClient, client_context

from .canary import Canary

#: A short handshake deadline for the tests (the default is 5 s).
HANDSHAKE_TIMEOUT = 1.0


def closed_by_server(sock: socket.socket, timeout: float = 10.0) -> float:
    """Read until the server closes `sock`; return when that happened (monotonic). Fails after `timeout`."""
    sock.settimeout(timeout)
    while True:
        try:
            if not sock.recv(4096):
                return time.monotonic()
        except ConnectionResetError:
            return time.monotonic()


def tls_server(make_server: Callable[..., ChatServer]) -> ChatServer:
    """A TLS-only server with the short handshake deadline."""
    return make_server(tls=TlsConfig(enabled=True, handshake_timeout=HANDSHAKE_TIMEOUT))


def tls_canary(server: ChatServer) -> Canary:
    """Two TLS clients chatting in their own room."""
    return Canary(server.address, client_class=TlsTestClient).start()


def test_plaintext_client_on_the_tls_port_is_closed_at_once(make_server: Callable[..., ChatServer]) -> None:
    """A plaintext hello on the TLS port: closed as soon as it arrives (not at the handshake deadline)."""
    server = tls_server(make_server)
    canary = tls_canary(server)
    try:
        canary.wait_rounds(3)
        for _ in range(5):
            with socket.create_connection(server.address, timeout=10) as plain:
                started = time.monotonic()
                plain.sendall(encode(Hello(proto="mpchat", version=1, nick="plain")))
                closed = closed_by_server(plain)
                # Not waiting for the deadline: the first bytes are not a TLS ClientHello.
                assert closed - started < HANDSHAKE_TIMEOUT + 5  # generous: bounded, not a timing claim
        canary.wait_rounds(3)
        wait_until(lambda: server.stats().connections == 2, 10.0, "only the canary left")
    finally:
        canary.stop()


def test_silent_and_stalled_handshakes_are_closed_at_the_deadline(
    make_server: Callable[..., ChatServer],
) -> None:
    """A client that never starts the handshake, and one that sends half a ClientHello, are closed after
    `tls.handshake_timeout`, not before; the canary keeps chatting throughout."""
    server = tls_server(make_server)
    canary = tls_canary(server)
    started = time.monotonic()  # before connecting: the server's deadline counts from its accept, later
    silent = socket.create_connection(server.address, timeout=10)
    stalled = socket.create_connection(server.address, timeout=10)
    try:
        # The first bytes of a real ClientHello, from an in-memory client handshake.
        outgoing = ssl.MemoryBIO()
        client = client_context().wrap_bio(ssl.MemoryBIO(), outgoing)
        with contextlib.suppress(ssl.SSLWantReadError):
            client.do_handshake()
        hello = outgoing.read()
        stalled.sendall(hello[: len(hello) // 2])
        canary.wait_rounds(3)
        for sock in (silent, stalled):
            assert closed_by_server(sock) - started >= HANDSHAKE_TIMEOUT
        canary.wait_rounds(3)
        wait_until(lambda: server.stats().connections == 2, 10.0, "only the canary left")
    finally:
        silent.close()
        stalled.close()
        canary.stop()


def test_a_handshake_within_the_deadline_is_served(make_server: Callable[..., ChatServer]) -> None:
    """A client that connects, waits part of the deadline, then shakes hands, logs in normally."""
    server = tls_server(make_server)
    raw = socket.create_connection(server.address, timeout=10)
    connected = time.monotonic()
    wait_until(lambda: time.monotonic() - connected >= HANDSHAKE_TIMEOUT / 2, 5.0, "half the deadline")
    client = TlsTestClient.__new__(TlsTestClient)
    TlsTestClient.__init__(client, server.address)  # a normal client, then swapped for the late one
    client.sock.close()
    client.sock = client_context().wrap_socket(raw)
    with client:
        client.login("late")


def test_many_stalled_handshakes_do_not_disturb_the_canary(make_server: Callable[..., ChatServer]) -> None:
    """Thirty connections that never handshake, then plaintext garbage on them: the canary's messages
    keep arriving in order, and every one of the thirty is closed."""
    server = make_server(
        tls=TlsConfig(enabled=True, handshake_timeout=HANDSHAKE_TIMEOUT), max_clients_per_ip=64
    )
    canary = tls_canary(server)
    socks = [socket.create_connection(server.address, timeout=10) for _ in range(30)]
    try:
        for number, sock in enumerate(socks):
            if number % 2:
                sock.sendall(b"\x00\x00\x00\x05garbage")
        canary.wait_rounds(5)
        for sock in socks:
            closed_by_server(sock)
        canary.wait_rounds(3)
    finally:
        for sock in socks:
            sock.close()
        canary.stop()
