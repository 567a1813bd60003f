"""Several "hosts" on one machine: clients bind to 127.0.0.2, 127.0.0.3, ... (Linux routes all of 127.0.0.0/8
to the loopback interface), so the per-address limit `max_clients_per_ip` is tested across addresses: an
address at its limit is refused with too_many_connections while another address still gets in, and the
canary (from 127.0.0.1) chats on throughout."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat_server.server import ChatServer
from shared import Error, Quit
from tests.server.client import ChatTestClient, wait_until

from .canary import Canary

MakeServer = Callable[..., ChatServer]
StartCanary = Callable[..., Canary]
#: The canary's two clients come from addresses of their own, so even a limit of 1 leaves them in.
CANARY_SOURCES = ("127.0.0.100", "127.0.0.101")


def refusal(server: ChatServer, source: str) -> list[tuple[str, bool]]:
    """Connect from `source` and return the (code, fatal) of the error frames until the server closes."""
    with ChatTestClient(server.address, source=source) as client:
        return [(m.code, m.fatal) for m in client.wait_closed() if isinstance(m, Error)]


@pytest.mark.parametrize("limit", [1, 3])
def test_an_address_at_its_limit_is_refused_while_another_gets_in(
    make_server: MakeServer, start_canary: StartCanary, limit: int
) -> None:
    """`limit` logins from 127.0.0.2 are accepted, one more is too_many_connections (fatal), 127.0.0.3 still
    logs in; when one of 127.0.0.2's clients quits, 127.0.0.2 gets exactly one slot back."""
    server = make_server(max_clients_per_ip=limit)
    canary = start_canary(server, sources=CANARY_SOURCES)
    clients = []
    try:
        for n in range(limit):
            client = ChatTestClient(server.address, source="127.0.0.2")
            clients.append(client)
            client.login(f"two-{n}")
        assert refusal(server, "127.0.0.2") == [("too_many_connections", True)]
        with ChatTestClient(server.address, source="127.0.0.3") as other:
            assert other.login("three").nick == "three"
            canary.wait_rounds(3)
        clients[0].send(Quit())
        clients[0].wait_closed()
        wait_until(lambda: server.stats().connections == 2 + limit - 1, 5, "the quitter's slot to be free")
        with ChatTestClient(server.address, source="127.0.0.2") as again:
            assert again.login("two-again").nick == "two-again"
            assert refusal(server, "127.0.0.2") == [("too_many_connections", True)]
    finally:
        for client in clients:
            client.close()
    canary.wait_rounds(3)
    canary.stop()


def test_connections_that_never_log_in_count_against_their_address(
    make_server: MakeServer, start_canary: StartCanary
) -> None:
    """Silent connections hold their address's slots (until hello_timeout): a fourth from that address is
    refused, a client from another address logs in."""
    server = make_server(max_clients_per_ip=3, hello_timeout=30.0)
    canary = start_canary(server, sources=CANARY_SOURCES)
    silent = [ChatTestClient(server.address, source="127.0.0.4") for _ in range(3)]
    try:
        wait_until(lambda: server.stats().connections == 5, 5, "the silent connections to be admitted")
        assert refusal(server, "127.0.0.4") == [("too_many_connections", True)]
        with ChatTestClient(server.address, source="127.0.0.5") as other:
            assert other.login("five").nick == "five"
    finally:
        for client in silent:
            client.close()
    canary.wait_rounds(3)
    canary.stop()


def test_refused_connections_do_not_use_up_slots(make_server: MakeServer, start_canary: StartCanary) -> None:
    """Twenty refusals from a full address leave its count at the limit: once its one client leaves, it gets
    exactly one slot back (a refusal that leaked a count would keep it out for good)."""
    server = make_server(max_clients_per_ip=1)
    canary = start_canary(server, sources=CANARY_SOURCES)
    with ChatTestClient(server.address, source="127.0.0.6") as first:
        first.login("six")
        for _ in range(20):
            assert refusal(server, "127.0.0.6") == [("too_many_connections", True)]
        first.send(Quit())
        first.wait_closed()
    wait_until(lambda: server.stats().connections == 2, 5, "the slot to be free")
    with ChatTestClient(server.address, source="127.0.0.6") as second:
        assert second.login("six-again").nick == "six-again"
        assert refusal(server, "127.0.0.6") == [("too_many_connections", True)]
    canary.wait_rounds(3)
    canary.stop()
