"""Always-on presence (issue 18, `always_on`): a registered nick stays while none of its sessions is there.

Against a real server on loopback with a real SQLite file: with `always_on`, a registered nick whose last
session ends stays in its rooms (away, with `AWAY_ABSENT`), direct messages to it are stored and
acknowledged, and its next login gets its rooms and those messages; the others see no departure and no
arrival. The nick is still there after a restart of the server. Without the setting, or for an unregistered
nick, a direct message to someone offline is refused with `no_such_nick`, as always.
"""

from __future__ import annotations

from collections.abc import Callable

from chat_server import ChatServer
from chat_server.config import DEFAULT_ALWAYS_ON
from chat_server.history.presence import AWAY_ABSENT
from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    AwayChanged,
    Error,
    Hello,
    History,
    Joined,
    Quit,
    RoomState,
    SignedOff,
    Tell,
    Told,
    Welcome,
)

from .client import ChatTestClient
from .test_sessions import PASSWORD, registered, settle


def log_in_again(address: tuple[str, int], nick: str, **extra: object) -> ChatTestClient:
    """A login of registered `nick` with its password and no rooms of its own; its welcome is left unread."""
    client = ChatTestClient(address)
    client.send(
        Hello(
            proto=PROTOCOL_NAME,
            version=PROTOCOL_VERSION,
            nick=nick,
            nick_password=PASSWORD,
            rooms=(),
            ref=1,
            **extra,  # type: ignore[arg-type]
        )
    )
    return client


def test_always_on_is_off_by_default_and_a_dm_to_someone_offline_is_refused(server: ChatServer) -> None:
    assert DEFAULT_ALWAYS_ON is False
    assert server.address is not None
    with registered(server.address, "alice") as alice:
        alice.send(Quit())
        alice.wait_closed()
    with ChatTestClient(server.address) as bob:
        bob.login("bob")
        bob.send(Tell(to="alice", text="are you there?", ref=2))
        assert bob.recv(Error, ref=2).code == "no_such_nick"


def test_an_always_on_nick_stays_in_its_rooms_and_gets_its_dms_at_the_next_login(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server(always_on=True)
    assert server.address is not None
    with ChatTestClient(server.address) as bob:
        bob.login("bob", rooms=["lobby"])
        with registered(server.address, "alice") as alice:
            bob.recv(Joined, nick="alice")
            alice.send(Quit(reason="laptop closed"))
            alice.wait_closed()
        # Bob sees alice go away, not sign off; she is still in the room.
        assert bob.recv(AwayChanged, nick="alice").message == AWAY_ABSENT
        seen = settle(bob, 10)
        assert not any(isinstance(m, SignedOff) for m in seen)
        state = seen[-1]
        assert isinstance(state, RoomState)
        assert {m.nick: m.away for m in state.members}["alice"] == AWAY_ABSENT
        # A direct message to her is stored and acknowledged, with her away message.
        bob.send(Tell(to="alice", text="call me when you are back", ref=11))
        ack = bob.recv(Ack, ref=11)
        assert ack.away == AWAY_ABSENT
        # An unregistered nick that is offline is refused as always.
        bob.send(Tell(to="nobody", text="hello?", ref=12))
        assert bob.recv(Error, ref=12).code == "no_such_nick"

        with log_in_again(server.address, "alice") as back:
            welcome = back.recv(Welcome, ref=1)
            assert welcome.nick == "alice"
            assert len(welcome.sessions) == 1
            assert back.recv(Joined, room="lobby").nick == "alice"
            back.recv(History, room="lobby")
            missed = back.recv(History, direct=True)
            assert [(m.nick, m.text) for m in missed.messages if isinstance(m, Told)] == [
                ("bob", "call me when you are back")
            ]
            # Bob sees her come back (her away message goes), and no arrival.
            assert bob.recv(AwayChanged, nick="alice").message is None
            assert not any(isinstance(m, Joined) and m.nick == "alice" for m in settle(bob, 13))


def test_an_always_on_nick_is_still_there_after_a_restart(make_server: Callable[..., ChatServer]) -> None:
    server = make_server(always_on=True)
    assert server.address is not None
    with registered(server.address, "alice", ("lobby", "attic")) as alice:
        alice.send(Quit())
        alice.wait_closed()
    data_dir = server.config.data_dir
    server.stop()
    again = make_server(always_on=True, data_dir=data_dir)
    assert again.address is not None
    with ChatTestClient(again.address) as bob:
        bob.login("bob", rooms=["attic"])
        state = settle(bob, 2)[-1]
        assert isinstance(state, RoomState)
        assert state.room == "lobby"  # settle asks about the lobby: alice is kept there too
        assert "alice" in {m.nick for m in state.members}
        bob.send(Tell(to="alice", text="welcome back", ref=3))
        bob.recv(Ack, ref=3)
        with log_in_again(again.address, "alice") as back:
            back.recv(Welcome, ref=1)
            rooms = {back.recv(Joined).room, back.recv(Joined).room}
            assert rooms == {"lobby", "attic"}
            missed = back.recv(History, direct=True)
            assert [m.text for m in missed.messages if isinstance(m, Told)] == ["welcome back"]
