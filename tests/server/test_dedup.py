"""A `client_msg_id` makes a resend idempotent within one conversation, and is never silently reused."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from chat_server.server import ChatServer
from chat_server.storage import HistoryStore
from shared import Ack, Error, FetchHistory, History, Said, Say, Tell, Told

from .client import ChatTestClient
from .files_client import offer, upload

Login = Callable[..., ChatTestClient]


def test_a_reused_id_with_other_text_is_refused_and_not_stored(login: Login) -> None:
    """The same client_msg_id for a different text in the same room is client_msg_id_reused (not fatal):
    nothing is stored or relayed, and the session goes on."""
    alice, bob = login("alice"), login("bob")
    alice.send(Say(room="lobby", text="first", client_msg_id="c-1", ref=1))
    first = alice.recv(Ack, ref=1)
    alice.send(Say(room="lobby", text="something else", client_msg_id="c-1", ref=2))
    refused = alice.error("client_msg_id_reused")
    assert (refused.ref, refused.fatal) == (2, False)
    alice.send(Say(room="lobby", text="first", action=True, client_msg_id="c-1", ref=3))
    assert alice.error("client_msg_id_reused").ref == 3  # an action is another message too
    alice.send(Say(room="lobby", text="marker", ref=4))
    alice.recv(Ack, ref=4)
    assert [m.text for m in bob.drain() if isinstance(m, Said)] == ["first", "marker"]
    alice.send(FetchHistory(room="lobby", ref=5))
    page = alice.recv(History, ref=5)
    assert [m.id for m in page.messages if isinstance(m, Said) and m.text == "first"] == [first.id]


def test_one_id_in_two_conversations_is_two_messages(login: Login) -> None:
    """The id is scoped per conversation: a say and a tell (and a say in another room) with the same
    client_msg_id are three messages, each stored and delivered."""
    alice, bob = login("alice", rooms=["lobby", "dev"]), login("bob", rooms=["lobby", "dev"])
    alice.send(Say(room="lobby", text="to the room", client_msg_id="same", ref=1))
    alice.send(Tell(to="bob", text="to bob", client_msg_id="same", ref=2))
    alice.send(Say(room="dev", text="to dev", client_msg_id="same", ref=3))
    acks = [alice.recv(Ack, ref=ref) for ref in (1, 2, 3)]
    assert len({ack.id for ack in acks}) == 3
    assert not any(ack.duplicate for ack in acks)
    assert bob.recv(Told).text == "to bob"
    assert sorted(bob.recv(Said, text=text).room for text in ("to the room", "to dev")) == ["dev", "lobby"]


def test_a_file_offer_reusing_a_message_id_is_refused(login: Login) -> None:
    """An offer that reuses the id of a message in the same room is refused; the same file again is still
    the idempotent duplicate."""
    alice = login("alice")
    alice.send(Say(room="lobby", text="hi", client_msg_id="c-9", ref=1))
    alice.recv(Ack, ref=1)
    refused = offer(alice, b"some bytes", client_msg_id="c-9", ref=2)
    assert isinstance(refused, Error)
    assert (refused.code, refused.ref) == ("client_msg_id_reused", 2)
    done = upload(alice, b"other bytes", client_msg_id="f-1", ref=3).done
    assert done is not None
    other = offer(alice, b"different file", client_msg_id="f-1", ref=4)
    assert isinstance(other, Error)
    assert other.code == "client_msg_id_reused"


def test_a_database_of_the_previous_release_is_migrated(
    tmp_path: Path, make_server: Callable[..., ChatServer]
) -> None:
    """A history file made with the old per-nick index loses it at start and gains the per-conversation
    one; its messages stay, and an old id can then be used again in another conversation."""
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX messages_dedup_by_conversation")
    db.execute(
        "CREATE UNIQUE INDEX messages_dedup ON messages (sender_key, client_msg_id)"
        " WHERE client_msg_id IS NOT NULL"
    )
    db.execute(
        "INSERT INTO messages (ts, room_key, room, sender, sender_key, text, client_msg_id)"
        " VALUES (1, 'lobby', 'lobby', 'alice', 'alice', 'old', 'c-1')"
    )
    db.commit()
    db.close()
    server = make_server(db=path)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        bob.login("bob", rooms=[])
        alice.send(Tell(to="bob", text="new", client_msg_id="c-1", ref=1))
        assert not alice.recv(Ack, ref=1).duplicate
        alice.send(Say(room="lobby", text="old", client_msg_id="c-1", ref=2))
        assert alice.recv(Ack, ref=2).duplicate
    with contextlib.closing(sqlite3.connect(path)) as check:
        indexes = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "messages_dedup_by_conversation" in indexes
    assert "messages_dedup" not in indexes
