"""Room operators and moderation over real sockets: each action by an operator (its effect, its announcement,
its history entry), the same by a non-operator (refused, nothing happens), bans by nick and by address,
timed bans and mutes that lapse, room keys, invite-only rooms, the topic lock, and persistence across a
restart."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from chat_server.server import ChatServer
from shared import (
    Ack,
    Ban,
    BanList,
    Deop,
    Error,
    FetchHistory,
    History,
    Invite,
    Join,
    Joined,
    Kick,
    Leave,
    Left,
    ListBans,
    Message,
    Moderated,
    Mute,
    Op,
    RoomState,
    Said,
    Say,
    SetMode,
    SetTopic,
    TopicChanged,
    Unban,
    Unmute,
    Who,
)

from .client import ChatTestClient, wait_until

Login = Callable[..., ChatTestClient]
MakeServer = Callable[..., ChatServer]
ROOM = "den"


def join(client: ChatTestClient, room: str = ROOM, key: str | None = None) -> RoomState:
    """Join `room` and wait for its state and backfill."""
    client.send(Join(room=room, key=key, ref=77))
    state = client.recv(RoomState, ref=77)
    client.recv(History, ref=77)
    return state


def refused(client: ChatTestClient, request: Message, code: str) -> Error:
    """Send `request` and expect the error `code` answering it."""
    client.send(request)
    error = client.recv(Error)
    assert (error.code, error.fatal) == (code, False), error
    return error


def members(client: ChatTestClient, room: str = ROOM) -> dict[str, bool]:
    """The room's members as `client` is told by `who`: nick -> operator flag."""
    client.send(Who(room=room, ref=55))
    state = client.recv(RoomState, ref=55)
    return {member.nick: member.op for member in state.members}


def backfill(client: ChatTestClient, room: str = ROOM) -> list[Message]:
    """The room's history as a fresh join replays it."""
    client.send(Join(room=room, ref=66))
    return list(client.recv(History, ref=66).messages)


@pytest.fixture
def den(login: Login) -> tuple[ChatTestClient, ChatTestClient]:
    """alice creates `den` (so she is its operator); bob joins it."""
    alice = login("alice", rooms=[])
    join(alice)
    bob = login("bob", rooms=[])
    join(bob)
    alice.recv(Joined, nick="bob")
    return alice, bob


def test_the_creator_is_operator_and_marked_so(login: Login) -> None:
    """The first joiner of a new room is its operator (`joined.op`, `member.op`); the second is not."""
    alice = login("alice", rooms=[])
    alice.send(Join(room=ROOM))
    assert alice.recv(Joined).op is True
    assert [(m.nick, m.op) for m in alice.recv(RoomState).members] == [("alice", True)]
    bob = login("bob", rooms=[])
    bob.send(Join(room=ROOM))
    assert bob.recv(Joined, nick="bob").op is False
    state = bob.recv(RoomState)
    assert [(m.nick, m.op) for m in state.members] == [("alice", True), ("bob", False)]
    assert state.key is None


def test_kick_by_operator_is_announced_stored_and_removes_the_target(
    den: tuple[ChatTestClient, ChatTestClient], login: Login
) -> None:
    alice, bob = den
    alice.send(Kick(room=ROOM, nick="bob", reason="too loud", ref=5))
    for client in (alice, bob):
        kicked = client.recv(Moderated)
        assert (kicked.action, kicked.nick, kicked.target, kicked.reason) == (
            "kick",
            "alice",
            "bob",
            "too loud",
        )
        left = client.recv(Left, nick="bob")
        assert left.reason == "kicked by alice: too loud"
    assert alice.recv(Ack, ref=5).id == kicked.id
    assert members(alice) == {"alice": True}
    later = login("carol", rooms=[])
    stored = [m for m in backfill(later) if isinstance(m, Moderated)]
    assert [(m.id, m.action, m.target) for m in stored] == [(kicked.id, "kick", "bob")]
    join(bob)  # a kick is not a ban: bob may come back


def test_moderation_by_a_non_operator_is_refused_and_changes_nothing(
    den: tuple[ChatTestClient, ChatTestClient], login: Login
) -> None:
    alice, bob = den
    requests: list[Message] = [
        Kick(room=ROOM, nick="alice"),
        Ban(room=ROOM, nick="alice"),
        Ban(room=ROOM, nick="alice", by_address=True),
        Unban(room=ROOM, nick="zed"),
        ListBans(room=ROOM),
        Mute(room=ROOM, nick="alice"),
        Unmute(room=ROOM, nick="alice"),
        Op(room=ROOM, nick="bob"),
        Deop(room=ROOM, nick="alice"),
        SetMode(room=ROOM, topic_lock=True, invite_only=True, key="mine"),
        Invite(room=ROOM, nick="alice"),
    ]
    for request in requests:
        error = refused(bob, request, "not_operator")
        assert "not an operator of den" in error.message
    assert members(bob) == {"alice": True, "bob": False}
    state = join(login("carol", rooms=[]))  # no key, not invite-only
    assert (state.topic_lock, state.invite_only, state.keyed) == (False, False, False)
    assert not [m for m in backfill(alice) if isinstance(m, Moderated)]
    alice.send(Say(room=ROOM, text="still here", ref=9))
    alice.recv(Ack, ref=9)  # alice is neither kicked, banned nor muted
    refused(bob, Kick(room="elsewhere", nick="alice"), "not_in_room")


def test_ban_by_nick_keeps_the_nick_out_until_unbanned(
    den: tuple[ChatTestClient, ChatTestClient], login: Login
) -> None:
    alice, bob = den
    alice.send(Ban(room=ROOM, nick="bob", reason="spam", ref=3))
    banned = bob.recv(Moderated)
    assert (banned.action, banned.target, banned.until) == ("ban", "bob", None)
    bob.recv(Left, nick="bob")
    alice.recv(Ack, ref=3)
    error = refused(bob, Join(room=ROOM), "banned")
    assert error.message == "you are banned from den (spam)"
    alice.send(ListBans(room=ROOM, ref=4))
    listing = alice.recv(BanList, ref=4)
    assert [(b.nick, b.by, b.address, b.reason) for b in listing.bans] == [("bob", "alice", None, "spam")]
    alice.send(Unban(room=ROOM, nick="BOB", ref=6))
    assert alice.recv(Moderated, action="unban").target == "bob"
    alice.recv(Ack, ref=6)
    join(bob)
    refused(alice, Unban(room=ROOM, nick="bob"), "no_such_nick")
    refused(alice, Unban(room=ROOM), "invalid_field")


def test_ban_by_address_removes_that_host_and_keeps_it_out(make_server: MakeServer) -> None:
    """Clients bound to 127.0.0.2 and 127.0.0.3 act as two hosts: banning bob's address removes bob and
    carol (same host) but not dave; a new nick from that host is refused; unbanning the address lets it in."""
    server = make_server()
    clients: list[ChatTestClient] = []

    def log_in(nick: str, source: str) -> ChatTestClient:
        client = ChatTestClient(server.address, source=source)
        clients.append(client)
        client.login(nick, rooms=[])
        join(client)
        return client

    try:
        alice = log_in("alice", "127.0.0.1")
        log_in("bob", "127.0.0.2")
        carol = log_in("carol", "127.0.0.2")
        dave = log_in("dave", "127.0.0.3")
        alice.send(Ban(room=ROOM, nick="bob", by_address=True, ref=1))
        assert dave.recv(Moderated).action == "ban_address"
        assert {dave.recv(Left).nick, dave.recv(Left).nick} == {"bob", "carol"}
        alice.recv(Ack, ref=1)
        assert members(alice) == {"alice": True, "dave": False}
        erin = ChatTestClient(server.address, source="127.0.0.2")
        clients.append(erin)
        erin.login("erin", rooms=[])
        refused(erin, Join(room=ROOM), "banned")
        alice.send(ListBans(room=ROOM, ref=2))
        (entry,) = alice.recv(BanList, ref=2).bans
        assert (entry.nick, entry.address) == ("bob", "127.0.0.2")
        refused(alice, Ban(room=ROOM, nick="alice", by_address=True), "forbidden")  # her own address
        alice.send(Unban(room=ROOM, address="127.0.0.2", ref=3))
        assert alice.recv(Moderated, action="unban_address").target == "bob"
        join(erin)
        join(carol)
    finally:
        for client in clients:
            client.close()


def test_a_timed_ban_lapses_by_itself(den: tuple[ChatTestClient, ChatTestClient]) -> None:
    """A ban for 3 s holds at once (the refusal says how long is left), then lapses with nothing done."""
    alice, bob = den
    alice.send(Ban(room=ROOM, nick="bob", duration=3, ref=1))
    banned = alice.recv(Moderated)
    assert banned.until is not None
    # `until` counts from the request, `ts` from the storing a moment later (a loaded machine gave 2,999).
    assert 2_900 <= banned.until - banned.ts <= 3000
    alice.recv(Ack, ref=1)
    message = refused(bob, Join(room=ROOM), "banned").message
    assert re.fullmatch(r"you are banned from den for [123] seconds? more", message), message

    def rejoined() -> bool:
        bob.send(Join(room=ROOM, ref=8))
        answer = bob.recv_until(lambda m: getattr(m, "ref", None) == 8)
        return isinstance(answer, RoomState)

    wait_until(rejoined, 10, "the ban to lapse")
    alice.send(ListBans(room=ROOM, ref=2))
    assert alice.recv(BanList, ref=2).bans == ()


def test_mute_refuses_say_with_a_clear_error_until_unmuted_or_lapsed(
    den: tuple[ChatTestClient, ChatTestClient],
) -> None:
    alice, bob = den
    alice.send(Mute(room=ROOM, nick="bob", reason="cool down", ref=1))
    assert bob.recv(Moderated).action == "mute"
    alice.recv(Ack, ref=1)
    error = refused(bob, Say(room=ROOM, text="let me speak", ref=2), "muted")
    assert (error.message, error.ref) == ("you are muted in den (cool down)", 2)
    alice.send(Unmute(room=ROOM, nick="bob", ref=3))
    assert bob.recv(Moderated).action == "unmute"
    bob.send(Say(room=ROOM, text="thanks", ref=4))
    bob.recv(Ack, ref=4)
    assert alice.recv(Said).text == "thanks"
    refused(alice, Unmute(room=ROOM, nick="bob"), "no_such_nick")
    alice.send(Mute(room=ROOM, nick="bob", duration=1, ref=5))
    alice.recv(Ack, ref=5)

    def speaks() -> bool:
        bob.send(Say(room=ROOM, text="again", ref=6))
        return isinstance(bob.recv_until(lambda m: getattr(m, "ref", None) == 6), Ack)

    wait_until(speaks, 10, "the mute to lapse")
    refused(alice, Mute(room=ROOM, nick="bob", duration=0), "invalid_field")


def test_topic_lock_leaves_the_topic_to_operators(den: tuple[ChatTestClient, ChatTestClient]) -> None:
    alice, bob = den
    alice.send(SetMode(room=ROOM, topic_lock=True, ref=1))
    assert bob.recv(Moderated).action == "lock_topic"
    assert alice.recv(RoomState, ref=1).topic_lock is True
    error = refused(bob, SetTopic(room=ROOM, topic="mine now", ref=2), "not_operator")
    assert "locked" in error.message
    alice.send(SetTopic(room=ROOM, topic="agenda"))
    assert bob.recv(TopicChanged).topic == "agenda"
    alice.send(SetMode(room=ROOM, topic_lock=False, ref=3))
    assert bob.recv(Moderated).action == "unlock_topic"
    bob.send(SetTopic(room=ROOM, topic="open again"))
    alice.recv(TopicChanged, topic="open again")


def test_room_key_right_wrong_and_missing(den: tuple[ChatTestClient, ChatTestClient], login: Login) -> None:
    alice, bob = den
    alice.send(SetMode(room=ROOM, key="s3cret", ref=1))
    assert alice.recv(RoomState, ref=1).key == "s3cret"  # operators see the key
    announced = bob.recv(Moderated)
    assert announced.action == "set_key"
    assert "s3cret" not in repr(announced)
    members(bob)  # everything bob was sent is read
    assert all("s3cret" not in repr(message) for message in bob.drain())
    bob.send(Who(room=ROOM, ref=2))
    state = bob.recv(RoomState, ref=2)
    assert (state.keyed, state.key) == (True, None)  # members see that there is a key, not the key
    carol = login("carol", rooms=[])
    refused(carol, Who(room=ROOM), "forbidden")  # a closed room's members are for its members
    assert "needs a key" in refused(carol, Join(room=ROOM), "bad_key").message
    assert "needs the right key" in refused(carol, Join(room=ROOM, key="guess"), "bad_key").message
    join(carol, key="s3cret")
    history = backfill(alice)
    assert all("s3cret" not in repr(message) for message in history)
    alice.send(SetMode(room=ROOM, key="", ref=3))
    alice.recv(Moderated, action="clear_key")
    join(login("dave", rooms=[]))


def test_invite_only_lets_in_the_invited_nick_only(
    den: tuple[ChatTestClient, ChatTestClient], login: Login
) -> None:
    alice, _bob = den
    alice.send(SetMode(room=ROOM, invite_only=True, key="k", ref=1))
    assert [alice.recv(Moderated).action for _ in range(2)] == ["invite_only", "set_key"]
    carol, dave = login("carol", rooms=[]), login("dave", rooms=[])
    assert "invite-only" in refused(carol, Join(room=ROOM), "invite_only").message
    alice.send(Invite(room=ROOM, nick="carol", ref=2))
    invited = carol.recv(Moderated)  # the invited nick is told, though not in the room
    assert (invited.action, invited.room, invited.target) == ("invite", ROOM, "carol")
    alice.recv(Ack, ref=2)
    join(carol)  # an invitation passes both invite-only and the key
    refused(dave, Join(room=ROOM), "invite_only")
    refused(alice, Invite(room=ROOM, nick="carol"), "already_in_room")
    refused(alice, Invite(room=ROOM, nick="nobody"), "no_such_nick")


def test_op_and_deop(den: tuple[ChatTestClient, ChatTestClient], login: Login) -> None:
    alice, bob = den
    carol = login("carol", rooms=[])
    join(carol)
    alice.send(Op(room=ROOM, nick="bob", ref=1))
    assert carol.recv(Moderated).action == "op"
    alice.recv(Ack, ref=1)
    assert members(carol) == {"alice": True, "bob": True, "carol": False}
    bob.send(Kick(room=ROOM, nick="carol", ref=2))
    bob.recv(Ack, ref=2)
    alice.send(Deop(room=ROOM, nick="bob", ref=3))
    assert bob.recv(Moderated, action="deop").target == "bob"
    refused(bob, Kick(room=ROOM, nick="alice"), "not_operator")
    refused(alice, Deop(room=ROOM, nick="bob"), "no_such_nick")
    refused(alice, Op(room=ROOM, nick="nobody"), "no_such_nick")


def test_history_pages_keep_moderation_in_id_order(den: tuple[ChatTestClient, ChatTestClient]) -> None:
    alice, bob = den
    alice.send(Say(room=ROOM, text="one", ref=1))
    alice.recv(Ack, ref=1)
    alice.send(Mute(room=ROOM, nick="bob", ref=2))
    alice.recv(Ack, ref=2)
    alice.send(Say(room=ROOM, text="two", ref=3))
    alice.recv(Ack, ref=3)
    bob.send(FetchHistory(room=ROOM, limit=10, ref=4))
    page = bob.recv(History, ref=4).messages
    assert [type(m).__name__ for m in page] == ["Said", "Moderated", "Said"]
    assert [m.id for m in page] == sorted(m.id for m in page)
    bob.send(FetchHistory(room=ROOM, before=page[-1].id, limit=1, ref=5))
    (older,) = bob.recv(History, ref=5).messages
    assert isinstance(older, Moderated)
    assert older.target == "bob"


@pytest.mark.parametrize("limit", [1, 3])
def test_each_list_is_bounded_by_max_moderation_entries(make_server: MakeServer, limit: int) -> None:
    """At the bound a room takes one more ban, past it `too_long`; lifting one makes room again."""
    server = make_server(max_moderation_entries=limit)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=[])
        join(alice)
        for n in range(limit):
            alice.send(Ban(room=ROOM, nick=f"spammer{n}", ref=n + 1))
            alice.recv(Ack, ref=n + 1)
        error = refused(alice, Ban(room=ROOM, nick="onemore"), "too_long")
        assert "max_moderation_entries" in error.message
        alice.send(Ban(room=ROOM, nick="spammer0", reason="again", ref=90))  # replacing is not adding
        alice.recv(Ack, ref=90)
        alice.send(Unban(room=ROOM, nick="spammer0", ref=91))
        alice.recv(Ack, ref=91)
        alice.send(Ban(room=ROOM, nick="onemore", ref=92))
        alice.recv(Ack, ref=92)


def test_rules_and_their_history_survive_a_restart(make_server: MakeServer) -> None:
    """Bans, mutes and modes come back after a restart, and so does their history; session rights do not:
    the room (whose operator was not registered) goes to its first joiner again."""
    first = make_server()
    with ChatTestClient(first.address) as alice:
        alice.login("alice", rooms=[])
        join(alice)
        alice.send(Ban(room=ROOM, nick="bob"))
        alice.send(Mute(room=ROOM, nick="carol"))
        alice.send(SetMode(room=ROOM, topic_lock=True, key="k"))
        alice.recv(Moderated, action="set_key")
    first.stop()
    second = make_server()
    with (
        ChatTestClient(second.address) as bob,
        ChatTestClient(second.address) as carol,
        ChatTestClient(second.address) as dave,
    ):
        bob.login("bob", rooms=[])
        refused(bob, Join(room=ROOM, key="k"), "banned")
        carol.login("carol", rooms=[])
        refused(carol, Join(room=ROOM), "bad_key")
        state = join(carol, key="k")
        assert (state.topic_lock, state.keyed, state.key) == (True, True, "k")
        assert [(m.nick, m.op) for m in state.members] == [("carol", True)]
        refused(carol, Say(room=ROOM, text="hi"), "muted")  # a mute holds operators too
        dave.login("dave", rooms=[])
        state = join(dave, key="k")
        assert (state.keyed, state.key) == (True, None)
        refused(dave, SetTopic(room=ROOM, topic="mine"), "not_operator")
        history = [m for m in backfill(dave) if isinstance(m, Moderated)]
        assert [m.action for m in history] == ["ban", "mute", "lock_topic", "set_key"]


def test_a_room_that_vanishes_takes_its_session_rights_along(server: ChatServer, login: Login) -> None:
    """alice creates and leaves rooms in a loop: nothing accumulates in the rules; a room that vanished and
    comes back goes to its new first joiner, and its creator is no longer its operator."""
    alice, bob = login("alice", rooms=[]), login("bob", rooms=[])
    assert server._services is not None
    book = server._services.history.chat.moderation.book
    for n in range(30):
        join(alice, f"tmp{n}")
        alice.send(Leave(room=f"tmp{n}", ref=900 + n))
        alice.recv(Left, room=f"tmp{n}")
    join(bob, "tmp0")
    assert members(bob, "tmp0") == {"bob": True}
    state = join(alice, "tmp0")
    assert [(m.nick, m.op) for m in state.members] == [("bob", True), ("alice", False)]
    assert sorted(book.rooms) == ["tmp0"]
