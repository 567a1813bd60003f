"""Cluster mode's message log: two chat servers on one real three-node NATS JetStream cluster.

Messages said on either server reach the room's members on both, in one order (the stream's), exactly once;
the ack comes only after JetStream stored the message; ids are the stream sequence; a resend with the same
`client_msg_id` to the other server is acked as a duplicate; the local history copies agree.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

from chat_server.server import ChatServer
from shared.messages import (
    Ack,
    Error,
    FetchHistory,
    History,
    Said,
    Say,
    Tell,
    Told,
    Welcome,
)
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


def said_ids(client: ChatTestClient, count: int) -> list[tuple[int, str]]:
    """Receive `count` `said` frames; their (id, text) in arrival order."""
    return [(said.id, said.text) for said in (client.recv(Said) for _ in range(count))]


def login_when_free(address: tuple[str, int], nick: str, rooms: list[str]) -> ChatTestClient:
    """Log in as `nick` once the cluster has freed it (its holder left another server: within a round)."""
    logged_in: list[ChatTestClient] = []

    def attempt() -> bool:
        client = ChatTestClient(address)
        client.hello(nick, rooms)
        if isinstance(client.recv_until(lambda m: isinstance(m, Welcome | Error)), Welcome):
            for _ in rooms:
                client.recv(History)
            logged_in.append(client)
            return True
        client.close()
        return False

    wait_until(attempt, what=f"{nick} free on {address}")
    return logged_in[0]


def test_two_servers_deliver_every_message_once_in_one_order(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with (
        ChatTestClient(one.address) as alice,
        ChatTestClient(two.address) as bob,
        ChatTestClient(two.address) as carol,
        ChatTestClient(one.address) as dave,
    ):
        alice.login("alice", ["lobby", "side"])
        bob.login("bob", ["lobby"])
        carol.login("carol", ["lobby", "side"])
        dave.login("dave", ["side"])
        # Pipelined sends from both servers, interleaved.
        for n in range(20):
            alice.send(Say(room="lobby", text=f"a{n}", ref=n + 1))
            bob.send(Say(room="lobby", text=f"b{n}", ref=n + 1))
        alice_acks = [alice.recv(Ack) for _ in range(20)]
        bob_acks = [bob.recv(Ack) for _ in range(20)]
        assert [ack.ref for ack in alice_acks] == list(range(1, 21))
        # Everyone in lobby sees the 40 messages in the same order: the stream's (ids strictly increasing).
        carol_saw = said_ids(carol, 40)
        assert [i for i, _ in carol_saw] == sorted(i for i, _ in carol_saw)
        assert len({i for i, _ in carol_saw}) == 40
        bob_saw = said_ids(bob, 20)  # alice's messages; bob's own came back as acks
        alice_saw = said_ids(alice, 20)
        assert bob_saw == [m for m in carol_saw if m[1].startswith("a")]
        assert alice_saw == [m for m in carol_saw if m[1].startswith("b")]
        assert {ack.id for ack in alice_acks} == {i for i, t in carol_saw if t.startswith("a")}
        assert {ack.id for ack in bob_acks} == {i for i, t in carol_saw if t.startswith("b")}
        # dave (only in side, on server one) heard none of them; a message in side reaches its members only.
        dave.send(Say(room="side", text="side-1", ref=99))
        ack = dave.recv(Ack, ref=99)
        assert ack.id > max(i for i, _ in carol_saw)
        assert alice.recv(Said, room="side").text == "side-1"
        assert carol.recv(Said, room="side").text == "side-1"
        assert [m for m in bob.drain() if isinstance(m, Said)] == []
        assert [m for m in dave.drain() if isinstance(m, Said)] == []
        # A history page is the same on both servers (each serves it from its local copy).
        alice.send(FetchHistory(room="lobby", limit=100, ref=7))
        bob.send(FetchHistory(room="lobby", limit=100, ref=7))
        page_one = alice.recv(History, ref=7)
        page_two = bob.recv(History, ref=7)
        assert [m.id for m in page_one.messages] == [i for i, _ in carol_saw]
        assert page_one.messages == page_two.messages


def test_resend_to_the_other_server_is_a_duplicate(start_cluster_server: Callable[..., ChatServer]) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as watcher:
        alice.login("alice", ["lobby"])
        watcher.login("watcher", ["lobby"])
        alice.send(Say(room="lobby", text="once", client_msg_id="m-1", ref=1))
        first = alice.recv(Ack, ref=1)
        assert not first.duplicate
        alice.close()
        with login_when_free(two.address, "alice", ["lobby"]) as again:  # the same nick, on the other server
            again.send(Say(room="lobby", text="once", client_msg_id="m-1", ref=2))
            second = again.recv(Ack, ref=2)
            assert second.duplicate
            assert second.id == first.id
        assert watcher.recv(Said).text == "once"
        assert [m for m in watcher.drain() if isinstance(m, Said)] == []


def test_direct_message_across_servers(start_cluster_server: Callable[..., ChatServer]) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        alice.send(Tell(to="bob", text="psst", ref=1))
        ack = alice.recv(Ack, ref=1)
        told = bob.recv(Told)
        assert (told.id, told.text, told.nick) == (ack.id, "psst", "alice")


def test_file_sharing_is_on_in_cluster_mode(start_cluster_server: Callable[..., ChatServer]) -> None:
    server = start_cluster_server("one")
    with ChatTestClient(server.address) as alice:
        welcome = alice.login("alice", ["lobby"])
        assert welcome.files is not None  # file sharing is on in cluster mode (tests/cluster/test_files.py)
        alice.send(Say(room="lobby", text="mine", ref=1))
        mine = alice.recv(Ack, ref=1)
        assert mine.id > 0


def test_direct_message_to_a_nick_online_nowhere_is_stored(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice:
        alice.login("alice", [])
        alice.send(Tell(to="Zed", text="when you are back", ref=1))
        ack = alice.recv(Ack, ref=1)
    with ChatTestClient(two.address) as zed:
        zed.login("zed", [])
        refs = iter(range(2, 10_000))

        def direct_page() -> list[tuple[int, str]]:
            ref = next(refs)
            zed.send(FetchHistory(direct=True, limit=10, ref=ref))
            return [(m.id, m.text) for m in zed.recv(History, ref=ref).messages]

        # Server two applies the record from the stream (it may lag server one by a moment).
        wait_until(lambda: direct_page() == [(ack.id, "when you are back")], what="the DM in zed's history")


def test_local_copies_agree(start_cluster_server: Callable[..., ChatServer]) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        for n in range(5):
            alice.send(Say(room="lobby", text=f"x{n}", ref=n + 1))
        last = [alice.recv(Ack) for _ in range(5)][-1]
        wait_until(lambda: bob.recv(Said).id == last.id, what="bob got the last message")

    def rows(server: ChatServer) -> list[tuple[int, str]]:
        with contextlib.closing(sqlite3.connect(server.config.history_path)) as db:
            return list(db.execute("SELECT id, text FROM messages ORDER BY id"))

    wait_until(lambda: rows(one) == rows(two) and len(rows(one)) == 5, what="both copies hold the 5")


def test_a_server_whose_database_fails_while_applying_catches_up_with_no_gap(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """While one server cannot write its local copy, the log goes on (the other server acks); the batch it
    was applying is rolled back and the log read again from the position on disk, so once the database is
    back its copy has every message, once, with no gap, and its member receives each of them."""
    one = start_cluster_server("one")
    two = start_cluster_server("two", history_busy_timeout=0.2)
    assert one.address is not None
    assert two.address is not None
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        ids: list[int] = []
        blocker = sqlite3.connect(two.config.history_path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # two's history thread cannot write: it fails and rolls back
            for n in range(10):
                alice.send(Say(room="lobby", text=f"m{n}", ref=n + 1))
                ids.append(alice.recv(Ack, ref=n + 1).id)
            assert [m for m in bob.drain(0.3) if isinstance(m, Said)] == []  # nothing unstored is relayed
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert sorted(said_ids(bob, 10)) == [(id_, f"m{n}") for n, id_ in enumerate(ids)]

        def two_has_all() -> bool:
            bob.send(FetchHistory(room="lobby", limit=100, ref=99))
            page = bob.recv(History, ref=99)
            return [m.id for m in page.messages] == ids

        wait_until(two_has_all, what="server two's copy with every message")
