"""Read markers (issue 18): `mark_read`, `read_marker`, `welcome.read_markers` and a join's `read_up_to`;
notification levels and keywords (`notify`, `keywords`, `notify_settings`).

Against a real server on loopback with a real SQLite file: a registered nick's markers survive a logout and
a restart of the server; an unregistered nick's last as long as its session; a marker never moves back; the
limit per nick drops the least recently moved one.
"""

from __future__ import annotations

from collections.abc import Callable

from chat_server import ChatServer
from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    Error,
    Hello,
    History,
    MarkRead,
    NotifyLevel,
    NotifySettings,
    ReadMarker,
    ReadPosition,
    Register,
    Registration,
    Say,
    SetKeywords,
    SetNotify,
    Welcome,
)

from .client import ChatTestClient

PASSWORD = "correct horse"


def log_in_registered(
    address: tuple[str, int], nick: str, rooms: tuple[str, ...] = ("lobby",)
) -> ChatTestClient:
    """A connection logged in as registered `nick` (with its password); the welcome is left unread."""
    client = ChatTestClient(address)
    client.send(
        Hello(
            proto=PROTOCOL_NAME,
            version=PROTOCOL_VERSION,
            nick=nick,
            nick_password=PASSWORD,
            rooms=rooms,
            ref=1,
        )
    )
    return client


def say(client: ChatTestClient, room: str, text: str, ref: int) -> int:
    """Say `text` in `room`; the message's id."""
    client.send(Say(room=room, text=text, ref=ref))
    return client.recv(Ack, ref=ref).id


def test_a_registered_nick_s_marker_comes_back_at_login_and_join_even_after_a_server_restart(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server()
    assert server.address is not None
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=["lobby", "attic"])
        alice.send(Register(password=PASSWORD, ref=1))
        assert alice.recv(Registration, ref=1).registered
        first = say(alice, "lobby", "one", 2)
        say(alice, "lobby", "two", 3)
        alice.send(MarkRead(room="lobby", id=first, ref=5))
        assert alice.recv(ReadMarker, ref=5) == ReadMarker(room="lobby", id=first, ref=5)
        alice.send(MarkRead(peer="Bob", id=first, ref=6))
        assert alice.recv(ReadMarker, ref=6).id == first
    data_dir = server.config.data_dir
    server.stop()
    again = make_server(data_dir=data_dir)
    assert again.address is not None
    with log_in_registered(again.address, "alice") as alice:
        welcome = alice.recv(Welcome, ref=1)
        assert welcome.read_markers == (
            ReadPosition(peer="Bob", id=first),
            ReadPosition(room="lobby", id=first),
        )
        backfill = alice.recv(History, room="lobby")
        assert backfill.read_up_to == first
        assert backfill.messages[0].id == first  # the marker points into the backfill
        alice.send(MarkRead(room="attic", id=1, ref=7))
        alice.error("not_in_room")


def test_a_marker_never_moves_back_and_cannot_point_past_the_newest_message(
    connect: Callable[..., ChatTestClient],
) -> None:
    alice = connect()
    alice.login("alice", rooms=["lobby"])
    first = say(alice, "lobby", "one", 1)
    second = say(alice, "lobby", "two", 2)
    alice.send(MarkRead(room="lobby", id=second, ref=3))
    assert alice.recv(ReadMarker, ref=3).id == second
    alice.send(MarkRead(room="lobby", id=first, ref=4))  # back: not an error, the answer says where it is
    assert alice.recv(ReadMarker, ref=4).id == second
    alice.send(MarkRead(room="lobby", id=second + 1, ref=5))
    refusal = alice.recv(Error, ref=5)
    assert refusal.code == "invalid_field"
    assert "does not exist yet" in refusal.message
    alice.send(MarkRead(id=first, ref=6))  # neither room nor peer
    assert alice.recv(Error, ref=6).code == "invalid_field"
    alice.send(MarkRead(room="lobby", peer="bob", id=first, ref=7))  # both
    assert alice.recv(Error, ref=7).code == "invalid_field"


def test_an_unregistered_nick_s_markers_last_as_long_as_its_session(
    connect: Callable[..., ChatTestClient],
) -> None:
    alice = connect()
    welcome = alice.login("alice", rooms=["lobby"])
    assert welcome.read_markers == ()
    first = say(alice, "lobby", "one", 1)
    alice.send(MarkRead(room="lobby", id=first, ref=2))
    alice.recv(ReadMarker, ref=2)
    alice.close()
    later = connect()
    assert later.login("alice", rooms=["lobby"]).read_markers == ()


def test_a_resumed_session_keeps_an_unregistered_nick_s_markers(
    connect: Callable[..., ChatTestClient],
) -> None:
    alice = connect()
    token = alice.login("alice", rooms=["lobby"]).resume_token
    first = say(alice, "lobby", "one", 1)
    alice.send(MarkRead(room="lobby", id=first, ref=2))
    alice.recv(ReadMarker, ref=2)
    again = connect()
    again.send(
        Hello(
            proto=PROTOCOL_NAME,
            version=PROTOCOL_VERSION,
            nick="alice",
            rooms=("lobby",),
            resume_token=token,
            ref=3,
        )
    )
    assert again.recv(Welcome, ref=3).read_markers == (ReadPosition(room="lobby", id=first),)
    assert again.recv(History, room="lobby").read_up_to == first


def test_past_the_limit_the_least_recently_moved_marker_is_dropped(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(read_markers_per_nick=2)
    assert server.address is not None
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=["a", "b", "c"])
        alice.send(Register(password=PASSWORD, ref=1))
        assert alice.recv(Registration, ref=1).registered
        ids = {room: say(alice, room, "hi", n) for n, room in enumerate(("a", "b", "c"), start=2)}
        for n, room in enumerate(("a", "b", "c"), start=10):
            alice.send(MarkRead(room=room, id=ids[room], ref=n))
            alice.recv(ReadMarker, ref=n)
    with log_in_registered(server.address, "alice", ("a", "b", "c")) as alice:
        welcome = alice.recv(Welcome, ref=1)
        assert welcome.read_markers == (
            ReadPosition(room="c", id=ids["c"]),
            ReadPosition(room="b", id=ids["b"]),
        )
        pages = {page.room: page for page in (alice.recv(History) for _ in range(3))}
        assert pages["a"].read_up_to is None
        assert pages["b"].read_up_to == ids["b"]


# -- Notification levels and keywords ----------------------------------------------------------------------


def test_notify_levels_and_keywords_are_kept_for_a_registered_nick(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(max_keywords=2, notify_levels_per_nick=1)
    assert server.address is not None
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=["lobby"])
        alice.send(Register(password=PASSWORD, ref=1))
        assert alice.recv(Registration, ref=1).registered
        alice.send(SetNotify(room="lobby", level="all", ref=2))
        answer = alice.recv(NotifySettings, ref=2)
        assert answer.levels == (NotifyLevel(room="lobby", level="all"),)
        alice.send(SetNotify(room="attic", level="none", ref=3))  # one level of its own at most
        assert alice.recv(Error, ref=3).code == "too_long"
        alice.send(SetNotify(peer="bob", level="all", ref=4))  # the default of a conversation: not kept
        assert alice.recv(NotifySettings, ref=4).levels == (NotifyLevel(room="lobby", level="all"),)
        alice.send(SetKeywords(keywords=("deploy", "Deploy", " ", "lunch"), ref=5))
        assert alice.recv(NotifySettings, ref=5).keywords == ("deploy", "lunch")
        alice.send(SetKeywords(keywords=("a", "b", "c"), ref=6))
        assert alice.recv(Error, ref=6).code == "too_long"
        alice.send(SetNotify(room="lobby", peer="bob", level="all", ref=7))
        assert alice.recv(Error, ref=7).code == "invalid_field"
    with log_in_registered(server.address, "alice") as alice:
        welcome = alice.recv(Welcome, ref=1)
        assert welcome.notify_levels == (NotifyLevel(room="lobby", level="all"),)
        assert welcome.keywords == ("deploy", "lunch")
        alice.send(SetNotify(room="lobby", ref=2))  # no level: back to the default
        assert alice.recv(NotifySettings, ref=2).levels == ()


def test_an_unregistered_nick_s_levels_last_as_long_as_its_session(
    connect: Callable[..., ChatTestClient],
) -> None:
    alice = connect()
    alice.login("alice", rooms=["lobby"])
    alice.send(SetNotify(room="lobby", level="none", ref=1))
    assert alice.recv(NotifySettings, ref=1).levels == (NotifyLevel(room="lobby", level="none"),)
    alice.send(SetKeywords(keywords=("deploy",), ref=2))
    alice.recv(NotifySettings, ref=2)
    alice.close()
    later = connect()
    welcome = later.login("alice", rooms=["lobby"])
    assert (welcome.notify_levels, welcome.keywords) == ((), ())
