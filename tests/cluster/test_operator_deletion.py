"""An operator's deletion of someone else's message in cluster mode: one record that every server completes.

On a single server the deletion stores the `deleted` event, then the `moderated` entry (action ``delete``),
and the `ack` carries the entry's id. In cluster mode the deletion record carries what the entry needs, and
every server that applies it writes the entry's record (JetStream keeps one copy): so the entry is stored
even when the server that published the deletion stops right after it (chat_server.cluster.conversation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack

from chat_server.cluster.config import ClusterConfig
from chat_server.cluster.link import NatsLink
from chat_server.server import ChatServer
from shared import Ack, Delete, Deleted, FetchHistory, History, Moderated, Said, Say
from tests.cluster.test_accounts import publish_records
from tests.server.client import ChatTestClient
from tests.server.conftest import no_leaks

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]

ROOM = "den"
StartServer = Callable[..., ChatServer]


def page(client: ChatTestClient, ref: int) -> History:
    """The room's latest history page, as `client`'s server serves it."""
    client.send(FetchHistory(room=ROOM, limit=100, ref=ref))
    return client.recv(History, ref=ref)


def log_records(config: ClusterConfig) -> list[tuple[int, dict[str, Any]]]:
    """Every record of the cluster's log with its stream sequence, read over a connection of its own."""
    link = NatsLink(config)
    link.connect()
    try:

        async def read(js: Any) -> list[tuple[int, dict[str, Any]]]:
            last = (await js.stream_info(config.stream)).state.last_seq
            records = []
            for seq in range(1, last + 1):
                message = await js.get_msg(config.stream, seq)
                records.append((seq, msgpack.unpackb(message.data)))
            return records

        return link.run(read, 10.0)
    finally:
        link.stop()


def deletion_seen(client: ChatTestClient, message_id: int) -> tuple[Deleted, Moderated]:
    """The `deleted` event of `message_id` and the `moderated` entry after it, as `client` gets them."""
    deleted = client.recv(Deleted, message_id=message_id)
    moderated = client.recv(Moderated, action="delete")
    return deleted, moderated


def test_an_operator_deletion_is_one_record_with_its_entry_on_both_servers(
    start_cluster_server: StartServer, cluster_config: ClusterConfig
) -> None:
    """bob, operator on server two, deletes carol's message (sent on server one): every member on both
    servers gets the `deleted` event and the `moderated` entry with the same ids, bob's ack names the entry,
    the history is the same on both; the log holds the deletion (carrying the entry's facts) and one copy
    of the entry's record, though both servers wrote it."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with (
        ChatTestClient(one.address) as alice,
        ChatTestClient(one.address) as carol,
        ChatTestClient(two.address) as bob,
        ChatTestClient(two.address) as dave,
    ):
        bob.login("bob", [ROOM])  # the first in the room (membership is shared): its operator
        alice.login("alice", [ROOM])
        carol.login("carol", [ROOM])
        dave.login("dave", [ROOM])
        carol.send(Say(room=ROOM, text="carol's", ref=1))
        hers = carol.recv(Ack, ref=1)
        bob.recv(Said, id=hers.id)
        bob.send(Delete(id=hers.id, reason="off topic", ref=2))
        seen = {client: deletion_seen(client, hers.id) for client in (alice, carol, dave)}
        ack = bob.recv(Ack, ref=2)
        ids = {(deleted.id, moderated.id) for deleted, moderated in seen.values()}
        assert len(ids) == 1, ids
        ((deleted_id, entry_id),) = ids
        assert deleted_id < entry_id == ack.id
        for _deleted, moderated in seen.values():
            assert (moderated.nick, moderated.target, moderated.reason) == ("bob", "carol", "off topic")
        assert page(alice, 3) == page(dave, 3)
        assert entry_id in [m.id for m in page(carol, 4).messages]

    records = dict(log_records(cluster_config))
    deletion = records[deleted_id]
    assert (deletion["k"], deletion["id"], deletion["moderated"]) == ("delete", hers.id, True)
    entries = [seq for seq, record in records.items() if record["k"] == "deletion_entry"]
    assert entries == [entry_id]
    assert records[entry_id]["deletion"] == deleted_id


def test_the_entry_is_stored_when_the_deleting_server_stopped_after_the_deletion(
    start_cluster_server: StartServer, cluster_config: ClusterConfig
) -> None:
    """A deletion record whose server is gone (it stopped right after publishing it, before writing the
    entry): the servers that apply it write the entry, so both store and announce it, with the same id."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as carol, ChatTestClient(two.address) as dave:
        carol.login("carol", [ROOM])
        dave.login("dave", [ROOM])
        carol.send(Say(room=ROOM, text="carol's", ref=1))
        hers = carol.recv(Ack, ref=1)
        dave.recv(Said, id=hers.id)
        gone = {"o": "a-server-that-stopped", "t": 1, "ts": int(time.time() * 1000), "nick": "bob"}
        deletion = {**gone, "nick_key": "bob", "k": "delete", "id": hers.id, "reason": "spam"}
        publish_records(cluster_config, [{**deletion, "moderated": True}])
        deleted, moderated = deletion_seen(carol, hers.id)
        assert deletion_seen(dave, hers.id) == (deleted, moderated)
        assert deleted.id < moderated.id
        assert (moderated.nick, moderated.target, moderated.reason) == ("bob", "carol", "spam")
        assert page(carol, 2) == page(dave, 2)


def test_a_deletion_and_its_entry_written_by_the_previous_version_are_applied(
    start_cluster_server: StartServer, cluster_config: ClusterConfig
) -> None:
    """A log of the previous version holds an operator's deletion, then its `deletion_entry` record (no
    deletion sequence): both are applied as they come, and no server writes a second entry."""
    one = start_cluster_server("one")
    two = start_cluster_server("two")
    with ChatTestClient(one.address) as carol, ChatTestClient(two.address) as dave:
        carol.login("carol", [ROOM])
        dave.login("dave", [ROOM])
        carol.send(Say(room=ROOM, text="carol's", ref=1))
        hers = carol.recv(Ack, ref=1)
        dave.recv(Said, id=hers.id)
        old = {"o": "a-previous-version", "ts": int(time.time() * 1000), "nick": "bob", "nick_key": "bob"}
        deletion = {**old, "t": 1, "k": "delete", "id": hers.id, "reason": "spam"}
        entry = {**old, "t": 2, "k": "deletion_entry", "room_key": ROOM, "room": ROOM, "actor": "bob"}
        publish_records(cluster_config, [deletion, {**entry, "author": "carol", "reason": "spam"}])
        deleted, moderated = deletion_seen(carol, hers.id)
        assert deletion_seen(dave, hers.id) == (deleted, moderated)
        assert moderated.id == deleted.id + 1  # the entry's own record, next in the log
        carol.send(Say(room=ROOM, text="after", ref=2))
        after = carol.recv(Ack, ref=2)
        dave.recv(Said, id=after.id)
    kinds = [record["k"] for _seq, record in log_records(cluster_config)]
    assert kinds.count("deletion_entry") == 1
