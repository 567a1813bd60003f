"""Requests pipelined right behind `hello` are answered after the `welcome`, and not at all when the hello
is refused (docs/protocol.md, "Connection life": the server handles frames in order, and after a failed hello
the rest is discarded)."""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest

from chat_server.server import ChatServer
from shared import Error, FetchHistory, Hello, Ping, Welcome, encode, frame
from tests.server.client import ChatTestClient

MakeServer = Callable[..., ChatServer]


@pytest.mark.parametrize(
    "request_bytes",
    [
        encode(Ping(token=1)),
        encode(FetchHistory(room="lobby", ref=2)),
        frame(msgpack.packb({"type": "say", "room": "lobby", "ref": 3})),  # invalid_field
    ],
    ids=["ping", "fetch_history", "invalid_request"],
)
def test_requests_pipelined_after_hello_are_answered_after_welcome(
    make_server: MakeServer, request_bytes: bytes
) -> None:
    """hello + one request in a single write, twenty times: the first frame back is always welcome."""
    # Twenty connections in a row from one address: on a loaded machine more than the default 8 may still be
    # closing when the next one arrives, which would test max_clients_per_ip instead.
    server = make_server(max_clients_per_ip=32)
    for n in range(20):
        with ChatTestClient(server.address) as client:
            # The test client's decoder refuses anything but welcome or error as the first frame.
            client.send_raw(encode(Hello(proto="mpchat", version=1, nick=f"pipe{n}")) + request_bytes)
            first = client.recv_until(lambda m: True)
            assert isinstance(first, Welcome), first


def test_requests_behind_a_refused_hello_are_discarded(make_server: MakeServer) -> None:
    """A ping pipelined behind a hello refused with nick_taken gets no pong: only the fatal error."""
    server = make_server()
    with ChatTestClient(server.address) as holder:
        holder.login("taken")
        with ChatTestClient(server.address) as late:
            late.send_raw(encode(Hello(proto="mpchat", version=1, nick="taken")) + encode(Ping(token=7)))
            received = late.wait_closed()
    assert [(type(m).__name__, getattr(m, "code", None)) for m in received] == [("Error", "nick_taken")]
    assert isinstance(received[0], Error)
    assert received[0].fatal
