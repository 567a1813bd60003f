"""Login, rooms and room messages: the first slice the client is built against."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from chat_server.server import ChatServer
from shared import (
    Ack,
    AwayChanged,
    ChangeNick,
    Error,
    FetchHistory,
    History,
    Join,
    Joined,
    Leave,
    Left,
    ListRooms,
    Message,
    NickChanged,
    Ping,
    Pong,
    Quit,
    RoomList,
    RoomState,
    RoomSummary,
    Said,
    Say,
    SetAway,
    SetTopic,
    SignedOff,
    Tell,
    Told,
    TopicChanged,
    Welcome,
    Who,
)

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


def test_hello_with_no_rooms_joins_none(connect: Callable[..., ChatTestClient]) -> None:
    """rooms=() logs in without joining any room."""
    client = connect()
    client.login("alice", rooms=[])
    client.send(ListRooms(ref=1))
    assert client.recv(RoomList, ref=1).rooms == ()


def test_hello_with_rooms_joins_each(login: Login) -> None:
    """rooms=("a", "b") joins both, each with its state and backfill."""
    alice = login("alice", rooms=["a", "b"])
    alice.send(Who(room="b", ref=2))
    assert [m.nick for m in alice.recv(RoomState, ref=2).members] == ["alice"]


def test_nick_taken_under_case_folding_is_fatal(login: Login, connect: Callable[..., ChatTestClient]) -> None:
    """A nick equal under NFKC + case folding to a logged-in nick is refused, and the connection closed."""
    login("Zoë")
    other = connect()
    other.hello("ZOE\u0308", ref=4)
    error = other.error("nick_taken")
    assert (error.fatal, error.ref) == (True, 4)
    other.wait_closed()


def test_nick_is_free_again_after_logout(login: Login) -> None:
    """After a client quits, its nick can be used again at once."""
    alice = login("alice")
    alice.send(Quit(reason="bye"))
    alice.wait_closed()
    login("alice")


def test_rejoin_resends_state_without_announcing(login: Login) -> None:
    """Joining a room one is in answers RoomState and History again but announces nothing."""
    alice, bob = login("alice"), login("bob")
    alice.recv(Joined, nick="bob")
    bob.send(Join(room="lobby", ref=9))
    assert bob.recv(RoomState, ref=9).room == "lobby"
    assert bob.recv(History, ref=9).room == "lobby"
    assert not [m for m in alice.drain() if isinstance(m, Joined) and m.nick == "bob"]


def test_say_outside_room_is_refused(login: Login) -> None:
    """Saying something in a room one is not in is refused with not_in_room, and the session goes on."""
    alice = login("alice")
    alice.send(Say(room="elsewhere", text="hello?", ref=5))
    error = alice.error("not_in_room")
    assert (error.fatal, error.ref) == (False, 5)
    alice.send(Say(room="lobby", text="still here", ref=6))
    assert alice.recv(Ack).ref == 6


def test_action_flag_is_relayed(login: Login) -> None:
    """A /me action keeps its action flag."""
    alice, bob = login("alice"), login("bob")
    alice.send(Say(room="lobby", text="waves", action=True))
    assert bob.recv(Said).action is True


def test_resend_with_same_client_msg_id_is_acked_not_relayed(login: Login) -> None:
    """A resend with a known client_msg_id gets the same id with duplicate=True and reaches nobody again."""
    alice, bob = login("alice"), login("bob")
    alice.send(Say(room="lobby", text="once", client_msg_id="abc", ref=1))
    first = alice.recv(Ack, ref=1)
    alice.send(Say(room="lobby", text="once", client_msg_id="abc", ref=2))
    second = alice.recv(Ack, ref=2)
    assert (second.id, second.ts, second.duplicate) == (first.id, first.ts, True)
    alice.send(Say(room="lobby", text="marker", ref=3))
    alice.recv(Ack, ref=3)
    texts = [m.text for m in bob.drain() if isinstance(m, Said)]
    assert texts == ["once", "marker"]


def test_ids_increase_across_rooms_and_direct_messages(login: Login) -> None:
    """Message ids are one strictly increasing sequence across rooms and DMs."""
    alice = login("alice", rooms=["a", "b"])
    login("bob", rooms=[])
    ids = []
    for ref, request in enumerate(
        [Say(room="a", text="1"), Tell(to="bob", text="2"), Say(room="b", text="3"), Say(room="a", text="4")]
    ):
        alice.send(replace(request, ref=ref))
        ids.append(alice.recv(Ack, ref=ref).id)
    assert ids == sorted(ids)
    assert len(set(ids)) == 4


def test_direct_message(login: Login) -> None:
    """A tell reaches the recipient only, as a told; the sender gets an ack with the same id."""
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    alice.send(Tell(to="BOB", text="psst", ref=1))
    ack = alice.recv(Ack, ref=1)
    told = bob.recv(Told)
    assert (told.id, told.nick, told.to, told.text) == (ack.id, "alice", "bob", "psst")
    assert not [m for m in carol.drain() if isinstance(m, Told | Said)]


def test_tell_to_an_away_user_returns_their_away_message_in_the_ack(login: Login) -> None:
    """The ack of a tell carries the recipient's away message while they are away, and none otherwise."""
    alice, bob = login("alice"), login("bob")
    alice.send(Tell(to="bob", text="there?", ref=1))
    assert alice.recv(Ack, ref=1).away is None
    bob.send(SetAway(message="at lunch until 2"))
    alice.recv(AwayChanged)
    alice.send(Tell(to="bob", text="there now?", ref=2))
    assert alice.recv(Ack, ref=2).away == "at lunch until 2"
    assert bob.recv(Told, text="there now?").text == "there now?"
    alice.send(Say(room="lobby", text="room message", ref=3))
    assert alice.recv(Ack, ref=3).away is None  # only a tell says it


def test_a_note_to_self_is_acked_and_not_echoed(login: Login) -> None:
    """A tell to oneself is stored and acked like any tell, and not sent back as a told (the ack stands in
    its place, as for every message one sends); it is in the direct-message history."""
    alice = login("alice")
    alice.send(Tell(to="ALICE", text="buy milk", ref=1))
    ack = alice.recv(Ack, ref=1)
    # A told would have been queued right after the ack, before the pong of a ping sent only now.
    alice.send(Ping(token=5))
    before_pong: list[Message] = []
    alice.recv_until(lambda m: before_pong.append(m) is None and isinstance(m, Pong))
    assert not [m for m in before_pong if isinstance(m, Told)]
    alice.send(FetchHistory(direct=True, ref=2))
    page = alice.recv(History, ref=2)
    assert [(m.id, m.nick, m.to, m.text) for m in page.messages] == [(ack.id, "alice", "alice", "buy milk")]


def test_direct_message_to_offline_nick_is_refused(login: Login) -> None:
    """A tell to a nick nobody is using is refused with no_such_nick."""
    alice = login("alice")
    alice.send(Tell(to="nobody", text="hello?", ref=2))
    assert alice.error("no_such_nick").ref == 2


def test_nick_change_is_announced_once_to_each_neighbour(login: Login) -> None:
    """NickChanged goes to the user and to everyone sharing a room, once each, even across two rooms."""
    alice = login("alice", rooms=["a", "b"])
    bob = login("bob", rooms=["a", "b"])
    carol = login("carol", rooms=["c"])
    alice.send(ChangeNick(nick="alicia"))
    for client in (alice, bob):
        changes = [m for m in client.drain(0.2) if isinstance(m, NickChanged)]
        assert [(m.old, m.new) for m in changes] == [("alice", "alicia")]
    assert not [m for m in carol.drain() if isinstance(m, NickChanged)]
    bob.send(ChangeNick(nick="ALICIA", ref=3))
    assert bob.error("nick_taken").fatal is False


def test_messages_after_nick_change_carry_the_new_nick(login: Login) -> None:
    """The server, not the client, says who sent a message: the current nick."""
    alice, bob = login("alice"), login("bob")
    alice.send(ChangeNick(nick="al"))
    alice.send(Say(room="lobby", text="hi"))
    assert bob.recv(Said).nick == "al"


def test_topic_is_announced_and_kept_across_restart(make_server: Callable[..., ChatServer]) -> None:
    """A topic reaches the members, shows in RoomState and RoomList, and survives a restart."""
    server = make_server()
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        alice.send(SetTopic(room="lobby", topic="Friday demo"))
        changed = alice.recv(TopicChanged)
        assert (changed.topic, changed.nick) == ("Friday demo", "alice")
    server.stop()
    again = make_server()
    with ChatTestClient(again.address) as bob:
        bob.hello("bob")
        assert bob.recv(RoomState).topic == "Friday demo"
        bob.send(ListRooms(ref=1))
        assert bob.recv(RoomList, ref=1).rooms == (RoomSummary(name="lobby", topic="Friday demo", members=1),)


def test_away_is_announced_and_listed(login: Login) -> None:
    """SetAway reaches the user and room neighbours; RoomState shows the away message; None means back."""
    alice, bob = login("alice"), login("bob")
    alice.send(SetAway(message="lunch"))
    assert bob.recv(AwayChanged).message == "lunch"
    assert alice.recv(AwayChanged).nick == "alice"
    bob.send(Who(room="lobby", ref=1))
    members = {m.nick: m.away for m in bob.recv(RoomState, ref=1).members}
    assert members == {"alice": "lunch", "bob": None}
    alice.send(SetAway())
    assert bob.recv(AwayChanged).message is None


def test_room_list_counts_members(login: Login) -> None:
    """ListRooms lists each room with its member count; an empty room without history disappears."""
    alice = login("alice", rooms=["a", "b"])
    login("bob", rooms=["b"])
    alice.send(ListRooms(ref=1))
    rooms = alice.recv(RoomList, ref=1).rooms
    assert [(r.name, r.members) for r in rooms] == [("a", 1), ("b", 2)]
    alice.send(Leave(room="a"))
    alice.send(ListRooms(ref=2))
    assert [r.name for r in alice.recv(RoomList, ref=2).rooms] == ["b"]


def test_who_unknown_room(login: Login) -> None:
    """Who for a room that does not exist answers no_such_room."""
    alice = login("alice")
    alice.send(Who(room="void", ref=1))
    assert alice.error("no_such_room").ref == 1


def test_quit_signs_off_to_neighbours(login: Login) -> None:
    """Quit announces SignedOff with the reason to everyone who shared a room, then closes."""
    alice, bob = login("alice"), login("bob")
    alice.send(Quit(reason="home time"))
    alice.wait_closed()
    off = bob.recv(SignedOff)
    assert (off.nick, off.reason) == ("alice", "home time")
    bob.send(Who(room="lobby", ref=1))
    assert [m.nick for m in bob.recv(RoomState, ref=1).members] == ["bob"]


def test_dropped_connection_signs_off(login: Login) -> None:
    """A connection that just goes away is announced as SignedOff too."""
    alice, bob = login("alice"), login("bob")
    alice.close()
    assert bob.recv(SignedOff).nick == "alice"


def test_ping_is_answered(login: Login) -> None:
    """The server answers a client's ping with a pong carrying the same token."""
    alice = login("alice")
    alice.send(Ping(token=77, ref=3))
    pong = alice.recv(Pong)
    assert (pong.token, pong.ref) == (77, 3)


def test_server_stop_tells_clients(make_server: Callable[..., ChatServer]) -> None:
    """Stopping the server sends server_shutdown (fatal) to every client and closes within 2 s."""
    server = make_server()
    clients = [ChatTestClient(server.address) for _ in range(5)]
    for number, client in enumerate(clients):
        client.login(f"user{number}")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    for client in clients:
        errors = [m for m in client.wait_closed() if isinstance(m, Error)]
        assert [(e.code, e.fatal) for e in errors] == [("server_shutdown", True)]
        client.close()


def test_default_room_setting(make_server: Callable[..., ChatServer]) -> None:
    """A hello without rooms joins the configured default room."""
    server = make_server(default_room="general")
    with ChatTestClient(server.address) as alice:
        alice.hello("alice")
        assert alice.recv(History).room == "general"
