"""NATS nodes going away while the chat runs (a cluster of its own: these tests stop its nodes).

One node of three killed with SIGKILL: no acknowledged message is lost and the chat goes on. Every node
down: messages are refused with `history_unavailable`, never acked; the nodes back: the chat resumes by
itself, and every acknowledged message is in the history exactly once.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable

from benchmarks.natscluster import NatsCluster
from chat_server.cluster.config import ClusterConfig
from chat_server.server import ChatServer
from shared.messages import Ack, Error, FetchHistory, History, Say
from tests.server.client import ChatTestClient, wait_until
from tests.server.conftest import no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


def acked_or_refused(client: ChatTestClient, ref: int) -> Ack | Error:
    """The one answer to request `ref`."""
    answer = client.recv_until(lambda m: isinstance(m, Ack | Error) and m.ref == ref, timeout=30)
    assert isinstance(answer, Ack | Error)
    return answer


def back_within(server: ChatServer, client: ChatTestClient, seconds: float) -> bool:
    """Once the server is connected to NATS again, send a message until one is acked (each try waits for its
    answer: a refusal while JetStream elects its leaders takes `publish_timeout`); False after `seconds`."""
    end = time.monotonic() + seconds
    ref = 10_000
    while time.monotonic() < end:
        wait_until(lambda: server.cluster_connected, max(0.0, end - time.monotonic()), "reconnected")
        ref += 1
        client.send(Say(room="lobby", text="back?", ref=ref))
        if isinstance(acked_or_refused(client, ref), Ack):
            return True
    return False


_refs = itertools.count(900)


def history_ids(client: ChatTestClient) -> list[int]:
    """The ids of the lobby's history page, as the client's server has it."""
    ref = next(_refs)
    client.send(FetchHistory(room="lobby", limit=500, ref=ref))
    return [m.id for m in client.recv(History, ref=ref).messages]


def test_one_node_killed_loses_no_acked_message(
    nats_cluster: NatsCluster, start_cluster_server: Callable[..., ChatServer]
) -> None:
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
        alice.login("alice", ["lobby"])
        bob.login("bob", ["lobby"])
        acked: list[int] = []
        for n in range(10):
            alice.send(Say(room="lobby", text=f"before {n}", ref=n + 1))
        acked += [alice.recv(Ack, ref=n + 1).id for n in range(10)]
        nats_cluster.stop_node(0, kill=True)
        try:
            for n in range(10, 30):
                alice.send(Say(room="lobby", text=f"after {n}", ref=n + 1))
            # Each is acked, or refused while the server reconnects to another node and JetStream elects
            # new leaders: never lost silently.
            answers = [acked_or_refused(alice, n + 1) for n in range(10, 30)]
            acked += [a.id for a in answers if isinstance(a, Ack)]
            refused = [a for a in answers if isinstance(a, Error)]
            assert all(a.code == "history_unavailable" for a in refused)
            # The chat goes on on two nodes of three.
            assert back_within(one, alice, 60.0), "no message was acked after one NATS node died"
        finally:
            nats_cluster.start_node(0)
        for server_client in (alice, bob):  # each server's copy catches up: every acked message, once
            wait_until(lambda c=server_client: set(acked) <= set(history_ids(c)), 30.0, "every acked message")
            ids = history_ids(server_client)
            assert len(ids) == len(set(ids))


def test_all_nodes_down_refuses_then_recovers(
    nats_cluster: NatsCluster,
    cluster_config: ClusterConfig,
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    quick = dataclasses.replace(cluster_config, publish_timeout=1.0)  # each try while JetStream elects
    server = start_cluster_server("one", cluster=quick)
    with ChatTestClient(server.address) as alice:
        alice.login("alice", ["lobby"])
        alice.send(Say(room="lobby", text="first", ref=1))
        first = alice.recv(Ack, ref=1)
        nats_cluster.stop()
        try:
            alice.send(Say(room="lobby", text="while down", client_msg_id="down-1", ref=2))
            refusal = acked_or_refused(alice, 2)
            assert isinstance(refusal, Error), refusal
            assert refusal.code == "history_unavailable"
            assert "not stored" in refusal.message
        finally:
            nats_cluster.start()
        assert back_within(server, alice, 60.0), "the chat did not resume by itself after NATS came back"
        ids = history_ids(alice)
        assert ids[0] == first.id
        assert len(ids) == len(set(ids))
