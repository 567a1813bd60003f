"""Room membership, `who`, the room list, away messages and sign-offs shared across the servers of a cluster:
two chat servers on one real three-node NATS JetStream cluster, clients on each, several rooms."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from benchmarks.natscluster import NatsCluster
from chat_server.cluster.config import ClusterConfig
from chat_server.history.presence import AWAY_ABSENT
from chat_server.server import ChatServer
from shared import PROTOCOL_NAME
from shared.addresses import host_port
from shared.messages import (
    PROTOCOL_VERSION,
    Ack,
    AwayChanged,
    Error,
    Hello,
    History,
    Join,
    Joined,
    Leave,
    Left,
    ListRooms,
    Message,
    Ok,
    Quit,
    RoomList,
    RoomState,
    Said,
    Say,
    SetAway,
    SignedOff,
    Tell,
    Told,
    Welcome,
    Who,
)
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks
from tests.server.process import ServerProcess
from tests.server.test_always_on import log_in_again
from tests.server.test_sessions import registered

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]

#: A scrypt cost that takes microseconds (the defaults take tens of milliseconds per hash).
CHEAP: dict[str, Any] = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}

#: The servers' lease in the tests (ClusterConfig's default unless a test sets its own).
TEST_LEASE = ClusterConfig().server_lease

#: The frames of presence and of messages whose order the tests compare.
TRACKED = (Said, Ack, Joined, Left, AwayChanged, SignedOff)


class Asker:
    """Asks one client's server `who` and `list_rooms`, each with a fresh `ref`."""

    def __init__(self, client: ChatTestClient) -> None:
        self.client = client
        self.ref = 1000

    def who(self, room: str) -> list[tuple[str, str | None]]:
        """(nick, away) of each member of `room`, in the order `room_state` lists them."""
        self.ref += 1
        self.client.send(Who(room=room, ref=self.ref))
        state = self.client.recv(RoomState, ref=self.ref)
        return [(member.nick, member.away) for member in state.members]

    def rooms(self) -> list[tuple[str, int]]:
        """(name, member count) of each listed room."""
        self.ref += 1
        self.client.send(ListRooms(ref=self.ref))
        return [(room.name, room.members) for room in self.client.recv(RoomList, ref=self.ref).rooms]


def tracked(frames: list[Message]) -> list[Message]:
    """The presence and message frames among `frames`, without their times (they differ per frame kind)."""
    return [frame for frame in frames if isinstance(frame, TRACKED)]


def test_who_and_the_room_list_agree_on_both_servers(start_cluster_server: Callable[..., ChatServer]) -> None:
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
        carol.login("carol", ["side", "lobby"])
        dave.login("dave", ["side"])
        on_one, on_two = Asker(alice), Asker(bob)
        lobby = [("alice", None), ("bob", None), ("carol", None)]
        side = [("alice", None), ("carol", None), ("dave", None)]
        # Each server lists every member, whichever server it is on, in the order of the joins in the log.
        wait_until(lambda: on_one.who("lobby") == lobby, what="lobby as server one lists it")
        wait_until(lambda: on_two.who("lobby") == lobby, what="lobby as server two lists it")
        wait_until(lambda: on_one.who("side") == side and on_two.who("side") == side, what="side on both")
        assert on_one.rooms() == on_two.rooms() == [("lobby", 3), ("side", 3)]


def test_presence_reaches_both_servers_once_in_the_order_of_the_rooms_messages(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        wait_until(lambda: len(Asker(alice).who("lobby")) == 2, what="server one sees bob in lobby")
        alice.drain()
        bob.drain()
        alice.send(Say(room="lobby", text="before carol", ref=1))
        with ChatTestClient(two.address) as carol:
            carol.login("carol", ["lobby"])
            alice.send(Say(room="lobby", text="after carol", ref=2))
            carol.send(SetAway(message="lunch", ref=3))
            carol.recv(Ok, ref=3)
            carol.send(Say(room="lobby", text="carol's", ref=4))
            carol.send(Leave(room="lobby", reason="bye", ref=5))
            carol.recv(Ok, ref=5)
            with ChatTestClient(one.address) as dave:
                dave.login("dave", ["lobby"])
                dave.send(Say(room="lobby", text="dave's", ref=6))
                dave.recv(Ack, ref=6)
        for asker in (Asker(alice), Asker(bob)):  # dave's sign-off applied on both servers (`who` says)
            wait_until(lambda asker=asker: "dave" not in dict(asker.who("lobby")), what="dave signed off")
        bob.send(Say(room="lobby", text="the end", ref=7))
        own = {1: "before carol", 2: "after carol", 7: "the end"}  # what each ack stands for
        expected = [
            ("said", "before carol"),
            ("joined", "carol"),
            ("said", "after carol"),
            ("away", "carol"),
            ("said", "carol's"),
            ("left", "carol"),
            ("joined", "dave"),
            ("said", "dave's"),
            ("signed_off", "dave"),
            ("said", "the end"),
        ]
        views = [[summary(frame, own) for frame in tracked(until_the_end(client))] for client in (alice, bob)]
        # One order on both servers (the log's), each change once; alice's second message and carol's away
        # were sent at the same time from two servers: the log decided their order, alike for everyone.
        assert views[0] == views[1]
        assert sorted(views[0]) == sorted(expected)
        unordered = {("said", "after carol"), ("away", "carol")}
        assert [entry for entry in views[0] if entry not in unordered] == [
            entry for entry in expected if entry not in unordered
        ]


def until_the_end(client: ChatTestClient) -> list[Message]:
    """Every frame `client` receives up to "the end" (its `said`, or its sender's `ack`)."""
    frames: list[Message] = []
    while not frames or summary_is_the_end(frames[-1]):
        frames.append(client.recv_until(lambda _frame: True))
    return frames


def summary_is_the_end(frame: Message) -> bool:
    """False once `frame` is "the end" (the loop above stops there)."""
    return not (
        (isinstance(frame, Said) and frame.text == "the end") or (isinstance(frame, Ack) and frame.ref == 7)
    )


def summary(frame: Message, own: dict[int, str]) -> tuple[str, str]:
    """What a tracked frame says, without ids and times (an `ack` stands for its sender's own `said`)."""
    if isinstance(frame, Said):
        return ("said", frame.text)
    if isinstance(frame, Ack):
        return ("said", own[frame.ref or 0])
    if isinstance(frame, Joined):
        return ("joined", frame.nick)
    if isinstance(frame, Left):
        return ("left", frame.nick)
    if isinstance(frame, AwayChanged):
        return ("away", frame.nick)
    assert isinstance(frame, SignedOff)
    return ("signed_off", frame.nick)


def cluster_toml(tmp_path: Path, config: ClusterConfig, lease: float) -> Path:
    """A server.toml for `chat-server` processes on this test's stream, with a `server_lease` of `lease`."""
    path = tmp_path / "server.toml"
    path.write_text(
        f'[cluster]\nstream = "{config.stream}"\nsubject_prefix = "{config.subject_prefix}"\n'
        f'bucket_prefix = "{config.bucket_prefix}"\nserver_lease = {lease}\n'
    )
    return path


def test_a_killed_servers_members_are_signed_off_once_everywhere(
    tmp_path: Path,
    nats_cluster: NatsCluster,
    cluster_config: ClusterConfig,
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    lease = dataclasses.replace(cluster_config, server_lease=5.0)
    config = cluster_toml(tmp_path, cluster_config, 5.0)
    common = ("--config", str(config), "--cluster", nats_cluster.url_list, "--port", "0")
    two = start_cluster_server("two", cluster=lease)
    three = start_cluster_server("three", cluster=lease)  # two survivors: both notice, one `gone` lands
    with ServerProcess(*common, "--data-dir", str(tmp_path / "1")) as one:
        assert one.address is not None, one.first_line
        with (
            ChatTestClient(one.address) as alice,
            ChatTestClient(one.address) as carol,
            ChatTestClient(two.address) as bob,
            ChatTestClient(three.address) as dan,
        ):
            alice.login("alice", ["lobby", "side"])
            carol.login("carol", ["lobby"])
            bob.login("bob", ["lobby", "side"])
            dan.login("dan", ["lobby"])
            everyone = ["alice", "carol", "bob", "dan"]
            for asker in (Asker(bob), Asker(dan)):
                wait_until(lambda asker=asker: [n for n, _ in asker.who("lobby")] == everyone, what="all in")
            one.kill()  # no goodbye: its members go once its lease runs out
            for asker in (Asker(bob), Asker(dan)):
                wait_until(
                    lambda asker=asker: [n for n, _ in asker.who("lobby")] == ["bob", "dan"], 15.0, "gone"
                )
                assert asker.rooms() == [("lobby", 2), ("side", 1)]
            bob.send(Say(room="lobby", text="after", ref=1))
            bob.recv(Ack, ref=1)
            dan.recv(Said, text="after")  # everything before it in the log has reached dan
            for watcher in (bob, dan):
                gone = [frame for frame in watcher.drain() if isinstance(frame, SignedOff)]
                assert sorted(frame.nick for frame in gone) == ["alice", "carol"]  # once each
        one.close()


def test_a_restarted_server_cleans_its_previous_lifes_members_at_once(
    tmp_path: Path,
    nats_cluster: NatsCluster,
    cluster_config: ClusterConfig,
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    slow = dataclasses.replace(cluster_config, server_lease=60.0)  # only the restart can clean them in time
    config = cluster_toml(tmp_path, cluster_config, 60.0)
    common = ("--config", str(config), "--cluster", nats_cluster.url_list, "--port", "0")
    two = start_cluster_server("two", cluster=slow)
    with ChatTestClient(two.address) as bob:
        bob.login("bob", ["lobby"])
        with ServerProcess(*common, "--data-dir", str(tmp_path / "1")) as one:
            assert one.address is not None, one.first_line
            with ChatTestClient(one.address) as alice:
                alice.login("alice", ["lobby"])
                wait_until(lambda: len(Asker(bob).who("lobby")) == 2, what="bob sees alice")
                one.kill()
            one.close()
        with ServerProcess(*common, "--data-dir", str(tmp_path / "1")) as again:
            assert again.address is not None, again.first_line
            assert bob.recv(SignedOff, nick="alice").reason is not None
            assert Asker(bob).who("lobby") == [("bob", None)]
            with ChatTestClient(again.address) as carol:
                carol.login("carol", ["lobby"])
                wait_until(
                    lambda: Asker(carol).who("lobby") == [("bob", None), ("carol", None)], what="no ghost"
                )
            again.close()


def test_an_always_on_nick_stays_in_its_rooms_across_the_cluster_and_comes_back_on_another_server(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """With `always_on`, a registered nick whose last session ends (on server one) stays in its rooms on
    every server, away with the server's message, no sign-off; a direct message to it is stored; its next
    login, on server two, takes its place: it is in its rooms again (each announced to it as its own join),
    gets the direct message, and the others see its away message go and no arrival."""
    one = start_cluster_server("one", always_on=True, **CHEAP)
    two = start_cluster_server("two", always_on=True, **CHEAP)
    assert one.address is not None
    with ChatTestClient(two.address) as bob, ChatTestClient(one.address) as carol:
        bob.login("bob", ["lobby"])
        carol.login("carol", ["lobby"])
        with registered(one.address, "alice", ("lobby", "attic")) as alice:
            wait_until(
                lambda: [n for n, _ in Asker(bob).who("lobby")] == ["bob", "carol", "alice"], what="in"
            )
            for watcher in (bob, carol):
                watcher.drain()  # the joins so far
            alice.send(Quit(reason="laptop closed"))
            alice.wait_closed()
        for watcher in (bob, carol):  # on both servers: away, not signed off
            assert watcher.recv(AwayChanged, nick="alice").message == AWAY_ABSENT
        for asker in (Asker(bob), Asker(carol)):
            assert asker.who("lobby") == [("bob", None), ("carol", None), ("alice", AWAY_ABSENT)]
            assert asker.rooms() == [("attic", 1), ("lobby", 3)]
        bob.send(Tell(to="alice", text="call me when you are back", ref=11))
        bob.recv(Ack, ref=11)
        with log_in_again(two.address, "alice") as back:
            assert back.recv(Welcome, ref=1).nick == "alice"
            assert {back.recv(Joined).room, back.recv(Joined).room} == {"lobby", "attic"}
            missed = back.recv(History, direct=True)
            assert [(m.nick, m.text) for m in missed.messages if isinstance(m, Told)] == [
                ("bob", "call me when you are back")
            ]
            for watcher in (bob, carol):
                assert watcher.recv(AwayChanged, nick="alice").message is None
            for asker in (Asker(bob), Asker(carol)):
                assert asker.who("lobby") == [("bob", None), ("carol", None), ("alice", None)]
            back.send(Say(room="attic", text="back", ref=2))
            back.recv(Ack, ref=2)
            for watcher in (bob, carol):
                assert not [m for m in watcher.drain() if isinstance(m, Joined | SignedOff)]


def test_an_always_on_servers_registered_members_stay_when_it_goes_away(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    """A server that stops: its registered members are absent (they stay in their rooms, away), its other
    members are signed off, on the servers that are left."""
    one = start_cluster_server("one", always_on=True, **CHEAP)
    two = start_cluster_server("two", always_on=True, **CHEAP)
    assert one.address is not None
    with ChatTestClient(two.address) as bob:
        bob.login("bob", ["lobby"])
        with registered(one.address, "alice") as alice, ChatTestClient(one.address) as carol:
            carol.login("carol", ["lobby"])
            wait_until(lambda: len(Asker(bob).who("lobby")) == 3, what="all three")
            one.stop()
            alice.wait_closed()
            carol.wait_closed()
        # Its entry in the servers bucket is deleted at once; it is called gone a third of the lease later.
        wait = TEST_LEASE / 3 + 5.0
        assert bob.recv(SignedOff, wait, nick="carol").reason is not None
        assert bob.recv(AwayChanged, wait, nick="alice").message == AWAY_ABSENT
        assert Asker(bob).who("lobby") == [("bob", None), ("alice", AWAY_ABSENT)]
        with log_in_again(two.address, "alice") as back:
            back.recv(Welcome, ref=1)
            assert back.recv(Joined).room == "lobby"
            assert bob.recv(AwayChanged, nick="alice").message is None


def test_a_member_resuming_on_another_server_is_shown_once(
    tmp_path: Path,
    nats_cluster: NatsCluster,
    cluster_config: ClusterConfig,
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    lease = dataclasses.replace(cluster_config, server_lease=5.0)
    config = cluster_toml(tmp_path, cluster_config, 5.0)
    common = ("--config", str(config), "--cluster", nats_cluster.url_list, "--port", "0")
    two = start_cluster_server("two", cluster=lease)
    with ServerProcess(*common, "--data-dir", str(tmp_path / "1")) as one, ChatTestClient(two.address) as bob:
        assert one.address is not None, one.first_line
        bob.login("bob", ["lobby"])
        with ChatTestClient(one.address) as old, ChatTestClient(one.address) as carol:
            token = old.login("alice", ["lobby"]).resume_token
            carol.login("carol", ["lobby"])
            everyone = [("bob", None), ("alice", None), ("carol", None)]
            wait_until(lambda: Asker(bob).who("lobby") == everyone, what="bob sees alice and carol")
            bob.drain()
            resumed: list[ChatTestClient] = []

            def resume() -> bool:
                """alice's client fails over to server two with its resume token (taken once the token's
                hash is in the nick bucket, within a round of the login)."""
                new = ChatTestClient(two.address)
                hello = Hello(
                    proto=PROTOCOL_NAME,
                    version=PROTOCOL_VERSION,
                    nick="alice",
                    rooms=("lobby",),
                    resume_token=token,
                )
                new.send(hello)
                if isinstance(new.recv_until(lambda m: isinstance(m, Welcome | Error)), Welcome):
                    new.recv(History, room="lobby")
                    resumed.append(new)
                    return True
                new.close()
                return False

            wait_until(resume, what="alice resumed on server two")
            with resumed[0] as alice:
                old.error("session_replaced")  # server one ends the old session, and publishes nothing for it
                assert Asker(alice).who("lobby") == everyone  # alice in her place, once
                one.kill()  # carol goes with her server; alice's seat is server two's now
                wait_until(
                    lambda: Asker(bob).who("lobby") == [("bob", None), ("alice", None)], 15.0, "carol gone"
                )
                bob.send(Say(room="lobby", text="after", ref=1))
                bob.recv(Ack, ref=1)
                alice.recv(Said, text="after")
                changes = [
                    summary(frame, {})
                    for frame in bob.drain()
                    if isinstance(frame, Joined | Left | SignedOff)
                ]
                assert changes == [("signed_off", "carol")]
        one.close()


def test_requests_pipelined_behind_a_join_wait_for_it(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        bob.login("bob", ["lobby"])
        alice.hello("alice", ["lobby"])
        alice.send(Say(room="lobby", text="right after the hello", ref=1))  # before the join is applied
        alice.send(Join(room="side", ref=2))
        alice.send(Say(room="side", text="right after the join", ref=3))
        alice.send(Leave(room="side", ref=4))
        alice.send(Say(room="side", text="after leaving", ref=5))
        alice.recv(Ack, ref=1)
        alice.recv(RoomState, ref=2)
        alice.recv(Ack, ref=3)
        alice.recv(Ok, ref=4)
        assert alice.recv(Error, ref=5).code == "not_in_room"  # as on a single server
        before: list[Message] = []
        while not (before and isinstance(before[-1], Said)):
            before.append(bob.recv_until(lambda _frame: True))
        assert before[-1].text == "right after the hello"
        joins = [(m.nick, m.room) for m in before if isinstance(m, Joined) and m.nick != "bob"]
        assert joins == [("alice", "lobby")]


def test_the_hellos_rooms_beyond_the_limit_are_refused(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one", max_rooms_per_client=2)
    two = start_cluster_server("two", max_rooms_per_client=2)
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.hello("alice", ["a", "b", "c"])  # the joins of a and b are on their way when c is checked
        assert alice.error("too_many_rooms").code == "too_many_rooms"
        alice.recv(History, room="a")
        alice.recv(History, room="b")
        bob.login("bob", [])
        wait_until(lambda: Asker(bob).rooms() == [("a", 1), ("b", 1)], what="alice in two rooms, seen on two")


async def declare_gone(config: ClusterConfig, address: tuple[str, int]) -> None:
    """Publish to the log what the others publish when they find the server at `address` dead (its id read
    from the servers bucket): as after a NATS outage longer than the lease, seen from the others."""
    import nats

    connection = await nats.connect(list(config.urls))
    try:
        js = connection.jetstream()
        servers = await js.key_value(f"{config.bucket_prefix}-servers")
        origins = [
            key
            for key in await servers.keys()
            if (await servers.get(key)).value == host_port(*address).encode()
        ]
        record = {
            "k": "gone",
            "server": origins[0],
            "o": "a-test",
            "t": 1,
            "ts": 1,
            "nick": "",
            "nick_key": "",
        }
        await js.publish(config.log_subject, msgpack.packb(record))
    finally:
        await connection.close()


def test_a_server_declared_gone_while_alive_seats_its_members_again(
    cluster_config: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        both = [("alice", None), ("bob", None)]
        wait_until(lambda: Asker(bob).who("lobby") == both, what="bob sees alice")
        alice.drain()
        bob.drain()
        asyncio.run(declare_gone(cluster_config, one.address))
        assert bob.recv(SignedOff, nick="alice").reason is not None
        assert bob.recv(Joined, nick="alice").room == "lobby"  # server one seated her again
        again = [("bob", None), ("alice", None)]  # she joined again, after bob
        wait_until(
            lambda: Asker(bob).who("lobby") == again and Asker(alice).who("lobby") == again, what="both"
        )
        alice.send(Say(room="lobby", text="still here", ref=1))
        alice.recv(Ack, ref=1)  # she never left, as far as her own server goes
        assert bob.recv(Said).text == "still here"
        assert [frame for frame in alice.drain() if isinstance(frame, Joined | Left | SignedOff)] == []
