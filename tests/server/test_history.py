"""Backfill on join, paging back, resume after an id, direct message history, and the bounds on each."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Ack, Error, FetchHistory, History, Join, RoomState, Said, Say, Tell, Told, Who, encode

from .client import ChatTestClient

Login = Callable[..., ChatTestClient]


def say_many(client: ChatTestClient, room: str, count: int, prefix: str = "m") -> list[int]:
    """Send `count` messages and return their acked ids."""
    for number in range(count):
        client.send(Say(room=room, text=f"{prefix}{number}", ref=number))
    return [client.recv(Ack, ref=number).id for number in range(count)]


def texts(history: History) -> list[str]:
    """The texts of a history reply, in order."""
    return [m.text for m in history.messages]


def test_join_backfills_last_50_by_default(login: Login) -> None:
    """A join replays the newest 50 messages oldest first, and says older ones exist."""
    alice = login("alice")
    say_many(alice, "lobby", 60)
    bob = login("bob", rooms=[])
    bob.send(Join(room="lobby", ref=1))
    history = bob.recv(History, ref=1)
    assert texts(history) == [f"m{n}" for n in range(10, 60)]
    assert (history.more, history.skipped) == (True, 0)


def test_join_backfill_count_and_bound(make_server: Callable[..., ChatServer]) -> None:
    """`backfill` chooses how many; it is capped by max_backfill; 0 gives none."""
    server = make_server(max_backfill=20, backfill=5)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        say_many(alice, "lobby", 30)
        bob.login("bob", rooms=[])
        for ref, (backfill, expected) in enumerate([(None, 5), (3, 3), (20, 20), (21, 20), (0, 0)]):
            bob.send(Join(room="lobby", backfill=backfill, ref=ref))
            history = bob.recv(History, ref=ref)
            assert texts(history) == [f"m{n}" for n in range(30 - expected, 30)]
            assert history.more is True


def test_resume_after_id_fills_the_gap(login: Login) -> None:
    """A rejoin with `after` gets exactly the messages after that id, in order."""
    alice = login("alice")
    ids = say_many(alice, "lobby", 10)
    bob = login("bob", rooms=[])
    bob.send(Join(room="lobby", after=ids[3], ref=1))
    history = bob.recv(History, ref=1)
    assert [m.id for m in history.messages] == ids[4:]
    # Nothing after ids[3] was left out: `more` is about the requested range (the messages before ids[3] are
    # not part of a resume).
    assert (history.skipped, history.more) == (0, False)


def test_resume_larger_than_bound_says_how_many_were_skipped(make_server: Callable[..., ChatServer]) -> None:
    """When the gap is larger than max_backfill, the newest ones come with `skipped` = the rest."""
    server = make_server(max_backfill=10, backfill=10)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        ids = say_many(alice, "lobby", 25)
        bob.login("bob", rooms=[])
        bob.send(Join(room="lobby", after=ids[4], ref=1))
        history = bob.recv(History, ref=1)
        assert [m.id for m in history.messages] == ids[15:]
        assert (history.skipped, history.more) == (10, True)
        # Exactly the gap can be paged back.
        bob.send(FetchHistory(room="lobby", before=ids[15], after=ids[4], limit=10, ref=2))
        assert [m.id for m in bob.recv(History, ref=2).messages] == ids[5:15]


def test_page_back_with_before(login: Login) -> None:
    """FetchHistory(before=X, limit=L) gives the L messages before X, oldest first, and `more`."""
    alice = login("alice")
    ids = say_many(alice, "lobby", 12)
    alice.send(FetchHistory(room="lobby", before=ids[6], limit=4, ref=1))
    page = alice.recv(History, ref=1)
    assert [m.id for m in page.messages] == ids[2:6]
    assert page.more is True
    alice.send(FetchHistory(room="lobby", before=ids[2], limit=4, ref=2))
    page = alice.recv(History, ref=2)
    assert [m.id for m in page.messages] == ids[:2]
    assert page.more is False


def test_history_needs_membership(login: Login) -> None:
    """Room history is only for members."""
    alice = login("alice", rooms=["secret"])
    say_many(alice, "secret", 1)
    bob = login("bob")
    bob.send(FetchHistory(room="secret", ref=1))
    assert bob.error("not_in_room").ref == 1


def test_history_request_must_name_room_or_direct(login: Login) -> None:
    """Neither or both of room and direct is an invalid_field, not fatal."""
    alice = login("alice")
    alice.send(FetchHistory(ref=1))
    assert alice.error("invalid_field").fatal is False
    alice.send(FetchHistory(room="lobby", direct=True, ref=2))
    assert alice.error("invalid_field").ref == 2


def test_direct_history_is_private(login: Login) -> None:
    """Each user sees only their own direct messages; `peer` narrows to one conversation."""
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    alice.send(Tell(to="bob", text="a->b", ref=1))
    alice.recv(Ack, ref=1)
    bob.send(Tell(to="alice", text="b->a", ref=2))
    bob.recv(Ack, ref=2)
    carol.send(Tell(to="alice", text="c->a", ref=3))
    carol.recv(Ack, ref=3)
    alice.send(FetchHistory(direct=True, ref=4))
    assert texts(alice.recv(History, ref=4)) == ["a->b", "b->a", "c->a"]
    alice.send(FetchHistory(direct=True, peer="Bob", ref=5))
    page = alice.recv(History, ref=5)
    assert page.direct is True
    assert all(isinstance(m, Told) for m in page.messages)
    assert texts(page) == ["a->b", "b->a"]
    bob.send(FetchHistory(direct=True, ref=6))
    assert texts(bob.recv(History, ref=6)) == ["a->b", "b->a"]


def test_history_reply_fits_one_frame(make_server: Callable[..., ChatServer]) -> None:
    """A page of long messages is cut to fit max_frame; the client is told older ones exist."""
    server = make_server(max_frame=16 * 1024, max_text=4000)
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        for number in range(10):
            alice.send(Say(room="lobby", text=f"{number}" + "x" * 3900, ref=number))
            alice.recv(Ack, ref=number)
        alice.send(FetchHistory(room="lobby", limit=10, ref=99))
        page = alice.recv(History, ref=99)
        assert 0 < len(page.messages) < 10
        assert len(encode(page)) - 4 <= 16 * 1024
        assert page.more is True
        assert page.messages[-1].text.startswith("9")


def test_history_survives_restart(make_server: Callable[..., ChatServer]) -> None:
    """Messages are in the history after the server restarts, with the same ids."""
    server = make_server()
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        ids = say_many(alice, "lobby", 3)
    server.stop()
    again = make_server()
    with ChatTestClient(again.address) as bob:
        bob.login("bob", rooms=[])
        bob.send(Join(room="lobby", ref=1))
        history = bob.recv(History, ref=1)
        assert [(m.id, m.text, m.nick) for m in history.messages if isinstance(m, Said)] == [
            (ids[n], f"m{n}", "alice") for n in range(3)
        ]


def test_history_failure_refuses_messages_and_the_rest_goes_on(
    make_server: Callable[..., ChatServer],
) -> None:
    """While the database cannot be written, messages get history_unavailable (not relayed unstored);
    everything else keeps working, and messages flow again once the database is back."""
    server = make_server(history_busy_timeout=0.2)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        bob.login("bob")
        blocker = sqlite3.connect(server.config.history_path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock (a stuck backup)
            alice.send(Say(room="lobby", text="lost?", ref=1))
            error = alice.error("history_unavailable")
            assert (error.ref, error.fatal) == (1, False)
            alice.send(Who(room="lobby", ref=2))
            assert len(alice.recv(RoomState, ref=2).members) == 2
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        alice.send(Say(room="lobby", text="back", ref=3))
        alice.recv(Ack, ref=3)
        assert [m.text for m in bob.drain(0.2) if isinstance(m, Said)] == ["back"]


def test_full_request_queue_refuses_with_server_busy(make_server: Callable[..., ChatServer]) -> None:
    """With the history thread stuck, requests beyond history_queue wait history_wait, then are refused
    ("server busy", rate_limited); every request gets exactly one answer once the thread moves again."""
    server = make_server(history_queue=2, history_wait=0.2, history_busy_timeout=5.0)
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        blocker = sqlite3.connect(server.config.history_path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # the history thread will wait for this lock
            for ref in range(6):
                alice.send(Say(room="lobby", text=f"m{ref}", ref=ref))
            first_refusal = alice.error("rate_limited", timeout=5)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        answers = {first_refusal.ref: first_refusal}
        for ref in set(range(6)) - set(answers):
            answers[ref] = alice.recv_until(lambda m, r=ref: isinstance(m, Ack | Error) and m.ref == r)
        refused = [a for a in answers.values() if isinstance(a, Error)]
        acked = [a for a in answers.values() if isinstance(a, Ack)]
        assert all(
            (e.code, e.message, e.retry_after_ms) == ("rate_limited", "server busy", 1000) for e in refused
        )
        assert len(acked) >= 3  # the one being stored and the two queued
        assert len(refused) + len(acked) == 6


def page_ids(client: ChatTestClient, ref: int, **request: object) -> tuple[list[int], bool]:
    """Ask for one page of the lobby; return its ids and its `more`."""
    client.send(FetchHistory(room="lobby", ref=ref, **request))  # type: ignore[arg-type]
    page = client.recv(History, ref=ref)
    return [m.id for m in page.messages], page.more


def test_paging_forward_through_a_2000_message_gap_gives_each_message_once(
    make_server: Callable[..., ChatServer],
) -> None:
    """After a resume cut to the newest 500, paging forward from the client's last id (limit 100) until
    `more` is false gives every skipped message exactly once, oldest first, and nothing of the resume."""
    server = make_server()
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        last_seen = say_many(alice, "lobby", 1)[0]
        ids = say_many(alice, "lobby", 2500)
        bob.login("bob", rooms=[])
        bob.send(Join(room="lobby", after=last_seen, ref=1))
        resume = bob.recv(History, ref=1)
        first_given = resume.messages[0].id
        assert [m.id for m in resume.messages] == ids[-len(resume.messages) :]
        assert resume.more is True
        assert resume.skipped == 2500 - len(resume.messages) >= 2000
        fetched: list[int] = []
        after, ref = last_seen, 2
        while True:
            page, more = page_ids(bob, ref, after=after, before=first_given, limit=100, forward=True)
            assert 0 < len(page) <= 100
            fetched += page
            if not more:
                break
            after, ref = page[-1], ref + 1
        assert fetched == ids[: resume.skipped]
        assert ref - 1 == (resume.skipped + 99) // 100  # pages of 100, the last one says "no more"


def test_more_means_more_in_the_direction_asked_for(login: Login) -> None:
    """Every direction's `more`: true exactly when the range goes on beyond the page that way."""
    alice = login("alice")
    ids = say_many(alice, "lobby", 10)
    before_all = ids[0] - 1
    cases: list[tuple[dict[str, object], list[int], bool]] = [
        # latest
        ({"limit": 4}, ids[6:], True),
        ({"limit": 10}, ids, False),
        # before X
        ({"before": ids[5], "limit": 3}, ids[2:5], True),
        ({"before": ids[5], "limit": 5}, ids[:5], False),
        # after X, oldest first
        ({"after": ids[1], "limit": 3, "forward": True}, ids[2:5], True),
        ({"after": ids[1], "limit": 8, "forward": True}, ids[2:], False),
        ({"after": ids[9], "forward": True}, [], False),
        ({"after": before_all, "limit": 1, "forward": True}, ids[:1], True),
        # between X and Y, newest first and oldest first
        ({"after": ids[1], "before": ids[8], "limit": 2}, ids[6:8], True),
        ({"after": ids[1], "before": ids[8], "limit": 6}, ids[2:8], False),
        ({"after": ids[1], "before": ids[8], "limit": 2, "forward": True}, ids[2:4], True),
        ({"after": ids[1], "before": ids[8], "limit": 6, "forward": True}, ids[2:8], False),
        # after X without a direction: a resume, the newest of the gap
        ({"after": ids[1], "limit": 3}, ids[7:], True),
        ({"after": ids[1], "limit": 8}, ids[2:], False),
    ]
    for ref, (request, expected, more) in enumerate(cases, 1):
        assert page_ids(alice, ref, **request) == (expected, more), request


def test_direct_history_pages_forward_too(login: Login) -> None:
    """`forward` works for direct messages (all conversations, or one `peer`)."""
    alice, bob = login("alice"), login("bob")
    ids = []
    for number in range(5):
        alice.send(Tell(to="bob", text=f"t{number}", ref=number))
        ids.append(alice.recv(Ack, ref=number).id)
    bob.send(FetchHistory(direct=True, after=ids[0], limit=2, forward=True, ref=10))
    page = bob.recv(History, ref=10)
    assert ([m.id for m in page.messages], page.more) == (ids[1:3], True)
    bob.send(FetchHistory(direct=True, peer="alice", after=ids[2], limit=2, forward=True, ref=11))
    page = bob.recv(History, ref=11)
    assert ([m.id for m in page.messages], page.more) == (ids[3:], False)
