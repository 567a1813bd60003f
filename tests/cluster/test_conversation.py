"""Edits, deletions, reactions and topics in cluster mode: two chat servers on one real NATS cluster.

A change made on one server reaches the conversation's members on both, among the messages in one order
(the stream's), exactly once; the single server's rules hold across servers, and a race of two reactions for
the last slot has one winner on every server alike; history pages and resume show the same state on both;
a topic set on one server is seen on the other, also by a client that joins later.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chat_server.server import ChatServer
from shared import (
    DELETED_TEXT,
    Ack,
    Delete,
    Deleted,
    Edit,
    Edited,
    Error,
    FetchHistory,
    History,
    Join,
    Message,
    Moderated,
    Ok,
    React,
    Reacted,
    RoomState,
    Said,
    Say,
    SetTopic,
    Tell,
    Told,
    TopicChanged,
    Unreact,
    Unreacted,
)
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]

ROOM = "den"
StartServer = Callable[..., ChatServer]
#: The frames that carry an entry of the room's history (a message, an event, a moderation entry).
ENTRIES = (Said, Edited, Deleted, Reacted, Unreacted, Moderated)
Entry = Said | Edited | Deleted | Reacted | Unreacted | Moderated


def answer(client: ChatTestClient, request: Message) -> Message:
    """Send `request` (with a `ref`) and return the frame that answers it."""
    ref = request.ref  # type: ignore[attr-defined]
    client.send(request)
    return client.recv_until(lambda m: getattr(m, "ref", None) == ref and isinstance(m, Ack | Ok | Error))


def acked(client: ChatTestClient, request: Message) -> Ack:
    """Send `request` and return its `ack` (fail on anything else)."""
    reply = answer(client, request)
    assert isinstance(reply, Ack), reply
    return reply


def refused(client: ChatTestClient, request: Message, code: str) -> Error:
    """Send `request` and check it is refused with `code`."""
    reply = answer(client, request)
    assert isinstance(reply, Error), reply
    assert reply.code == code, reply
    return reply


def entries_until(client: ChatTestClient, last: int, seen: list[Entry] | None = None) -> list[Entry]:
    """The history entries `client` receives live up to the one with id `last`, in arrival order (after
    those in `seen`, which it extends)."""
    seen = [] if seen is None else seen
    while not seen or seen[-1].id < last:
        entry = client.recv_until(lambda m: isinstance(m, ENTRIES))
        assert isinstance(entry, ENTRIES)
        seen.append(entry)
    return seen


def reply_to(client: ChatTestClient, ref: int) -> Message:
    """The frame that answers `client`'s request `ref`."""
    return client.recv_until(lambda m: getattr(m, "ref", None) == ref)


def page(client: ChatTestClient, ref: int) -> History:
    """The room's latest history page, as `client`'s server serves it."""
    client.send(FetchHistory(room=ROOM, limit=100, ref=ref))
    return client.recv(History, ref=ref)


def test_changes_reach_both_servers_once_in_one_order(start_cluster_server: StartServer) -> None:
    """An edit, a reaction, its removal and a deletion made on either server reach every member once, in
    the stream's order among the messages; the requester's ack names its event."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with (
        ChatTestClient(one.address) as alice,
        ChatTestClient(two.address) as bob,
        ChatTestClient(two.address) as carol,
    ):
        alice.login("alice", [ROOM])
        bob.login("bob", [ROOM])
        carol.login("carol", [ROOM])
        first = acked(alice, Say(room=ROOM, text="first", ref=1))
        second = acked(bob, Say(room=ROOM, text="second", ref=2))
        edit = acked(alice, Edit(id=first.id, text="first, fixed", ref=3))
        bob_saw = entries_until(bob, first.id)  # server two has applied it: bob may react to it
        react = acked(bob, React(id=first.id, reaction="👍", ref=4))
        third = acked(alice, Say(room=ROOM, text="third", ref=5))
        unreact = acked(bob, Unreact(id=first.id, reaction="👍", ref=6))
        delete = acked(bob, Delete(id=second.id, ref=7))
        ids = [first.id, second.id, edit.id, react.id, third.id, unreact.id, delete.id]
        assert ids == sorted(ids)  # every change takes the next id of the one log: its stream sequence
        # Each member gets every entry once, in id order; its own messages came as acks (its events do come).
        own = {alice: {first.id, third.id}, bob: {second.id}, carol: set()}
        seen = {client: entries_until(client, delete.id) for client in (alice, carol)}
        seen[bob] = entries_until(bob, delete.id, bob_saw)
        for client, entries in seen.items():
            assert [m.id for m in entries] == [i for i in ids if i not in own[client]]
        assert seen[carol][2:4] == [
            Edited(id=edit.id, message_id=first.id, nick="alice", text="first, fixed", ts=edit.ts, room=ROOM),
            Reacted(id=react.id, message_id=first.id, nick="bob", reaction="👍", ts=react.ts, room=ROOM),
        ]
        assert seen[alice][-1] == Deleted(
            id=delete.id, message_id=second.id, nick="bob", ts=delete.ts, room=ROOM
        )
        for client in (alice, bob, carol):
            assert not [m for m in client.drain() if isinstance(m, ENTRIES)]  # and nothing comes twice


def test_history_and_resume_show_the_changes_on_both_servers(start_cluster_server: StartServer) -> None:
    """A history page is the same on both servers (edited text, tombstone, reactions, events), and a member
    resuming on the other server gets the changes made since once."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [ROOM])
        bob.login("bob", [ROOM])
        kept = acked(alice, Say(room=ROOM, text="kept", ref=1))
        gone = acked(alice, Say(room=ROOM, text="gone", ref=2))
        last_seen = bob.recv(Said, id=gone.id).id
        edit = acked(alice, Edit(id=kept.id, text="kept, edited", ref=3))
        react = acked(alice, React(id=kept.id, reaction="🎉", ref=4))
        delete = acked(alice, Delete(id=gone.id, ref=5))
        entries_until(bob, delete.id)  # applied on server two
        page_one, page_two = page(alice, 6), page(bob, 6)
        assert page_one == page_two
        shown = {m.id: m for m in page_two.messages}
        edited, tombstone = shown[kept.id], shown[gone.id]
        assert isinstance(edited, Said)
        assert isinstance(tombstone, Said)
        assert (edited.text, edited.rev, edited.edited) == ("kept, edited", react.id, edit.ts)
        assert [(r.reaction, r.nicks) for r in edited.reactions or ()] == [("🎉", ("alice",))]
        assert (tombstone.deleted, tombstone.text, tombstone.rev) == (True, DELETED_TEXT, delete.id)
        # The deletion removed nothing else; the events are in the page, in id order.
        assert [e.id for e in page_two.events or ()] == [edit.id, react.id, delete.id]
        with ChatTestClient(two.address) as dave:
            dave.login("dave", [])
            dave.send(Join(room=ROOM, after=last_seen, ref=7))
            resume = dave.recv(History, ref=7)
            assert [e.id for e in resume.events or ()] == [edit.id, react.id, delete.id]
            assert not [m for m in dave.drain() if isinstance(m, ENTRIES)]  # and not a second time live


def test_rules_hold_across_servers(start_cluster_server: StartServer) -> None:
    """Only the author edits, within the edit window of the author's server; only the author or an operator
    deletes; an operator's deletion on the other server is a moderation entry seen on both."""
    one = start_cluster_server("one", edit_window=0.5)
    two = start_cluster_server("two")
    with (
        ChatTestClient(one.address) as alice,
        ChatTestClient(one.address) as carol,
        ChatTestClient(two.address) as bob,
        ChatTestClient(two.address) as dave,
    ):
        bob.login("bob", [ROOM])  # the first in the room (on any server: membership is shared): its operator
        alice.login("alice", [ROOM])
        carol.login("carol", [ROOM])
        dave.login("dave", [ROOM])
        mine = acked(alice, Say(room=ROOM, text="alice's", ref=1))
        for client in (bob, dave):
            client.recv(Said, id=mine.id)  # server two has applied it
        refused(bob, Edit(id=mine.id, text="not yours", ref=2), "forbidden")
        refused(dave, Delete(id=mine.id, ref=3), "forbidden")
        acked(alice, Edit(id=mine.id, text="alice's, fixed", ref=4))  # inside its server's window
        sent = time.monotonic()
        wait_until(lambda: time.monotonic() - sent > 0.6, 5.0, "the edit window to pass")
        refused(alice, Edit(id=mine.id, text="too late", ref=5), "edit_window_closed")
        # bob, the operator, on server two, deletes carol's message (on server one): the deletion and its
        # moderation entry reach both servers, and bob's ack names the entry.
        hers = acked(carol, Say(room=ROOM, text="carol's", ref=6))
        bob.recv(Said, id=hers.id)
        delete = acked(bob, Delete(id=hers.id, reason="off topic", ref=7))
        for client in (alice, carol, dave):
            deleted = client.recv(Deleted, message_id=hers.id)
            moderated = client.recv(Moderated, action="delete")
            assert (moderated.id, moderated.nick, moderated.target, moderated.reason) == (
                delete.id,
                "bob",
                "carol",
                "off topic",
            )
            assert deleted.id < moderated.id
        refused(carol, Edit(id=hers.id, text="back", ref=8), "no_such_message")
        refused(alice, Delete(id=hers.id, ref=9), "no_such_message")
        assert page(alice, 10) == page(dave, 10)


def test_reaction_race_for_the_last_slot_has_one_winner_everywhere(start_cluster_server: StartServer) -> None:
    """Three members on two servers react at once to a message that takes one more reaction: exactly one
    wins, the others get too_many_reactions, and both servers keep the same one."""
    one = start_cluster_server("one", max_reactions_per_message=1)
    two = start_cluster_server("two", max_reactions_per_message=1)
    with (
        ChatTestClient(one.address) as alice,
        ChatTestClient(one.address) as carol,
        ChatTestClient(two.address) as bob,
    ):
        racers = {alice: "👍", carol: "🎉", bob: "🚀"}
        for client, nick in ((alice, "alice"), (carol, "carol"), (bob, "bob")):
            client.login(nick, [ROOM])
        for round_ in range(5):
            message = acked(alice, Say(room=ROOM, text=f"race {round_}", ref=100 + round_))
            for client in (carol, bob):
                client.recv(Said, id=message.id)
            for client, reaction in racers.items():  # no waiting in between: the checks race the log
                client.send(React(id=message.id, reaction=reaction, ref=round_ + 1))
            replies = {client: reply_to(client, round_ + 1) for client in racers}
            winners = [client for client, reply in replies.items() if isinstance(reply, Ack)]
            assert len(winners) == 1, replies
            losers = [reply for reply in replies.values() if isinstance(reply, Error)]
            assert [error.code for error in losers] == ["too_many_reactions"] * 2
            won = replies[winners[0]]
            for client in racers:
                reacted = client.recv(Reacted, message_id=message.id)
                assert (reacted.id, reacted.reaction) == (won.id, racers[winners[0]])  # type: ignore[attr-defined]
            pages = [page(client, 1000 + round_) for client in (alice, bob)]
            assert pages[0] == pages[1]
            shown = next(m for m in pages[1].messages if m.id == message.id)
            assert [r.reaction for r in shown.reactions or ()] == [racers[winners[0]]]  # type: ignore[union-attr]
        for client in racers:
            assert not [
                m for m in client.drain() if isinstance(m, Reacted)
            ]  # no loser was announced anywhere


def test_direct_conversation_changes_reach_both_ends_on_two_servers(
    start_cluster_server: StartServer,
) -> None:
    """A reaction to a direct message and its edit reach the other end on the other server."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        note = acked(alice, Tell(to="bob", text="psst", ref=1))
        assert bob.recv(Told).id == note.id
        react = acked(bob, React(id=note.id, reaction="👀", ref=2))
        assert alice.recv(Reacted, id=react.id) == Reacted(
            id=react.id, message_id=note.id, nick="bob", reaction="👀", ts=react.ts, to="alice"
        )
        edit = acked(alice, Edit(id=note.id, text="psst, edited", ref=3))
        assert bob.recv(Edited, id=edit.id) == Edited(
            id=edit.id, message_id=note.id, nick="alice", text="psst, edited", ts=edit.ts, to="bob"
        )
        refused(bob, Edit(id=note.id, text="mine now", ref=4), "forbidden")
        refused(bob, Delete(id=note.id, ref=5), "forbidden")  # no operator in a direct conversation


def test_topic_set_on_one_server_is_seen_on_both(start_cluster_server: StartServer) -> None:
    """A topic set on one server reaches the room's members on both, and a client joining later on either
    server finds it in its room_state."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [ROOM])
        bob.login("bob", [ROOM])
        reply = answer(bob, SetTopic(room=ROOM, topic="plans for friday", ref=1))
        assert isinstance(reply, Ok)
        for client in (alice, bob):
            changed = client.recv(TopicChanged)
            assert (changed.room, changed.topic, changed.nick) == (ROOM, "plans for friday", "bob")
        for address, nick in ((one.address, "carol"), (two.address, "dave")):
            with ChatTestClient(address) as late:
                late.login(nick, [])
                late.send(Join(room=ROOM, ref=2))
                assert late.recv(RoomState, room=ROOM).topic == "plans for friday"
        refused(bob, SetTopic(room="elsewhere", topic="no", ref=3), "not_in_room")


def test_a_new_server_rebuilds_the_changes_from_the_log(start_cluster_server: StartServer) -> None:
    """A server started later with a new data folder applies the log from its start: its pages and its
    topic are those of the servers that saw the changes happen."""
    one = start_cluster_server("one")
    with ChatTestClient(one.address) as alice:
        alice.login("alice", [ROOM])
        first = acked(alice, Say(room=ROOM, text="first", ref=1))
        gone = acked(alice, Say(room=ROOM, text="gone", ref=2))
        acked(alice, Edit(id=first.id, text="first, edited", ref=3))
        acked(alice, React(id=first.id, reaction="👍", ref=4))
        assert isinstance(answer(alice, SetTopic(room=ROOM, topic="rebuilt", ref=5)), Ok)
        last = acked(alice, Delete(id=gone.id, ref=6))
        before = page(alice, 7)
        late = start_cluster_server("late")
        with ChatTestClient(late.address) as bob:
            bob.login("bob", [ROOM])

            def caught_up() -> bool:
                """The late server's page has the deletion (the last record)."""
                return last.id in [e.id for e in page(bob, 7).events or ()]

            wait_until(caught_up, what="the late server to apply the log")
            assert page(bob, 7) == before
            bob.send(Join(room=ROOM, ref=9))  # a repeated join answers with the room's state again
            assert bob.recv(RoomState, ref=9).topic == "rebuilt"
