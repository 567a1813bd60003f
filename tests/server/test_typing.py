"""`typing`: relayed to the room's other members with the typist's nick, throttled, never stored, never
replayed (issue 18)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Ack, FetchHistory, Hello, History, Said, Say, Typing, Welcome
from shared.messages import PROTOCOL_NAME, PROTOCOL_VERSION

from .client import ChatTestClient, wait_until

Login = Callable[..., ChatTestClient]


def marker(
    sender: ChatTestClient, receivers: list[ChatTestClient], text: str, ref: int, room: str = "lobby"
) -> None:
    """Say `text` and wait until each receiver has it: whatever `sender` sent before it has been handled (a
    relayed `typing` goes out from the sender's reader before its next request is read)."""
    sender.send(Say(room=room, text=text, ref=ref))
    sender.recv(Ack, ref=ref)
    for receiver in receivers:
        receiver.recv(Said, text=text)


def typings(client: ChatTestClient) -> list[Typing]:
    """The `typing` frames received so far (taken out of the pending ones)."""
    found = [message for message in client.pending if isinstance(message, Typing)]
    client.pending = [message for message in client.pending if not isinstance(message, Typing)]
    return found


def test_typing_reaches_the_others_with_the_typists_nick(login: Login) -> None:
    """A start and a stop go to the room's other members (not the typist, not other rooms), with the nick the
    server knows (a nick the client puts in is ignored)."""
    alice = login("alice", rooms=["lobby", "dev"])
    bob = login("bob", rooms=["lobby"])
    carol = login("carol", rooms=["dev"])
    alice.send(Typing(room="lobby", nick="mallory"))
    assert bob.recv(Typing) == Typing(room="lobby", active=True, nick="alice")
    alice.send(Typing(room="LOBBY", active=False))
    assert bob.recv(Typing) == Typing(room="lobby", active=False, nick="alice")
    marker(alice, [bob], "after", 1)
    marker(alice, [carol], "after", 2, room="dev")
    assert typings(alice) == []
    assert typings(carol) == []


def test_typing_is_throttled_per_room(make_server: Callable[..., ChatServer]) -> None:
    """Within `typing_interval` of a relayed start, another start in that room is dropped silently; a stop
    is relayed once after a relayed start, and never without one; each room has its own throttle."""
    server = make_server(typing_interval=3600.0)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice", rooms=["lobby", "dev"])
        bob.login("bob", rooms=["lobby", "dev"])
        for _ in range(5):
            alice.send(Typing(room="lobby"))
        alice.send(Typing(room="dev"))
        alice.send(Typing(room="lobby", active=False))
        alice.send(Typing(room="lobby", active=False))
        alice.send(Typing(room="lobby"))
        marker(alice, [bob], "marker", 1)
        assert typings(bob) == [
            Typing(room="lobby", active=True, nick="alice"),
            Typing(room="dev", active=True, nick="alice"),
            Typing(room="lobby", active=False, nick="alice"),
        ]


def test_a_start_is_relayed_again_after_the_interval(make_server: Callable[..., ChatServer]) -> None:
    """Once `typing_interval` has passed since the last relayed start, the next start is relayed."""
    server = make_server(typing_interval=0.05)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice", rooms=["lobby"])
        bob.login("bob", rooms=["lobby"])
        alice.send(Typing(room="lobby"))
        bob.recv(Typing)

        def relayed_again() -> bool:
            alice.send(Typing(room="lobby"))
            try:
                bob.recv(Typing, timeout=0.05)
            except AssertionError:
                return False
            return True

        wait_until(relayed_again, what="a second start relayed")


def test_typing_outside_my_rooms_goes_nowhere(login: Login) -> None:
    """A `typing` for a room the client is not in is dropped silently (no error, no relay)."""
    alice = login("alice", rooms=["lobby"])
    bob = login("bob", rooms=["lobby", "dev"])
    alice.send(Typing(room="dev"))
    marker(alice, [bob], "marker", 1)
    assert typings(bob) == []
    assert not any(getattr(message, "code", None) for message in alice.pending)


def test_typing_is_never_stored_nor_replayed(make_server: Callable[..., ChatServer]) -> None:
    """Typing leaves no row in the history and comes back in no page, backfill or resume."""
    server = make_server()
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice", rooms=["lobby"])
        token = bob.login("bob", rooms=["lobby"]).resume_token
        first = _said(alice, "before", 1)
        alice.send(Typing(room="lobby"))
        bob.recv(Typing)
        bob.close()  # bob's connection drops while alice types on
        alice.send(Typing(room="lobby", active=False))
        _said(alice, "after", 2)
        with ChatTestClient(server.address) as again:
            again.send(
                Hello(
                    proto=PROTOCOL_NAME,
                    version=PROTOCOL_VERSION,
                    nick="bob",
                    rooms=("lobby",),
                    after={"lobby": first},
                    resume_token=token,
                )
            )
            again.recv(Welcome)
            resumed = again.recv(History, room="lobby")
            assert [m.text for m in resumed.messages] == ["after"]  # type: ignore[union-attr]
            again.send(FetchHistory(room="lobby", ref=3))
            page = again.recv(History, ref=3)
            assert [type(m).__name__ for m in page.messages] == ["Said", "Said"]
            marker(alice, [again], "done", 4)
            assert typings(again) == []
    server.stop()
    database = sqlite3.connect(server.config.history_path)
    try:
        rows = database.execute("SELECT text, event FROM messages ORDER BY id").fetchall()
    finally:
        database.close()
    assert rows == [("before", None), ("after", None), ("done", None)]


def _said(client: ChatTestClient, text: str, ref: int) -> int:
    client.send(Say(room="lobby", text=text, ref=ref))
    return client.recv(Ack, ref=ref).id
