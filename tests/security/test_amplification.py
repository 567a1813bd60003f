"""Requests that cost little to send must not make the server send a lot back: bounded replies per request."""

from __future__ import annotations

from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Error, Hello, History, ListRooms, RoomList, Welcome
from tests.server.client import ChatTestClient

MakeServer = Callable[..., ChatServer]


def test_hello_naming_too_many_rooms_gets_one_refusal(make_server: MakeServer) -> None:
    """A hello listing max_list rooms (a free request: hello is not rate limited) joins the first
    max_rooms_per_client and gets ONE too_many_rooms for the rest, not one error frame per refused room."""
    server = make_server(max_rooms_per_client=4)
    with ChatTestClient(server.address) as client:
        rooms = [f"room{n}" for n in range(1000)]
        client.send_unchecked(Hello(proto="mpchat", version=1, nick="greedy", rooms=tuple(rooms)))
        client.recv(Welcome)
        # Applied in order after the login, by the same thread: what the hello caused arrives before the list.
        client.send_unchecked(ListRooms(ref=9))
        client.recv(RoomList, ref=9)
        received = client.drain(0)
    assert [m.room for m in received if isinstance(m, History)] == rooms[:4]
    errors = [m for m in received if isinstance(m, Error)]
    assert [(e.code, e.fatal) for e in errors] == [("too_many_rooms", False)]
    assert "996" in errors[0].message  # says how many rooms were not joined


def test_hello_rooms_at_the_limit_and_repeated_names(make_server: MakeServer) -> None:
    """Exactly max_rooms_per_client rooms (one named twice, in another case) are all joined without error."""
    server = make_server(max_rooms_per_client=3)
    with ChatTestClient(server.address) as client:
        client.send_unchecked(Hello(proto="mpchat", version=1, nick="exact", rooms=("a", "A", "b", "c")))
        client.recv(Welcome)
        client.send_unchecked(ListRooms(ref=9))
        client.recv(RoomList, ref=9)
        received = client.drain(0)
    assert [m.room for m in received if isinstance(m, History)] == ["a", "a", "b", "c"]
    assert [m for m in received if isinstance(m, Error)] == []
