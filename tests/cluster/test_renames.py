"""Nick changes across the cluster: the new nick is claimed in the cluster's nick bucket (a nick held on
another server is refused), the rooms on every server see the change, and the old nick is freed everywhere."""

from __future__ import annotations

from collections.abc import Callable

from chat_server.server import ChatServer
from shared import ChangeNick, Error, History, Join, NickChanged, Ok, RoomState, Welcome
from tests.cluster.test_nicks import try_login
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


def join(client: ChatTestClient, room: str) -> None:
    """Join `room` and wait for its state and backfill."""
    client.send(Join(room=room, ref=77))
    client.recv(RoomState, ref=77)
    client.recv(History, ref=77)


def test_a_nick_change_is_seen_in_the_rooms_on_both_servers(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        join(alice, "den")
        join(bob, "den")
        alice.send(ChangeNick(nick="alicia", ref=1))
        assert alice.recv(NickChanged).new == "alicia"
        alice.recv(Ok, ref=1)
        changed = bob.recv(NickChanged)  # bob is on the other server
        assert (changed.old, changed.new) == ("alice", "alicia")


def test_a_nick_held_on_another_server_is_refused_and_an_old_one_is_freed(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        alice.send(ChangeNick(nick="Bob", ref=1))
        taken = alice.recv(Error, ref=1)
        assert (taken.code, taken.fatal) == ("nick_taken", False)
        assert "another server" in taken.message
        alice.send(ChangeNick(nick="alicia", ref=2))
        alice.recv(Ok, ref=2)
        # The new nick is held across the cluster at once; the old one is free everywhere within a round.
        held = try_login(two.address, "Alicia")
        assert isinstance(held, Error)
        assert held.code == "nick_taken"
        wait_until(lambda: isinstance(try_login(two.address, "alice"), Welcome), what="alice free on two")
