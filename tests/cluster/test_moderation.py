"""Moderation across the cluster: a kick, ban, mute, op, invite or mode made by an operator on one server
holds on the other (its server applies the record from the log): a banned member connected to the other
server is put out of the room there and cannot rejoin, a muted one cannot speak there, and each entry has one
id on both servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chat_server.cluster.config import ClusterConfig
from chat_server.server import ChatServer
from shared import (
    Ack,
    Ban,
    Error,
    History,
    Invite,
    Join,
    Left,
    Message,
    Moderated,
    Mute,
    Op,
    Register,
    Registration,
    RoomState,
    Say,
    SetMode,
    Unban,
    Unmute,
    Who,
)
from shared.messages import Deop, Kick
from tests.cluster.test_accounts import log_in, publish_records
from tests.cluster.test_presence import Asker
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]

ROOM = "den"
#: A scrypt cost that takes microseconds (the defaults take tens of milliseconds per hash).
CHEAP: dict[str, Any] = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}


@pytest.fixture
def servers(start_cluster_server: Callable[..., ChatServer]) -> tuple[ChatServer, ChatServer]:
    """Two chat servers of one cluster."""
    return start_cluster_server("one", **CHEAP), start_cluster_server("two", **CHEAP)


@pytest.fixture
def clients(servers: tuple[ChatServer, ChatServer]) -> Iterator[Callable[[int, str], ChatTestClient]]:
    """Log a nick in on server 0 or 1 (no rooms); every client is closed at the end."""
    made: list[ChatTestClient] = []

    def log_in(server: int, nick: str) -> ChatTestClient:
        client = ChatTestClient(servers[server].address)
        made.append(client)
        client.login(nick, [])
        return client

    yield log_in
    for client in made:
        client.close()


def join(client: ChatTestClient, room: str = ROOM, key: str | None = None) -> RoomState:
    """Join `room` and wait for its state and backfill."""
    client.send(Join(room=room, key=key, ref=77))
    state = client.recv(RoomState, ref=77)
    client.recv(History, ref=77)
    return state


def act(operator: ChatTestClient, request: Message, ref: int) -> Ack:
    """An operator's request, acked (after its record came back through the log)."""
    operator.send(request)
    return operator.recv(Ack, ref=ref)


def test_a_ban_on_one_server_puts_the_member_on_the_other_out_for_good(
    clients: Callable[[int, str], ChatTestClient],
) -> None:
    alice, bob = clients(0, "alice"), clients(1, "bob")
    join(alice)  # the room's creator on server one: its operator
    join(bob)
    ack = act(alice, Ban(room=ROOM, nick="Bob", reason="spam", ref=1), 1)
    # Server two applied the record: bob hears of the ban (with the same id) and is put out of the room.
    moderated = bob.recv(Moderated, action="ban")
    assert (moderated.id, moderated.nick, moderated.target, moderated.reason) == (
        ack.id,
        "alice",
        "Bob",
        "spam",
    )
    left = bob.recv(Left, nick="bob")
    assert left.reason == "banned by alice: spam"
    bob.send(Join(room=ROOM, ref=2))
    assert bob.recv(Error, ref=2).code == "banned"
    # Lifted on server one: bob may join on server two again.
    act(alice, Unban(room=ROOM, nick="bob", ref=3), 3)

    def joined() -> bool:
        """Join, once server two has applied the unban (refused as banned until then)."""
        bob.send(Join(room=ROOM, ref=4))
        answer = bob.recv_until(lambda m: isinstance(m, RoomState | Error) and m.ref == 4)
        if isinstance(answer, Error):
            assert answer.code == "banned"
            return False
        bob.recv(History, ref=4)
        return True

    wait_until(joined, what="bob may join again")


def test_a_kick_on_one_server_reaches_the_member_on_the_other(
    clients: Callable[[int, str], ChatTestClient],
) -> None:
    alice, bob = clients(0, "alice"), clients(1, "bob")
    join(alice)
    join(bob)
    act(alice, Kick(room=ROOM, nick="bob", reason="calm down", ref=1), 1)
    assert bob.recv(Left, nick="bob").reason == "kicked by alice: calm down"
    join(bob)  # a kick is not a ban


def test_a_kicked_or_banned_member_leaves_the_room_on_every_server(
    clients: Callable[[int, str], ChatTestClient],
) -> None:
    """The cluster's roster loses the nick: every member on both servers hears `left` once, and `who` on
    both servers lists the room without it."""
    alice, bob, carol, dave = clients(0, "alice"), clients(1, "bob"), clients(0, "carol"), clients(1, "dave")
    for member in (alice, bob, carol, dave):
        join(member)
    on_one, on_two = Asker(carol), Asker(dave)
    everyone = [("alice", None), ("bob", None), ("carol", None), ("dave", None)]
    wait_until(lambda: on_one.who(ROOM) == on_two.who(ROOM) == everyone, what="all four listed on both")
    act(alice, Kick(room=ROOM, nick="bob", reason="calm down", ref=1), 1)
    for member in (alice, bob, carol, dave):  # the operator's server and the kicked member's
        assert member.recv(Left, nick="bob").reason == "kicked by alice: calm down"
    without_bob = [("alice", None), ("carol", None), ("dave", None)]
    assert on_one.who(ROOM) == without_bob
    assert on_two.who(ROOM) == without_bob
    # A ban of a member on the other server, made on the operator's: the same, and it cannot come back.
    act(alice, Ban(room=ROOM, nick="dave", ref=2), 2)
    for member in (alice, carol, dave):
        assert member.recv(Left, nick="dave").reason == "banned by alice"
    assert on_one.who(ROOM) == [("alice", None), ("carol", None)]
    dave.send(Join(room=ROOM, ref=3))
    assert dave.recv(Error, ref=3).code == "banned"
    Asker(alice).who(ROOM)  # its answer comes after whatever the two records sent alice
    assert on_one.who(ROOM) == [("alice", None), ("carol", None)]
    for member in (alice, carol):  # each heard of each leave once
        assert not [frame for frame in member.pending if isinstance(frame, Left)]


def test_an_address_ban_puts_out_that_addresss_members_on_every_server(
    servers: tuple[ChatServer, ChatServer], clients: Callable[[int, str], ChatTestClient]
) -> None:
    """Banning bob's address from server one, bob being on server two (the address his join carried into
    the roster), puts out every member that joined from there on both servers, each once, but the room's
    operators; the ban holds on both, and the operator's own address is not touched."""
    alice = clients(0, "alice")
    with (
        ChatTestClient(servers[1].address, source="127.0.0.2") as bob,
        ChatTestClient(servers[0].address, source="127.0.0.2") as dave,
        ChatTestClient(servers[1].address, source="127.0.0.2") as erin,
    ):
        for name, member in (("bob", bob), ("dave", dave), ("erin", erin)):
            member.login(name, [])
        for member in (alice, bob, dave, erin):
            join(member)
        act(alice, Op(room=ROOM, nick="erin", ref=1), 1)  # an operator: out of reach of the address ban
        on_two = Asker(bob)
        wait_until(
            lambda: [nick for nick, _ in on_two.who(ROOM)] == ["alice", "bob", "dave", "erin"], what="four"
        )
        act(alice, Ban(room=ROOM, nick="bob", by_address=True, ref=2), 2)
        # Each one hears of its own leave (and of the other's if that came first); alice and erin of both.
        for member in (alice, erin):
            assert {member.recv(Left, nick=nick).reason for nick in ("bob", "dave")} == {"banned by alice"}
        assert bob.recv(Left, nick="bob").reason == dave.recv(Left, nick="dave").reason == "banned by alice"
        assert Asker(alice).who(ROOM) == [("alice", None), ("erin", None)]
        assert Asker(erin).who(ROOM) == [("alice", None), ("erin", None)]
        assert not [frame for frame in alice.pending if isinstance(frame, Left)]
        bob.send(Join(room=ROOM, ref=3))
        assert bob.recv(Error, ref=3).code == "banned"


def test_operator_rights_of_sessions_are_the_same_on_every_server(
    clients: Callable[[int, str], ChatTestClient],
) -> None:
    """A session's operator right (the room's creator, or an `op` given to a nick that is not registered)
    is in the cluster's roster: `who` marks the same operators on both servers, and a `deop` made on one
    server takes the right of a session on the other."""
    alice, bob, carol = clients(0, "alice"), clients(1, "bob"), clients(0, "carol")
    for member in (alice, bob, carol):
        join(member)
    on_one, on_two = Asker(carol), Asker(bob)

    def operators(asker: Asker) -> list[str]:
        asker.ref += 1
        asker.client.send(Who(room=ROOM, ref=asker.ref))
        return [m.nick for m in asker.client.recv(RoomState, ref=asker.ref).members if m.op]

    wait_until(lambda: operators(on_one) == operators(on_two) == ["alice"], what="the creator on both")
    act(alice, Op(room=ROOM, nick="bob", ref=1), 1)
    assert operators(on_one) == operators(on_two) == ["alice", "bob"]
    bob.send(SetMode(room=ROOM, topic_lock=True, ref=2))
    assert bob.recv(RoomState, ref=2).topic_lock
    # alice, on server one, takes the right of bob's session on server two (refused before: unknown there).
    act(alice, Deop(room=ROOM, nick="bob", ref=3), 3)
    assert operators(on_one) == operators(on_two) == ["alice"]
    bob.send(SetMode(room=ROOM, topic_lock=False, ref=4))
    assert bob.recv(Error, ref=4).code == "not_operator"


def test_a_kick_of_a_nick_in_the_room_nowhere_is_refused(
    clients: Callable[[int, str], ChatTestClient],
) -> None:
    """As on a single server: `no_such_nick`, and no `moderated` entry is stored."""
    alice = clients(0, "alice")
    clients(1, "bob")  # online (on server two), not in the room
    join(alice)
    alice.send(Kick(room=ROOM, nick="bob", ref=1))
    refused = alice.recv(Error, ref=1)
    assert (refused.code, refused.message) == ("no_such_nick", "bob is not in den")
    alice.send(Kick(room=ROOM, nick="nobody", ref=2))
    assert alice.recv(Error, ref=2).code == "no_such_nick"
    assert not [frame for frame in alice.pending if isinstance(frame, Moderated)]


def test_a_mute_on_one_server_silences_the_member_on_the_other(
    clients: Callable[[int, str], ChatTestClient],
) -> None:
    alice, bob = clients(0, "alice"), clients(1, "bob")
    join(alice)
    join(bob)
    ack = act(alice, Mute(room=ROOM, nick="bob", duration=600, ref=1), 1)
    assert bob.recv(Moderated, action="mute").id == ack.id
    bob.send(Say(room=ROOM, text="can I?", ref=2))
    assert bob.recv(Error, ref=2).code == "muted"
    act(alice, Unmute(room=ROOM, nick="bob", ref=3), 3)
    bob.recv(Moderated, action="unmute")
    bob.send(Say(room=ROOM, text="thanks", ref=4))
    said = bob.recv(Ack, ref=4)
    assert alice.recv(Moderated, action="unmute").id < said.id


def test_an_op_on_one_server_makes_an_operator_on_the_other(
    clients: Callable[[int, str], ChatTestClient],
) -> None:
    alice, bob, carol = clients(0, "alice"), clients(1, "bob"), clients(1, "carol")
    join(alice)
    join(bob)  # the room's first member on server two
    join(carol)
    carol.send(SetMode(room=ROOM, topic_lock=True, ref=1))
    assert carol.recv(Error, ref=1).code == "not_operator"
    act(alice, Op(room=ROOM, nick="carol", ref=2), 2)
    carol.recv(Moderated, action="op")
    carol.send(SetMode(room=ROOM, topic_lock=True, ref=3))
    assert carol.recv(RoomState, ref=3).topic_lock
    # ... and the mode she set holds on server one.
    assert alice.recv(Moderated, action="lock_topic").nick == "carol"


def test_modes_and_invitations_on_one_server_hold_on_the_other(
    clients: Callable[[int, str], ChatTestClient],
) -> None:
    alice, bob, dave = clients(0, "alice"), clients(1, "bob"), clients(1, "dave")
    join(alice)
    join(bob)  # in the room on server two: what he hears shows what server two applied
    alice.send(SetMode(room=ROOM, invite_only=True, ref=1))
    assert alice.recv(RoomState, ref=1).invite_only
    bob.recv(Moderated, action="invite_only")
    dave.send(Join(room=ROOM, ref=2))
    assert dave.recv(Error, ref=2).code == "invite_only"
    act(alice, Invite(room=ROOM, nick="dave", ref=3), 3)
    assert dave.recv(Moderated, action="invite").target == "dave"  # the invited nick hears of it
    join(dave)
    # Two modes at once: two records, two entries with their own ids, one room_state answering.
    alice.send(SetMode(room=ROOM, invite_only=False, key="sesame", ref=4))
    state = alice.recv(RoomState, ref=4)
    assert (state.invite_only, state.keyed, state.key) == (False, True, "sesame")
    opened, keyed = bob.recv(Moderated, action="open"), bob.recv(Moderated, action="set_key")
    assert opened.id < keyed.id
    erin = clients(1, "erin")
    erin.send(Join(room=ROOM, ref=5))
    assert erin.recv(Error, ref=5).code == "bad_key"
    join(erin, key="sesame")


def test_a_registered_creators_operator_right_holds_on_the_other_server(
    servers: tuple[ChatServer, ChatServer], clients: Callable[[int, str], ChatTestClient]
) -> None:
    alice = clients(0, "alice")
    alice.send(Register(password="secret", ref=1))
    alice.recv(Registration, ref=1)
    join(alice)  # the room's creator: its operator, stored for her registered nick through the log
    bob = clients(1, "bob")
    join(bob)
    alice.close()
    with log_in(servers[1], "alice", "secret") as again:
        state = join(again)
        assert {member.nick: member.op for member in state.members}["alice"]


def test_an_action_whose_author_has_no_stored_right_in_the_log_changes_nothing(
    clients: Callable[[int, str], ChatTestClient], cluster_config: ClusterConfig
) -> None:
    alice, carol = clients(0, "alice"), clients(1, "carol")
    join(alice)
    join(carol)
    # A record of a registered operator whose right a deop took away before it (as the log orders them):
    # every server re-checks the stored right and refuses it.
    forged = {
        "k": "moderate",
        "o": "elsewhere",
        "t": 1,
        "ts": 1,
        "nick": "mallory",
        "nick_key": "mallory",
        "room_key": ROOM,
        "room": ROOM,
        "action": "mute",
        "target": "carol",
        "reason": None,
        "until": None,
        "by": "account",
        "subject": "carol",
    }
    # And one of a session operator whose right is gone, or who never had it (carol's session is not one):
    # the roster every server holds alike says so, and every server refuses it.
    by_session = {**forged, "t": 2, "nick": "carol", "nick_key": "carol", "target": "alice", "by": "session"}
    by_session["subject"] = "alice"
    publish_records(cluster_config, [forged, by_session])
    act(alice, Mute(room=ROOM, nick="dave", ref=1), 1)
    carol.recv(Moderated, action="mute", target="dave")  # applied after the forged one on server two
    carol.send(Say(room=ROOM, text="still here", ref=2))
    carol.recv(Ack, ref=2)
    alice.send(Say(room=ROOM, text="not muted either", ref=3))
    alice.recv(Ack, ref=3)
