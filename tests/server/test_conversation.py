"""Replies, edits, deletions and reactions over real sockets (docs/protocol.md, section 6.3): each operation
between two clients, its refusals, every rule at and past its limit, the events in history pages and on
resume, honest storage, and a database made before conversations upgraded in place."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from chat_server.server import ChatServer
from chat_server.storage import HistoryStore
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
    Mute,
    Op,
    React,
    Reacted,
    Said,
    Say,
    Tell,
    Told,
    Unreact,
    Unreacted,
)

from .client import ChatTestClient, wait_until

Login = Callable[..., ChatTestClient]
MakeServer = Callable[..., ChatServer]
ROOM = "den"


def say(client: ChatTestClient, text: str, ref: int = 1, **fields: object) -> Ack:
    """Say `text` in ROOM and return its ack."""
    client.send(Say(room=ROOM, text=text, ref=ref, **fields))  # type: ignore[arg-type]
    return client.recv_until(lambda m: getattr(m, "ref", None) == ref)  # type: ignore[return-value]


def answer(client: ChatTestClient, request: Message) -> Message:
    """Send `request` (with a `ref`) and return the frame that answers it."""
    ref = request.ref  # type: ignore[attr-defined]
    client.send(request)
    return client.recv_until(lambda m: getattr(m, "ref", None) == ref)


def refused(client: ChatTestClient, request: Message, code: str) -> Error:
    """Send `request` and expect the error `code` answering it."""
    reply = answer(client, request)
    assert isinstance(reply, Error), reply
    assert reply.code == code, reply
    return reply


def page(client: ChatTestClient, ref: int = 90, **fields: object) -> History:
    """Fetch a history page of ROOM."""
    reply = answer(client, FetchHistory(room=ROOM, ref=ref, **fields))  # type: ignore[arg-type]
    assert isinstance(reply, History), reply
    return reply


@pytest.fixture
def pair(login: Login) -> tuple[ChatTestClient, ChatTestClient]:
    """alice (the room's operator: she joins first) and bob, both in ROOM."""
    alice = login("alice", [ROOM])
    bob = login("bob", [ROOM])
    return alice, bob


def test_reply_edit_react_unreact_delete_between_two_clients(
    pair: tuple[ChatTestClient, ChatTestClient],
) -> None:
    alice, bob = pair
    first = say(alice, "first message", ref=1)
    assert isinstance(first, Ack)
    bob.recv(Said, id=first.id)
    reply = say(bob, "a reply", ref=2, reply_to=first.id)
    assert isinstance(reply, Ack)
    assert alice.recv(Said, id=reply.id).reply_to == first.id

    edit_ack = answer(alice, Edit(id=first.id, text="first message, fixed", ref=3))
    assert isinstance(edit_ack, Ack)
    assert edit_ack.id > reply.id
    seen_by_bob = bob.recv(Edited, id=edit_ack.id)
    assert (seen_by_bob.message_id, seen_by_bob.text, seen_by_bob.nick, seen_by_bob.room) == (
        first.id,
        "first message, fixed",
        "alice",
        ROOM,
    )
    alice.recv(Edited, id=edit_ack.id)  # the requester hears its event too, before the ack

    react_ack = answer(bob, React(id=first.id, reaction="👍", ref=4))
    assert isinstance(react_ack, Ack)
    assert alice.recv(Reacted, id=react_ack.id).reaction == "👍"
    again = answer(bob, React(id=first.id, reaction="👍", ref=5))
    assert isinstance(again, Ack)
    assert again.duplicate
    assert again.id == react_ack.id
    unreact_ack = answer(bob, Unreact(id=first.id, reaction="👍", ref=6))
    assert isinstance(unreact_ack, Ack)
    assert alice.recv(Unreacted, id=unreact_ack.id).message_id == first.id
    answer(alice, React(id=first.id, reaction=":tada:", ref=7))

    delete_ack = answer(alice, Delete(id=first.id, ref=8))
    assert isinstance(delete_ack, Ack)
    assert bob.recv(Deleted, id=delete_ack.id).message_id == first.id

    history = page(bob)
    entries = {m.id: m for m in history.messages}
    tombstone = entries[first.id]
    assert isinstance(tombstone, Said)
    assert tombstone.deleted
    assert tombstone.text == DELETED_TEXT
    assert not tombstone.reactions
    assert tombstone.rev == delete_ack.id
    assert entries[reply.id].reply_to == first.id  # type: ignore[union-attr]
    kinds = [(type(e).__name__, e.id) for e in history.events or ()]
    # The deletion removed the edit event (it named the text); the reactions and the deletion stay.
    assert [kind for kind, _ in kinds] == ["Reacted", "Unreacted", "Reacted", "Deleted"]
    assert [event_id for _, event_id in kinds] == sorted(event_id for _, event_id in kinds)


def test_history_page_shows_the_current_state(
    pair: tuple[ChatTestClient, ChatTestClient], login: Login
) -> None:
    alice, bob = pair
    first = say(alice, "hello", ref=1)
    answer(alice, Edit(id=first.id, text="hello again", ref=2))
    answer(alice, Edit(id=first.id, text="hello, third time", ref=3))
    answer(bob, React(id=first.id, reaction="🎉", ref=4))
    answer(alice, React(id=first.id, reaction="🎉", ref=5))
    last = answer(bob, React(id=first.id, reaction="👍", ref=6))
    carol = login("carol", [ROOM])
    history = page(carol)
    message = next(m for m in history.messages if m.id == first.id)
    assert isinstance(message, Said)
    assert message.text == "hello, third time"
    assert message.edited is not None
    assert message.rev == last.id  # type: ignore[attr-defined]
    assert [(r.reaction, r.nicks) for r in message.reactions or ()] == [
        ("🎉", ("bob", "alice")),
        ("👍", ("bob",)),
    ]
    # Every edited event in the page carries the current text: never one that was replaced since.
    assert {e.text for e in history.events or () if isinstance(e, Edited)} == {"hello, third time"}


def test_permissions(pair: tuple[ChatTestClient, ChatTestClient], login: Login) -> None:
    alice, bob = pair
    mine = say(bob, "bob's words", ref=1)
    refused(alice, Edit(id=mine.id, text="not yours", ref=2), "forbidden")
    outsider = login("carol", ["elsewhere"])
    refused(outsider, Edit(id=mine.id, text="x", ref=3), "no_such_message")
    refused(outsider, React(id=mine.id, reaction="👍", ref=4), "no_such_message")
    refused(outsider, Delete(id=mine.id, ref=5), "no_such_message")
    refused(bob, Edit(id=10**9, text="x", ref=6), "no_such_message")
    refused(bob, Unreact(id=mine.id, reaction="👍", ref=7), "no_such_reaction")
    others = say(alice, "alice's words", ref=8)
    refused(bob, Delete(id=others.id, ref=9), "forbidden")  # bob is no operator
    refused(bob, Say(room=ROOM, text="re", reply_to=10**9, ref=10), "no_such_message")
    # The author deletes; then the message is gone for every request.
    answer(bob, Delete(id=mine.id, ref=11))
    refused(bob, Edit(id=mine.id, text="again", ref=12), "no_such_message")
    refused(alice, React(id=mine.id, reaction="👍", ref=13), "no_such_message")
    refused(bob, Delete(id=mine.id, ref=14), "no_such_message")


def test_operator_delete_is_a_moderation_action(pair: tuple[ChatTestClient, ChatTestClient]) -> None:
    alice, bob = pair
    words = say(bob, "something rude", ref=1)
    reply = answer(alice, Delete(id=words.id, reason="rude", ref=2))
    assert isinstance(reply, Ack)
    deleted = bob.recv(Deleted)
    moderated = bob.recv(Moderated, action="delete")
    assert (deleted.message_id, deleted.nick) == (words.id, "alice")
    assert (moderated.target, moderated.reason, moderated.id) == ("bob", "rude", reply.id)
    history = page(bob)
    assert any(isinstance(m, Moderated) and m.action == "delete" for m in history.messages)


def test_muted_member_cannot_edit_or_react_but_can_delete(
    pair: tuple[ChatTestClient, ChatTestClient],
) -> None:
    alice, bob = pair
    words = say(bob, "before the mute", ref=1)
    answer(alice, Mute(room=ROOM, nick="bob", ref=2))
    refused(bob, Edit(id=words.id, text="x", ref=3), "muted")
    refused(bob, React(id=words.id, reaction="👍", ref=4), "muted")
    assert isinstance(answer(bob, Delete(id=words.id, ref=5)), Ack)


def test_reaction_limits_at_and_past(make_server: MakeServer) -> None:
    server = make_server(max_reactions_per_message=3, max_reactions_per_user=2)
    alice, bob = ChatTestClient(server.address), ChatTestClient(server.address)
    with alice, bob:
        alice.login("alice", [ROOM])
        bob.login("bob", [ROOM])
        words = say(alice, "react to me", ref=1)
        answer(alice, React(id=words.id, reaction="👍", ref=2))
        assert isinstance(
            answer(alice, React(id=words.id, reaction="🎉", ref=3)), Ack
        )  # at the per-user limit
        refused(alice, React(id=words.id, reaction="❤️", ref=4), "too_many_reactions")  # past it
        assert isinstance(
            answer(bob, React(id=words.id, reaction="❤️", ref=5)), Ack
        )  # 3 distinct: at the limit
        refused(bob, React(id=words.id, reaction=":x:", ref=6), "too_many_reactions")  # a 4th: past it
        assert isinstance(
            answer(bob, React(id=words.id, reaction="👍", ref=7)), Ack
        )  # an existing one is fine


def test_edit_window(make_server: MakeServer) -> None:
    server = make_server(edit_window=0.3)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", [ROOM])
        words = say(alice, "quick", ref=1)
        assert isinstance(answer(alice, Edit(id=words.id, text="quick fix", ref=2)), Ack)  # inside the window
        late = say(alice, "slow", ref=3)
        # Past the window: a message whose age is over 0.3 s (wait on the clock, not a sleep).
        sent = time.monotonic()
        wait_until(lambda: time.monotonic() - sent > 0.35, 5.0, "the window to pass")
        refused(alice, Edit(id=late.id, text="too late", ref=4), "edit_window_closed")


def test_edit_and_reaction_rates_refuse_past_the_burst(make_server: MakeServer) -> None:
    server = make_server(rate_edits=0.001, rate_edits_burst=2, rate_reactions=0.001, rate_reactions_burst=2)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", [ROOM])
        words = say(alice, "text", ref=1)
        assert isinstance(answer(alice, Edit(id=words.id, text="one", ref=2)), Ack)
        assert isinstance(answer(alice, Edit(id=words.id, text="two", ref=3)), Ack)  # the burst: at the limit
        refused(alice, Edit(id=words.id, text="three", ref=4), "rate_limited")  # past it
        refused(alice, Delete(id=words.id, ref=5), "rate_limited")  # deletions draw from the same bucket
        assert isinstance(answer(alice, React(id=words.id, reaction="👍", ref=6)), Ack)
        assert isinstance(answer(alice, Unreact(id=words.id, reaction="👍", ref=7)), Ack)
        refused(alice, React(id=words.id, reaction="👍", ref=8), "rate_limited")
        assert alice.last_welcome is not None
        assert alice.last_welcome.rates is not None
        assert alice.last_welcome.rates.edits.burst == 2


def test_invalid_reactions_are_refused(pair: tuple[ChatTestClient, ChatTestClient]) -> None:
    alice, _bob = pair
    words = say(alice, "text", ref=1)
    for bad in ("a", "👍👍", "\x1b[31m", ":Bad:", "👍 ", ":" + "a" * 33 + ":"):
        reply = answer(alice, React(id=words.id, reaction="👍", ref=2))  # a valid one still works
        assert isinstance(reply, Ack)
        alice.send_unchecked(React(id=words.id, reaction=bad, ref=3))
        error = alice.recv_until(lambda m: getattr(m, "ref", None) == 3)
        assert isinstance(error, Error), (bad, error)
        assert error.code == "invalid_reaction", (bad, error)


def test_direct_conversation_events_reach_both_ends(login: Login) -> None:
    alice = login("alice", [])
    bob = login("bob", [])
    alice.send(Tell(to="bob", text="psst", ref=1))
    told = alice.recv(Ack, ref=1)
    bob.recv(Told, id=told.id)
    bob.send(Tell(to="alice", text="what?", reply_to=told.id, ref=2))
    reply = bob.recv(Ack, ref=2)
    assert alice.recv(Told, id=reply.id).reply_to == told.id
    answer(alice, Edit(id=told.id, text="psst, listen", ref=3))
    edited = bob.recv(Edited)
    assert (edited.to, edited.nick, edited.room) == ("bob", "alice", None)
    answer(bob, React(id=told.id, reaction="👀", ref=4))
    reacted = alice.recv(Reacted)
    assert (reacted.to, reacted.nick) == ("alice", "bob")
    carol = login("carol", [])
    refused(carol, React(id=told.id, reaction="👀", ref=5), "no_such_message")
    refused(carol, Tell(to="alice", text="x", reply_to=told.id, ref=6), "no_such_message")
    history = answer(bob, FetchHistory(direct=True, peer="alice", ref=7))
    assert isinstance(history, History)
    assert [type(e).__name__ for e in history.events or ()] == ["Edited", "Reacted"]
    first = next(m for m in history.messages if m.id == told.id)
    assert isinstance(first, Told)
    assert first.text == "psst, listen"
    assert first.edited is not None


def test_events_while_away_arrive_exactly_once_on_resume(
    pair: tuple[ChatTestClient, ChatTestClient], login: Login
) -> None:
    alice, bob = pair
    words = say(alice, "before bob left", ref=1)
    bob.recv(Said, id=words.id)
    last_seen = words.id
    bob.close()
    edit = answer(alice, Edit(id=words.id, text="edited while bob was away", ref=2))
    react = answer(alice, React(id=words.id, reaction="👍", ref=3))
    later = say(alice, "later", ref=4)
    answer(alice, React(id=later.id, reaction="🎉", ref=5))
    gone = answer(alice, Delete(id=later.id, ref=6))
    back = login("bob", [])
    back.send(Join(room=ROOM, after=last_seen, ref=7))
    resume = back.recv(History, ref=7)
    events = resume.events or ()
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert edit.id in [e.id for e in events]
    assert react.id in [e.id for e in events]
    assert gone.id in [e.id for e in events]
    assert len({e.id for e in events}) == len(events)
    shown = {m.id: m for m in resume.messages}
    assert shown[later.id].deleted  # type: ignore[union-attr]
    # And nothing of it comes a second time live.
    assert not [m for m in back.drain() if isinstance(m, Edited | Reacted | Deleted)]


def test_operator_promoted_may_delete(pair: tuple[ChatTestClient, ChatTestClient], login: Login) -> None:
    alice, bob = pair
    carol = login("carol", [ROOM])
    words = say(carol, "carol's", ref=1)
    answer(alice, Op(room=ROOM, nick="bob", ref=2))
    assert isinstance(answer(bob, Delete(id=words.id, ref=3)), Ack)


def test_keep_edits_keeps_the_previous_text_only_when_configured(
    make_server: MakeServer, tmp_path: Path
) -> None:
    for keep in (False, True):
        db = tmp_path / f"keep-{keep}.sqlite3"
        server = make_server(keep_edits=keep, db=db)
        with ChatTestClient(server.address) as alice:
            alice.login("alice", [ROOM])
            words = say(alice, "secret draft", ref=1)
            answer(alice, Edit(id=words.id, text="public version", ref=2))
            other = say(alice, "to be erased", ref=3)
            answer(alice, Delete(id=other.id, ref=4))
        server.stop()
        with closing(sqlite3.connect(db)) as check:
            texts = [row[0] for row in check.execute("SELECT text FROM messages")]
            kept = [row[0] for row in check.execute("SELECT text FROM message_revisions ORDER BY rowid")]
        assert "secret draft" not in texts
        assert "to be erased" not in texts
        assert kept == (["secret draft", "to be erased"] if keep else [])


#: The schema exactly as the code before this change made it (copied from chat_server/storage.py then).
OLD_SCHEMA = (Path(__file__).parent / "data" / "history-schema-v0.sql").read_text()
OLD_ROWS = (
    "INSERT INTO messages (ts, room_key, room, sender, sender_key, text) VALUES (1, 'den', 'den', 'alice',"
    " 'alice', 'old');"
)


def test_a_database_from_before_conversations_upgrades(make_server: MakeServer, tmp_path: Path) -> None:
    """A history file made by the code before this change (its `messages` table exactly as it was) opens,
    gains the new columns and tables, and its old messages can be edited and reacted to."""
    db = tmp_path / "old.sqlite3"
    with closing(sqlite3.connect(db)) as old:
        old.executescript(OLD_SCHEMA + OLD_ROWS)
    HistoryStore(db).close()
    with closing(sqlite3.connect(db)) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = {row[1] for row in check.execute("PRAGMA table_info(messages)")}
    assert {"reply_to", "target_id", "edited", "deleted", "rev"} <= columns
    server = make_server(db=db)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", [ROOM])
        assert isinstance(answer(alice, Edit(id=1, text="new", ref=1)), Ack)
        assert isinstance(answer(alice, React(id=1, reaction="👍", ref=2)), Ack)
        shown = page(alice).messages[0]
        assert isinstance(shown, Said)
        assert shown.text == "new"
        assert shown.reactions
