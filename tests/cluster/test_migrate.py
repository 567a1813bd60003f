"""`chat-server --cluster URLS --migrate FILE`: a single server's history, published into an empty stream,
is what the cluster's servers then serve (same senders, texts, timestamps; ids renumbered, replies kept)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.natscluster import NatsCluster
from chat_server.cluster.config import ClusterConfig
from chat_server.cluster.migrate import MigrationError, migrate
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import PROTOCOL_NAME
from shared.messages import (
    PROTOCOL_VERSION,
    Ack,
    Ban,
    Delete,
    Error,
    FetchHistory,
    Hello,
    History,
    Join,
    Mute,
    Register,
    Registration,
    RoomState,
    Said,
    Say,
    SetMode,
    Tell,
    Welcome,
)
from tests.cluster.test_nicks import try_login
from tests.server.client import ChatTestClient
from tests.server.conftest import TEST_SETTINGS, no_leaks
from tests.server.process import ServerProcess

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


def single_server_history(folder: Path) -> Path:
    """A history made by the single-server mode: room messages, a reply, a deleted message, a DM."""
    server = ChatServer(ServerConfig(**{**TEST_SETTINGS, "data_dir": folder}))
    with server, ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice", ["lobby", "dev"])
        bob.login("bob", ["lobby"])
        alice.send(Say(room="lobby", text="first", client_msg_id="c1", ref=1))
        first = alice.recv(Ack, ref=1)
        alice.send(Say(room="dev", text="in dev", ref=2))
        alice.recv(Ack, ref=2)
        alice.send(Say(room="lobby", text="gone soon", ref=3))
        gone = alice.recv(Ack, ref=3)
        alice.send(Delete(id=gone.id, ref=4))
        alice.recv(Ack, ref=4)
        bob.send(Say(room="lobby", text="a reply", reply_to=first.id, ref=5))
        bob.recv(Ack, ref=5)
        bob.send(Tell(to="alice", text="psst", ref=6))
        bob.recv(Ack, ref=6)
    return server.config.history_path


def page(client: ChatTestClient, ref: int, **where: object) -> list[Said]:
    client.send(FetchHistory(limit=100, ref=ref, **where))  # type: ignore[arg-type]
    return [m for m in client.recv(History, ref=ref).messages if isinstance(m, Said)]


def test_migrate_then_serve(
    tmp_path: Path, cluster_config: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    db = single_server_history(tmp_path / "single")
    report = migrate(db, cluster_config)
    assert (report.room_messages, report.direct_messages, report.skipped_deleted) == (3, 1, 1)
    assert report.skipped_other >= 1  # the deletion's event
    server = start_cluster_server("cluster")  # a new data folder: it applies the stream
    with ChatTestClient(server.address) as alice:
        alice.login("alice", ["lobby", "dev"])
        lobby = page(alice, 10, room="lobby")
        assert [(m.nick, m.text) for m in lobby] == [("alice", "first"), ("bob", "a reply")]
        assert lobby[1].reply_to == lobby[0].id
        assert [m.text for m in page(alice, 11, room="dev")] == ["in dev"]
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as old:
            old_ts = dict(old.execute("SELECT text, ts FROM messages WHERE event IS NULL"))
        assert all(m.ts == old_ts[m.text] for m in lobby)
        # A resend of an old message with its client_msg_id is recognised as a duplicate.
        alice.send(Say(room="lobby", text="first", client_msg_id="c1", ref=12))
        again = alice.recv(Ack, ref=12)
        assert (again.duplicate, again.id) == (True, lobby[0].id)
    with pytest.raises(MigrationError, match="already holds"):
        migrate(db, cluster_config)  # only into an empty stream


def test_migrate_command(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    db = single_server_history(tmp_path / "single")
    stream, prefix = nats_cluster.stream_names()
    config = tmp_path / "server.toml"
    config.write_text(f'[cluster]\nstream = "{stream}"\nsubject_prefix = "{prefix}"\n')
    arguments = ("--config", str(config), "--cluster", nats_cluster.url_list, "--migrate", str(db))
    with ServerProcess(*arguments) as command:
        assert command.process.wait(60) == 0
        out, err = command.close()
    assert f"migrated 4 messages into the stream {stream}" in command.first_line + out, err
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
