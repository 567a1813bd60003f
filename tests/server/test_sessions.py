"""Several sessions of one registered nick (issue 18): `welcome.sessions`, `sessions`, and everything in step.

Against a real server on loopback with a real SQLite file: two (or more) connections log in as the same
registered nick. Every session gets the rooms' messages and the nick's direct messages; what one sends
reaches the others as a `said`/`told` with their own nick; joins, leaves, away, read markers, notification
settings and registration changes reach every session; the others see one member. `max_sessions_per_nick`
bounds the sessions (`too_many_sessions`); an unregistered nick stays single-session (`nick_taken`).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat_server import ChatServer
from chat_server.config import DEFAULT_MAX_SESSIONS_PER_NICK
from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    AwayChanged,
    ChangeNick,
    Error,
    Hello,
    History,
    Join,
    Joined,
    Leave,
    Left,
    MarkRead,
    NickChanged,
    NotifySettings,
    Ok,
    ReadMarker,
    Register,
    Registration,
    RoomState,
    Said,
    Say,
    SetAway,
    SetNotify,
    SignedOff,
    Tell,
    Told,
    Welcome,
    Who,
)
from shared.messages import Quit, Sessions

from .client import ChatTestClient

PASSWORD = "correct horse"


def registered(address: tuple[str, int], nick: str, rooms: tuple[str, ...] = ("lobby",)) -> ChatTestClient:
    """A first session of `nick`, registered with `PASSWORD` (everything it received so far is read)."""
    client = ChatTestClient(address)
    client.login(nick, rooms=rooms)
    client.send(Register(password=PASSWORD, ref=900))
    assert client.recv(Registration, ref=900).registered
    return client


def another_session(
    address: tuple[str, int], nick: str, rooms: tuple[str, ...] | None = ("lobby",), **extra: object
) -> ChatTestClient:
    """One more connection logging in as registered `nick`; its welcome is left unread."""
    client = ChatTestClient(address)
    client.send(
        Hello(
            proto=PROTOCOL_NAME,
            version=PROTOCOL_VERSION,
            nick=nick,
            nick_password=PASSWORD,
            rooms=rooms,
            client="test-laptop",
            ref=1,
            **extra,  # type: ignore[arg-type]
        )
    )
    return client


def settle(client: ChatTestClient, ref: int) -> list[object]:
    """Everything `client` received up to the answer of a `who` sent now (a barrier: the history thread
    applies requests in order, so whatever happened before it has reached `client`)."""
    client.send(Who(room="lobby", ref=ref))
    received: list[object] = []
    while True:
        message = client.recv_until(lambda _m: True)
        received.append(message)
        if isinstance(message, RoomState) and message.ref == ref:
            return received


def test_two_sessions_of_a_registered_nick_share_messages_dms_and_rooms_and_the_others_see_one_member(
    server: ChatServer,
) -> None:
    assert server.address is not None
    with (
        ChatTestClient(server.address) as bob,
        registered(server.address, "alice") as desk,
        another_session(server.address, "alice") as laptop,
    ):
        bob.login("bob", rooms=["lobby"])
        welcome = laptop.recv(Welcome, ref=1)
        assert welcome.nick == "alice"
        assert welcome.session is not None
        assert len(welcome.sessions) == 2
        assert welcome.sessions[-1].id == welcome.session
        assert welcome.sessions[-1].client == "test-laptop"
        # The new session hears of its nick's rooms as of its own joins (nobody else does).
        assert laptop.recv(Joined, room="lobby").nick == "alice"
        laptop.recv(History, room="lobby")
        # The first session learns of the second.
        told = desk.recv(Sessions)
        assert [s.id for s in told.sessions] == [s.id for s in welcome.sessions]
        # Bob sees one alice, who joined once (before bob came), and no second arrival.
        before = settle(bob, 10)
        assert not any(isinstance(m, Joined) and m.nick == "alice" for m in before)
        state = before[-1]
        assert isinstance(state, RoomState)
        assert [m.nick for m in state.members].count("alice") == 1

        # A message from one session: an ack to it, a said with its own nick to the other, a said to bob.
        laptop.send(Say(room="lobby", text="from the laptop", ref=2))
        sent = laptop.recv(Ack, ref=2)
        echo = desk.recv(Said, text="from the laptop")
        assert (echo.nick, echo.id) == ("alice", sent.id)
        assert bob.recv(Said, text="from the laptop").nick == "alice"
        assert not any(isinstance(m, Said) for m in settle(laptop, 11)), "no said back to its sender"

        # Direct messages: both sessions get bob's; one session's reaches bob, and the other as its own.
        bob.send(Tell(to="alice", text="hello both", ref=3))
        bob.recv(Ack, ref=3)
        assert desk.recv(Told, text="hello both").nick == "bob"
        assert laptop.recv(Told, text="hello both").nick == "bob"
        desk.send(Tell(to="bob", text="from the desk", ref=4))
        desk.recv(Ack, ref=4)
        assert bob.recv(Told, text="from the desk").nick == "alice"
        mine = laptop.recv(Told, text="from the desk")
        assert (mine.nick, mine.to) == ("alice", "bob")

        # A join applies to the nick: the other session is in the room too, with its state and history.
        bob.send(Join(room="attic", ref=5))
        bob.recv(History, ref=5)
        laptop.send(Join(room="attic", ref=6))
        laptop.recv(History, ref=6)
        assert desk.recv(Joined, room="attic").nick == "alice"
        desk.recv(RoomState, room="attic", ref=None)
        desk.recv(History, room="attic", ref=None)
        bob.recv(Joined, room="attic", nick="alice")
        bob.send(Say(room="attic", text="upstairs", ref=7))
        assert desk.recv(Said, room="attic").text == "upstairs"
        assert laptop.recv(Said, room="attic").text == "upstairs"
        # A leave too: both sessions are out, bob sees one `left`.
        desk.send(Leave(room="attic", ref=8))
        desk.recv(Ok, ref=8)
        assert laptop.recv(Left, room="attic").nick == "alice"
        assert bob.recv(Left, room="attic").nick == "alice"
        assert [m for m in settle(bob, 12) if isinstance(m, Left)] == []

        # Away belongs to the nick.
        laptop.send(SetAway(message="lunch", ref=9))
        laptop.recv(Ok, ref=9)
        assert desk.recv(AwayChanged).message == "lunch"
        assert bob.recv(AwayChanged).message == "lunch"


def test_a_session_quitting_is_not_a_logout_the_last_one_is(server: ChatServer) -> None:
    assert server.address is not None
    with (
        ChatTestClient(server.address) as bob,
        registered(server.address, "alice") as desk,
        another_session(server.address, "alice") as laptop,
    ):
        bob.login("bob", rooms=["lobby"])
        laptop.recv(Welcome)
        desk.recv(Sessions)
        laptop.send(Quit(reason="closing the lid"))
        laptop.wait_closed()
        left = desk.recv(Sessions)
        assert len(left.sessions) == 1
        # Bob hears nothing of it: alice is still there, once.
        seen = settle(bob, 20)
        assert not any(isinstance(m, SignedOff | Left) for m in seen)
        state = seen[-1]
        assert isinstance(state, RoomState)
        assert sorted(m.nick for m in state.members) == ["alice", "bob"]
        bob.send(Say(room="lobby", text="still there?", ref=21))
        assert desk.recv(Said, text="still there?").nick == "bob"
        # The last session's quit is the logout everyone sees.
        desk.send(Quit(reason="bye"))
        assert bob.recv(SignedOff).nick == "alice"


def test_read_markers_notification_levels_and_registration_reach_every_session(server: ChatServer) -> None:
    assert server.address is not None
    with (
        registered(server.address, "alice") as desk,
        another_session(server.address, "alice") as laptop,
    ):
        laptop.recv(Welcome)
        desk.recv(Sessions)
        desk.send(Say(room="lobby", text="one", ref=2))
        first = desk.recv(Ack, ref=2).id
        laptop.recv(Said, text="one")
        desk.send(MarkRead(room="lobby", id=first, ref=3))
        assert desk.recv(ReadMarker, ref=3).id == first
        assert laptop.recv(ReadMarker) == ReadMarker(room="lobby", id=first)
        laptop.send(SetNotify(room="lobby", level="all", ref=4))
        assert laptop.recv(NotifySettings, ref=4).levels[0].level == "all"
        synced = desk.recv(NotifySettings)
        assert (synced.ref, synced.levels[0].level) == (None, "all")
        # A new password is the nick's: the other session hears of it (without the ref).
        laptop.send(Register(password="another horse", old_password=PASSWORD, ref=5))
        assert laptop.recv(Registration, ref=5).registered
        assert desk.recv(Registration).ref is None
        # A nick change would split the nick: refused while another session is connected; a change of
        # letter case is the nick's, in every session.
        desk.send(ChangeNick(nick="alicia", ref=6))
        assert desk.recv(Error, ref=6).code == "forbidden"
        desk.send(ChangeNick(nick="Alice", ref=7))
        desk.recv(Ok, ref=7)
        assert laptop.recv(NickChanged).new == "Alice"
        laptop.send(Say(room="lobby", text="capital", ref=8))
        laptop.recv(Ack, ref=8)
        assert desk.recv(Said, text="capital").nick == "Alice"


def test_sessions_are_bounded_by_max_sessions_per_nick(make_server: Callable[..., ChatServer]) -> None:
    assert DEFAULT_MAX_SESSIONS_PER_NICK == 4
    server = make_server(max_sessions_per_nick=2)
    assert server.address is not None
    with (
        registered(server.address, "alice") as desk,
        another_session(server.address, "alice") as laptop,
    ):
        laptop.recv(Welcome)
        phone = another_session(server.address, "alice")
        refusal = phone.recv(Error)
        assert (refusal.code, refusal.fatal, refusal.ref) == ("too_many_sessions", True, 1)
        phone.wait_closed()
        phone.close()
        # Once one ends, a new session has room again.
        laptop.send(Quit())
        laptop.wait_closed()
        desk.recv(Sessions, timeout=10)
        desk.recv(Sessions, timeout=10)
        with another_session(server.address, "alice") as again:
            assert len(again.recv(Welcome).sessions) == 2


def test_an_unregistered_nick_stays_single_session(connect: Callable[..., ChatTestClient]) -> None:
    first = connect()
    first.login("carol")
    second = connect()
    second.hello("carol", ref=1)
    refusal = second.recv(Error)
    assert (refusal.code, refusal.fatal) == ("nick_taken", True)


def test_a_wrong_password_is_no_session(server: ChatServer) -> None:
    assert server.address is not None
    with registered(server.address, "alice"), ChatTestClient(server.address) as mallory:
        mallory.send(
            Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick="alice", nick_password="guess", ref=1)
        )
        assert mallory.recv(Error).code in {"bad_password", "nick_registered"}


@pytest.mark.parametrize("rooms", [None, ("lobby",)])
def test_a_session_killed_and_restored_catches_up(server: ChatServer, rooms: tuple[str, ...] | None) -> None:
    """A session whose connection dies misses nothing: it logs in again with `after` and gets what the
    other session and bob said meanwhile, its own nick's messages included."""
    assert server.address is not None
    with (
        ChatTestClient(server.address) as bob,
        registered(server.address, "alice", ("lobby", "attic")) as desk,
    ):
        bob.login("bob", rooms=["lobby"])
        laptop = another_session(server.address, "alice", rooms=rooms)
        laptop.recv(Welcome)
        # The nick's rooms come with the login, the ones hello did not name included.
        laptop.recv(History, room="lobby")
        laptop.recv(History, room="attic")
        desk.recv(Sessions)
        bob.send(Say(room="lobby", text="before", ref=2))
        last = laptop.recv(Said, text="before").id
        laptop.sock.close()  # killed: no quit
        gone = desk.recv(Sessions)
        assert len(gone.sessions) == 1
        bob.send(Say(room="lobby", text="while you were out", ref=3))
        bob.recv(Ack, ref=3)
        desk.send(Say(room="lobby", text="from the desk meanwhile", ref=4))
        desk.recv(Ack, ref=4)
        with another_session(server.address, "alice", rooms=("lobby",), after={"lobby": last}) as restored:
            restored.recv(Welcome)
            page = restored.recv(History, room="lobby")
            assert [(m.nick, m.text) for m in page.messages if isinstance(m, Said)] == [
                ("bob", "while you were out"),
                ("alice", "from the desk meanwhile"),
            ]


def test_a_resume_token_takes_over_its_own_session_only(server: ChatServer) -> None:
    """Each session has its own resume token: showing one replaces that session (`session_replaced`), not
    its sibling, and the sibling learns the new session id from `sessions`."""
    assert server.address is not None
    with registered(server.address, "alice") as desk, another_session(server.address, "alice") as laptop:
        welcome = laptop.recv(Welcome, ref=1)
        assert welcome.resume_token is not None
        desk.recv(Sessions)
        with another_session(server.address, "alice", resume_token=welcome.resume_token) as again:
            resumed = again.recv(Welcome, ref=1)
            assert resumed.resume_token == welcome.resume_token
            assert laptop.recv(Error).code == "session_replaced"
            now = desk.recv(Sessions)
            assert [s.id for s in now.sessions] == [s.id for s in resumed.sessions]
            assert resumed.session in {s.id for s in now.sessions}
            assert welcome.session not in {s.id for s in now.sessions}
            desk.send(Say(room="lobby", text="still both", ref=5))
            desk.recv(Ack, ref=5)
            assert again.recv(Said, text="still both").nick == "alice"
