"""A registered nick's read markers, notification levels and keywords in cluster mode (chat_server.cluster.
attention): set on one server, they are where the nick finds them on the other, and the nick's other
sessions hear of each change.

Two chat servers on one real three-node NATS JetStream cluster (tests/cluster/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable

from chat_server.server import ChatServer
from shared.messages import (
    Ack,
    Error,
    History,
    MarkRead,
    NotifyLevel,
    NotifySettings,
    ReadMarker,
    ReadPosition,
    Register,
    Registration,
    Say,
    SetKeywords,
    SetNotify,
    Welcome,
)
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks
from tests.server.test_read_markers import PASSWORD, log_in_registered

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


def register(address: tuple[str, int], nick: str) -> None:
    """Register `nick` (with `PASSWORD`) from a session on `address`, then log out."""
    with ChatTestClient(address) as client:
        client.login(nick, rooms=["lobby"])
        client.send(Register(password=PASSWORD, ref=1))
        assert client.recv(Registration, ref=1).registered


def log_in_when_free(address: tuple[str, int], nick: str) -> tuple[ChatTestClient, Welcome]:
    """Log in as registered `nick` on `address` (in `lobby`) once the cluster lets it: its registration has
    reached that server and its sessions elsewhere have ended. The welcome, and the client (its `lobby`
    history left unread)."""
    logged_in: list[tuple[ChatTestClient, Welcome]] = []

    def attempt() -> bool:
        client = log_in_registered(address, nick)
        answer = client.recv_until(lambda m: isinstance(m, Welcome | Error))
        if isinstance(answer, Welcome):
            logged_in.append((client, answer))
            return True
        client.close()
        return False

    wait_until(attempt, what=f"{nick} logged in on {address}")
    return logged_in[0]


def test_a_marker_moved_on_one_server_is_where_the_nick_finds_it_on_the_other(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    assert one.address is not None
    assert two.address is not None
    register(one.address, "alice")
    with ChatTestClient(two.address) as bob:
        bob.login("bob", rooms=["lobby"])
        ids = []
        for n in range(3):
            bob.send(Say(room="lobby", text=f"m{n}", ref=n + 1))
            ids.append(bob.recv(Ack, ref=n + 1).id)
    alice, _welcome = log_in_when_free(one.address, "alice")
    with alice, log_in_registered(one.address, "alice") as sibling:
        sibling.recv(Welcome, ref=1)
        alice.recv(History)
        alice.send(MarkRead(room="lobby", id=ids[1], ref=7))
        assert alice.recv(ReadMarker, ref=7) == ReadMarker(room="lobby", id=ids[1], ref=7)
        # The nick's other session hears of it, without the ref.
        assert sibling.recv(ReadMarker) == ReadMarker(room="lobby", id=ids[1])
        alice.send(MarkRead(room="lobby", id=ids[0], ref=8))  # never backwards
        assert alice.recv(ReadMarker, ref=8).id == ids[1]
        sibling.send(MarkRead(peer="bob", id=ids[2], ref=9))
        assert sibling.recv(ReadMarker, ref=9) == ReadMarker(peer="bob", id=ids[2], ref=9)
        assert alice.recv(ReadMarker) == ReadMarker(peer="bob", id=ids[2])
    # A login on the other server is told both markers, and its join's history where it stopped reading.
    alice, welcome = log_in_when_free(two.address, "alice")
    with alice:
        assert set(welcome.read_markers) == {
            ReadPosition(room="lobby", id=ids[1]),
            ReadPosition(peer="bob", id=ids[2]),
        }
        assert alice.recv(History).read_up_to == ids[1]


def test_levels_and_keywords_set_on_one_server_hold_on_the_other(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one", notify_levels_per_nick=1)
    two = start_cluster_server("two", notify_levels_per_nick=1)
    assert one.address is not None
    assert two.address is not None
    register(one.address, "alice")
    lobby_all = (NotifyLevel(room="lobby", level="all"),)
    alice, _welcome = log_in_when_free(one.address, "alice")
    with alice, log_in_registered(one.address, "alice") as sibling:
        sibling.recv(Welcome, ref=1)
        alice.send(SetNotify(room="lobby", level="all", ref=2))
        assert alice.recv(NotifySettings, ref=2).levels == lobby_all
        assert sibling.recv(NotifySettings).levels == lobby_all
        sibling.send(SetKeywords(keywords=("deploy", "lunch"), ref=4))
        assert sibling.recv(NotifySettings, ref=4).keywords == ("deploy", "lunch")
        assert alice.recv(NotifySettings).keywords == ("deploy", "lunch")
    alice, welcome = log_in_when_free(two.address, "alice")
    with alice:
        assert welcome.notify_levels == lobby_all
        assert welcome.keywords == ("deploy", "lunch")
        alice.send(SetNotify(room="attic", level="none", ref=3))  # the limit counts what was set on one
        assert alice.recv(Error, ref=3).code == "too_long"
        alice.send(SetNotify(room="lobby", ref=4))  # back to the default: forgotten on every server
        assert alice.recv(NotifySettings, ref=4).levels == ()
    alice, welcome = log_in_when_free(one.address, "alice")
    with alice:
        assert welcome.notify_levels == ()
        assert welcome.keywords == ("deploy", "lunch")


def test_an_unregistered_nick_s_marker_stays_with_its_session(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one")
    assert one.address is not None
    with ChatTestClient(one.address) as carol:
        carol.login("carol", rooms=["lobby"])
        carol.send(Say(room="lobby", text="hello", ref=1))
        said = carol.recv(Ack, ref=1).id
        carol.send(MarkRead(room="lobby", id=said, ref=2))
        assert carol.recv(ReadMarker, ref=2).id == said
    with ChatTestClient(one.address) as carol:
        welcome = carol.login("carol", rooms=["lobby"])
        assert welcome.read_markers == ()
