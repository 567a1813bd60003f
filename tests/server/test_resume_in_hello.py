"""Gap 3 of the protocol issue: a login resumes every room (and the direct messages) at once, for free."""

from __future__ import annotations

from collections.abc import Callable

from chat_server import ChatServer
from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Ack, Error, Hello, History, Say, Welcome
from shared.messages import Said

from .client import ChatTestClient

ROOMS = [f"room{n}" for n in range(12)]  # more than rate_joins_burst (10): joins one by one would be refused


def test_hello_after_resumes_every_room_from_its_last_id_with_no_join_token(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(rate_joins=0.2, rate_joins_burst=2)  # two joins, then one every 5 s
    assert server.address is not None
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=ROOMS)
        seen: dict[str, int] = {}
        for number, room in enumerate(ROOMS):
            alice.send(Say(room=room, text="seen", ref=2 * number))
            seen[room] = alice.recv_until(lambda m, r=2 * number: isinstance(m, Ack) and m.ref == r).id
            alice.send(Say(room=room, text=f"missed in {room}", ref=2 * number + 1))
            alice.recv_until(lambda m, r=2 * number + 1: isinstance(m, Ack) and m.ref == r)
    with ChatTestClient(server.address) as again:
        again.send(
            Hello(
                proto=PROTOCOL_NAME,
                version=PROTOCOL_VERSION,
                nick="alice",
                rooms=tuple(ROOMS),
                after=seen,
                direct_after=0,
                ref=99,
            )
        )
        assert again.recv(Welcome).ref == 99
        pages = {}
        while len(pages) < len(ROOMS):
            page = again.recv(History)
            assert page.room is not None
            pages[page.room] = page
        for room in ROOMS:
            texts = [m.text for m in pages[room].messages if isinstance(m, Said)]
            assert texts == [f"missed in {room}"], room
            assert pages[room].skipped == 0
        direct = again.recv(History)
        assert direct.direct
        assert not [m for m in again.pending if isinstance(m, Error)], again.summary()
