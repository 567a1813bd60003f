"""Who holds moderation rights, over real TCP: server admins from the config count only once their registered
nick's password was verified; a registered creator's or promoted operator's rights are stored and survive a
reconnect and a restart; an unregistered holder of the same nick gets nothing."""

from __future__ import annotations

from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Ack, Ban, Error, Join, Joined, Kick, Left, Moderated, Op, RoomState
from tests.server.client import ChatTestClient
from tests.server.test_moderation import join, members, refused

from .test_registered_nicks import CHEAP, log_in, quit_and_wait, register

MakeServer = Callable[..., ChatServer]
ROOM = "den"


def registered(server: ChatServer, nick: str, password: str) -> None:
    """Register `nick` with `password` (then log that connection out)."""
    client = log_in(server, nick)
    register(client, password)
    quit_and_wait(server, client)


def test_a_verified_admin_is_operator_everywhere_and_out_of_reach(make_server: MakeServer) -> None:
    server = make_server(admins=("root",), **CHEAP)
    registered(server, "root", "hunter2")
    with log_in(server, "alice") as alice, log_in(server, "root", nick_password="hunter2") as root:
        join(alice)  # alice created den: its operator
        root.send(Kick(room=ROOM, nick="alice"))  # not in the room: an admin too must join first
        assert root.recv(Error).code == "not_in_room"
        state = join(root)
        assert [(m.nick, m.op) for m in state.members] == [("alice", True), ("root", True)]
        assert "server admin" in refused(alice, Kick(room=ROOM, nick="root"), "forbidden").message
        refused(alice, Ban(room=ROOM, nick="root"), "forbidden")
        root.send(Kick(room=ROOM, nick="alice", ref=2))
        root.recv(Ack, ref=2)
        assert alice.recv(Left, nick="alice").reason == "kicked by root"


def test_an_admin_nick_without_its_password_has_no_rights(make_server: MakeServer) -> None:
    """`admins` names a nick; a client that merely uses that nick (not registered, so not verified) is an
    ordinary user."""
    server = make_server(admins=("root",), **CHEAP)
    with log_in(server, "alice") as alice, log_in(server, "root") as impostor:
        join(alice)
        state = join(impostor)
        assert [(m.nick, m.op) for m in state.members] == [("alice", True), ("root", False)]
        refused(impostor, Kick(room=ROOM, nick="alice"), "not_operator")
        alice.send(Kick(room=ROOM, nick="root", ref=1))  # and no protection either
        alice.recv(Ack, ref=1)


def test_rights_of_registered_nicks_are_stored_across_reconnects_and_restarts(
    make_server: MakeServer,
) -> None:
    """ann (registered) creates den; she makes bob (registered) and carl (not registered) operators. After a
    restart the room is empty: dave joins first but does not become operator (den has stored operators);
    ann and bob are operators again once verified; carl's right ended with his connection."""
    first = make_server(**CHEAP)
    registered(first, "ann", "ann-pw")
    registered(first, "bob", "bob-pw")
    with (
        log_in(first, "ann", nick_password="ann-pw") as ann,
        log_in(first, "bob", nick_password="bob-pw") as bob,
        log_in(first, "carl") as carl,
    ):
        join(ann)
        join(bob)
        join(carl)
        for ref, nick in enumerate(("bob", "carl"), start=1):
            ann.send(Op(room=ROOM, nick=nick, ref=ref))
            ann.recv(Ack, ref=ref)
        assert members(carl) == {"ann": True, "bob": True, "carl": True}
    first.stop()
    second = make_server(**CHEAP)
    with (
        ChatTestClient(second.address) as dave,
        log_in(second, "carl") as carl,
        log_in(second, "bob", nick_password="bob-pw") as bob,
    ):
        dave.login("dave", rooms=[])
        assert [(m.nick, m.op) for m in join(dave).members] == [("dave", False)]
        join(carl)
        bob.send(Join(room=ROOM))
        assert bob.recv(Joined, nick="bob").op is True
        bob.recv(RoomState)
        assert members(dave) == {"dave": False, "carl": False, "bob": True}
        refused(carl, Kick(room=ROOM, nick="dave"), "not_operator")
        bob.send(Kick(room=ROOM, nick="dave", ref=5))
        assert carl.recv(Moderated).action == "kick"
        bob.recv(Ack, ref=5)
