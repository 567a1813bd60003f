"""`chat-server --cluster URLS --migrate FILE`: a single server's history, published into an empty stream,
is what the cluster's servers then serve (same senders, texts, timestamps, edits, deletions and reactions;
ids renumbered, replies and events kept)."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.natscluster import NatsCluster
from chat_server.cluster.config import ClusterConfig
from chat_server.cluster.migrate import MigrationError, migrate
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import DELETED_TEXT, PROTOCOL_NAME, Message
from shared.messages import (
    PROTOCOL_VERSION,
    Ack,
    Ban,
    Delete,
    Edit,
    Error,
    FetchHistory,
    Hello,
    History,
    Join,
    Mute,
    Ok,
    React,
    Register,
    Registration,
    RoomState,
    Said,
    Say,
    SetMode,
    SetTopic,
    Tell,
    Unreact,
    Welcome,
)
from tests.cluster.test_nicks import try_login
from tests.server.client import ChatTestClient
from tests.server.conftest import TEST_SETTINGS, no_leaks
from tests.server.process import ServerProcess

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


def single_server_history(folder: Path) -> tuple[Path, History, History]:
    """A history made by the single-server mode: room messages, a reply, an edit, reactions (one taken off),
    an own deletion and an operator's, a DM with a reaction; and its room `lobby` and alice's direct
    conversations as alice's pages showed them there."""
    server = ChatServer(ServerConfig(**{**TEST_SETTINGS, "data_dir": folder}))
    with server, ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice", ["lobby", "dev"])  # the first in lobby: its operator
        bob.login("bob", ["lobby"])
        refs = iter(range(1, 100))

        def acked(client: ChatTestClient, request: Message) -> Ack:
            ref = next(refs)
            client.send(dataclasses.replace(request, ref=ref))  # type: ignore[type-var]
            return client.recv(Ack, ref=ref)

        first = acked(alice, Say(room="lobby", text="first"))
        acked(alice, Say(room="dev", text="in dev", client_msg_id="c1"))
        gone = acked(alice, Say(room="lobby", text="gone soon"))
        acked(alice, Delete(id=gone.id))
        acked(bob, Say(room="lobby", text="a reply", reply_to=first.id))
        psst = acked(bob, Tell(to="alice", text="psst"))
        acked(alice, Edit(id=first.id, text="first, edited"))
        acked(bob, React(id=first.id, reaction="👍"))
        acked(bob, React(id=first.id, reaction="🎉"))
        acked(bob, Unreact(id=first.id, reaction="🎉"))
        acked(alice, React(id=psst.id, reaction="👀"))
        rude = acked(bob, Say(room="lobby", text="rude"))
        acked(alice, Delete(id=rude.id, reason="no"))  # an operator's: a moderated entry too
        alice.send(SetTopic(room="lobby", topic="all about lobbies", ref=97))
        alice.recv(Ok, ref=97)
        lobby = page(alice, 98, room="lobby")
        direct = page(alice, 99, direct=True)
    return server.config.history_path, lobby, direct


def page(client: ChatTestClient, ref: int, **where: object) -> History:
    """A history page of `client`'s server (the latest 100 entries of a room, or of its direct messages)."""
    client.send(FetchHistory(limit=100, ref=ref, **where))  # type: ignore[arg-type]
    return client.recv(History, ref=ref)


def said(history: History) -> list[Said]:
    """The room messages of a page."""
    return [m for m in history.messages if isinstance(m, Said)]


def renumbered(history: History, ids: dict[int, int], ref: int) -> History:
    """`history` with every id (of its entries, the messages they reply to or change, `rev`) mapped by
    `ids`, and `ref`."""

    def entry(m: Any) -> Any:
        fields = {
            name: ids[getattr(m, name)]
            for name in ("id", "message_id", "reply_to", "rev")
            if getattr(m, name, None) is not None
        }
        return dataclasses.replace(m, **fields)

    events = None if history.events is None else tuple(entry(e) for e in history.events)
    return dataclasses.replace(
        history, messages=tuple(entry(m) for m in history.messages), events=events, ref=ref
    )


def entry_ids(history: History) -> list[int]:
    """The ids of a page's entries (messages, moderation entries and events), in order."""
    return sorted([m.id for m in history.messages] + [e.id for e in history.events or ()])


def test_migrate_then_serve(
    tmp_path: Path, cluster_config: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    """The migrated history is served as the single server served it: the same entries (messages as
    edited, tombstones, reactions, events, the operator's deletion entry) under new ids."""
    db, single_lobby, single_direct = single_server_history(tmp_path / "single")
    report = migrate(db, cluster_config)
    assert (report.room_messages, report.direct_messages, report.deleted) == (5, 1, 2)
    assert (report.events, report.topics, report.skipped_other) == (8, 1, 0)
    server = start_cluster_server("cluster")  # a new data folder: it applies the stream
    with ChatTestClient(server.address) as alice:
        alice.login("alice", ["lobby", "dev"])
        assert alice.recv(RoomState, room="lobby").topic == "all about lobbies"
        lobby = page(alice, 10, room="lobby")
        assert [(m.nick, m.text) for m in said(lobby)] == [
            ("alice", "first, edited"),
            ("alice", DELETED_TEXT),
            ("bob", "a reply"),
            ("bob", DELETED_TEXT),
        ]
        old_ids, new_ids = entry_ids(single_lobby), entry_ids(lobby)
        assert len(old_ids) == len(new_ids)
        assert renumbered(single_lobby, dict(zip(old_ids, new_ids, strict=True)), 10) == lobby
        direct = page(alice, 11, direct=True)
        old_ids, new_ids = entry_ids(single_direct), entry_ids(direct)
        assert renumbered(single_direct, dict(zip(old_ids, new_ids, strict=True)), 11) == direct
        dev = said(page(alice, 12, room="dev"))
        assert [m.text for m in dev] == ["in dev"]
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as old:
            old_ts = dict(
                old.execute("SELECT text, ts FROM messages WHERE event IS NULL AND deleted IS NULL")
            )
        assert said(lobby)[2].ts == old_ts["a reply"]
        # A resend of an old message with its client_msg_id is recognised as a duplicate.
        alice.send(Say(room="dev", text="in dev", client_msg_id="c1", ref=13))
        again = alice.recv(Ack, ref=13)
        assert (again.duplicate, again.id) == (True, dev[0].id)
    with pytest.raises(MigrationError, match="already holds"):
        migrate(db, cluster_config)  # only into an empty stream


def test_migrate_command(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    db, _lobby, _direct = single_server_history(tmp_path / "single")
    stream, prefix = nats_cluster.stream_names()
    config = tmp_path / "server.toml"
    config.write_text(f'[cluster]\nstream = "{stream}"\nsubject_prefix = "{prefix}"\n')
    arguments = ("--config", str(config), "--cluster", nats_cluster.url_list, "--migrate", str(db))
    with ServerProcess(*arguments) as command:
        assert command.process.wait(60) == 0
        out, err = command.close()
    assert f"migrated 6 messages and 9 changes into the stream {stream}" in command.first_line + out, err
    with ServerProcess("--migrate", str(db)) as refused:
        assert refused.process.wait(30) == 2
        _, err = refused.close()
        assert "--migrate needs --cluster" in err


def test_migrate_carries_registered_nicks_and_room_rules(
    tmp_path: Path, cluster_config: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    cheap = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}
    single = ChatServer(ServerConfig(**{**TEST_SETTINGS, **cheap, "data_dir": tmp_path / "single"}))
    with single, ChatTestClient(single.address) as alice:
        alice.login("alice", [])
        alice.send(Register(password="secret", ref=1))
        alice.recv(Registration, ref=1)
        alice.send(Join(room="den", ref=2))  # its creator: a stored operator (a registered nick)
        alice.recv(History, ref=2)
        alice.send(Ban(room="den", nick="mallory", reason="spam", ref=3))
        alice.recv(Ack, ref=3)
        alice.send(Mute(room="den", nick="bob", ref=4))
        alice.recv(Ack, ref=4)
        alice.send(SetMode(room="den", key="sesame", ref=5))
        alice.recv(RoomState, ref=5)
    report = migrate(single.config.history_path, cluster_config)
    assert (report.registered_nicks, report.moderated_rooms) == (1, 1)
    assert "1 registered nicks, the rules of 1 rooms" in report.describe(cluster_config.stream)
    server = start_cluster_server("cluster", **cheap)
    wrong = try_login(server.address, "alice")  # registered: its password is needed
    assert isinstance(wrong, Error)
    assert wrong.code == "nick_registered"
    with ChatTestClient(server.address) as bob, ChatTestClient(server.address) as mallory:
        bob.login("bob", [])
        bob.send(Join(room="den", ref=1))
        assert bob.recv(Error, ref=1).code == "bad_key"
        bob.send(Join(room="den", key="sesame", ref=2))
        bob.recv(History, ref=2)
        bob.send(Say(room="den", text="hi", ref=3))
        assert bob.recv(Error, ref=3).code == "muted"
        mallory.login("mallory", [])
        mallory.send(Join(room="den", key="sesame", ref=4))
        assert mallory.recv(Error, ref=4).code == "banned"
        alice = ChatTestClient(server.address)
        with alice:
            alice.send(
                Hello(
                    proto=PROTOCOL_NAME,
                    version=PROTOCOL_VERSION,
                    nick="alice",
                    rooms=(),
                    nick_password="secret",
                )
            )
            alice.recv(Welcome)
            alice.send(Join(room="den", key="sesame", ref=5))
            state = alice.recv(RoomState, ref=5)
            assert {member.nick: member.op for member in state.members}["alice"]  # the stored operator
