"""Nick changes across the cluster: the new nick is claimed in the cluster's nick bucket (a nick held on
another server is refused), the change is a record of the log (answered once it is applied; refused, the
old nick kept, if the log cannot take it), the rooms on every server see it, and the old nick is freed
everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import nats
from nats.js.api import DiscardPolicy

from chat_server.cluster.config import ClusterConfig
from chat_server.server import ChatServer
from shared import Ack, ChangeNick, Error, History, Join, NickChanged, Ok, RoomState, Said, Say, Welcome
from tests.cluster.test_nicks import try_login
from tests.cluster.test_presence import Asker
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
        # The cluster's roster follows: both servers list the new nick, in alice's place, away message kept.
        for asker in (Asker(alice), Asker(bob)):
            assert asker.who("den") == [("alicia", None), ("bob", None)]


def test_two_nick_changes_back_to_back_end_with_the_last_nick_everywhere(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """Two changes in a row: the other server announces each in turn and every roster ends with the last
    nick. (The second request usually reaches the history thread after the first record was applied, its
    nick claim being a NATS round trip itself; when it does not, `SharedRenames` names the first change's
    nick as the old one. That interleaving is not forced here.)"""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        join(alice, "den")
        join(bob, "den")
        alice.send(ChangeNick(nick="bea", ref=1))
        alice.send(ChangeNick(nick="cleo", ref=2))
        alice.recv(Ok, ref=2)
        assert [(c.old, c.new) for c in (bob.recv(NickChanged), bob.recv(NickChanged))] == [
            ("alice", "bea"),
            ("bea", "cleo"),
        ]
        for asker in (Asker(alice), Asker(bob)):
            assert asker.who("den") == [("cleo", None), ("bob", None)]


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


@contextlib.contextmanager
def log_refusing_records(config: ClusterConfig) -> Iterator[None]:
    """While inside, the cluster's log stream takes no new record (JetStream refuses it: the stream is at its
    message limit and discards new ones); the nick bucket, a stream of its own, works on."""
    asyncio.run(_limit_log(config, full=True))
    try:
        yield
    finally:
        asyncio.run(_limit_log(config, full=False))


async def _limit_log(config: ClusterConfig, *, full: bool) -> None:
    connection = await nats.connect(list(config.urls))
    try:
        js = connection.jetstream()
        info = await js.stream_info(config.stream)
        limit = info.state.messages if full else -1
        discard = DiscardPolicy.NEW if full else DiscardPolicy.OLD
        await js.update_stream(dataclasses.replace(info.config, max_msgs=limit, discard=discard))
    finally:
        await connection.close()


def test_a_nick_change_the_log_refuses_keeps_the_old_nick(
    start_cluster_server: Callable[..., ChatServer], cluster_config: ClusterConfig
) -> None:
    """The log refuses the change's record: the requester gets `history_unavailable` naming the nick change
    (not a message), and no `ok`; nobody hears `nick_changed`; the old nick stays held, and the claim of the
    new one is released across the cluster."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        join(alice, "den")
        join(bob, "den")
        alice.send(Say(room="den", text="before", ref=1))  # the stream is not empty: its limit is a count
        alice.recv(Ack, ref=1)
        bob.recv(Said)
        with log_refusing_records(cluster_config):
            alice.send(ChangeNick(nick="alicia", ref=2))
            refused = alice.recv_until(lambda m: isinstance(m, Ok | Error) and m.ref == 2, timeout=30)
        assert isinstance(refused, Error), refused
        assert refused.code == "history_unavailable"
        assert refused.message.startswith("the nick change was not stored: "), refused.message
        alice.send(Say(room="den", text="still alice", ref=3))
        alice.recv(Ack, ref=3)
        assert bob.recv(Said).nick == "alice"
        assert not [m for m in alice.drain() + bob.drain() if isinstance(m, NickChanged)]
        held = try_login(two.address, "alice")
        assert isinstance(held, Error)
        assert held.code == "nick_taken"
        wait_until(lambda: isinstance(try_login(two.address, "alicia"), Welcome), what="alicia free on two")


def test_a_nick_change_is_answered_after_its_record_is_applied(
    start_cluster_server: Callable[..., ChatServer], cluster_config: ClusterConfig
) -> None:
    """The `ok` of a nick change comes once the server applied its record: a message sent right after it
    carries the new nick, and the other server's member hears of the change first."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        join(alice, "den")
        join(bob, "den")
        alice.send(ChangeNick(nick="alicia", ref=1))
        alice.recv(Ok, ref=1)
        alice.send(Say(room="den", text="renamed", ref=2))
        said = alice.recv(Ack, ref=2)
        seen = [bob.recv_until(lambda m: isinstance(m, NickChanged | Said))]
        while not isinstance(seen[-1], Said):
            seen.append(bob.recv_until(lambda m: isinstance(m, NickChanged | Said)))
        changed, message = seen
        assert isinstance(changed, NickChanged)
        assert isinstance(message, Said)
        assert (changed.old, changed.new) == ("alice", "alicia")
        assert (message.id, message.nick) == (said.id, "alicia")


def test_a_change_of_letter_case_is_seen_on_both_servers(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """A change of letter case only is a change too: the other server's members hear it; the same nick again
    changes nothing and is answered at once."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", [])
        bob.login("bob", [])
        join(alice, "den")
        join(bob, "den")
        alice.send(ChangeNick(nick="Alice", ref=1))
        alice.recv(Ok, ref=1)
        for client in (alice, bob):
            changed = client.recv(NickChanged)
            assert (changed.old, changed.new) == ("alice", "Alice")
        alice.send(ChangeNick(nick="Alice", ref=2))
        again = alice.recv(NickChanged)  # to the user only, as on a single server
        assert (again.old, again.new) == ("Alice", "Alice")
        alice.recv(Ok, ref=2)
        alice.send(Say(room="den", text="same", ref=3))
        said = alice.recv(Ack, ref=3)
        assert bob.recv(Said, id=said.id).nick == "Alice"
        assert not [m for m in bob.drain() if isinstance(m, NickChanged)]
