"""Login, rooms and room messages: the first slice the client is built against."""

from __future__ import annotations

from collections.abc import Callable

from shared import Ack, History, Join, Joined, Leave, Left, RoomState, Said, Say, Welcome

from .client import ChatTestClient

Login = Callable[..., ChatTestClient]


def test_login_gets_welcome_and_lobby(connect: Callable[..., ChatTestClient]) -> None:
    """A hello without rooms is welcomed and placed in the default room, with its state and backfill."""
    client = connect()
    client.hello("alice", ref=7)
    welcome = client.recv(Welcome)
    assert (welcome.nick, welcome.ref, welcome.version) == ("alice", 7, 1)
    assert client.recv(Joined).room == "lobby"
    state = client.recv(RoomState)
    assert [member.nick for member in state.members] == ["alice"]
    history = client.recv(History)
    assert (history.room, history.messages, history.more) == ("lobby", (), False)


def test_say_is_acked_and_relayed_to_others_only(login: Login) -> None:
    """The sender gets an ack with the id; every other member gets the message once; the sender does not."""
    alice, bob = login("alice"), login("bob")
    alice.recv(Joined, nick="bob")
    alice.send(Say(room="lobby", text="hi bob", client_msg_id="m1", ref=3))
    ack = alice.recv(Ack)
    said = bob.recv(Said)
    assert (ack.ref, ack.client_msg_id, ack.duplicate) == (3, "m1", False)
    assert (said.id, said.ts, said.nick, said.text, said.room) == (ack.id, ack.ts, "alice", "hi bob", "lobby")
    assert not [m for m in alice.drain() if isinstance(m, Said)]


def test_join_and_leave_are_announced(login: Login) -> None:
    """Joined and Left go to every member, the joiner and leaver included."""
    alice, bob = login("alice", rooms=[]), login("bob", rooms=[])
    alice.send(Join(room="kitchen", ref=1))
    assert alice.recv(Joined).nick == "alice"
    assert alice.recv(RoomState, ref=1).room == "kitchen"
    assert alice.recv(History, ref=1).messages == ()
    bob.send(Join(room="Kitchen"))
    assert alice.recv(Joined).nick == "bob"
    assert bob.recv(Joined, nick="bob").room == "kitchen"  # the room's name as created
    bob.send(Leave(room="kitchen", reason="bye"))
    assert alice.recv(Left).reason == "bye"
    assert bob.recv(Left).nick == "bob"
