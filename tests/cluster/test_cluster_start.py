"""Starting in cluster mode: `--cluster` and the `[cluster]` table, a NATS that is down (a clear refusal),
a local history that is not the stream's (a clear refusal), and the `nats` thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.natscluster import NatsCluster, free_ports
from chat_server.cluster.config import (
    DEFAULT_DUPLICATE_WINDOW,
    DEFAULT_REPLICAS,
    DEFAULT_STREAM,
    ClusterConfig,
)
from chat_server.cluster.link import ClusterUnavailable
from chat_server.config import ServerConfig, load_toml
from chat_server.server import ChatServer
from shared.messages import Ack, Said, Say
from tests.server.client import ChatTestClient
from tests.server.conftest import TEST_SETTINGS, no_leaks
from tests.server.process import ServerProcess

#: After each test, threads and file descriptors are back to their baseline (tests/server/conftest.py).
__all__ = ["no_leaks"]


def test_cluster_table_and_defaults(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        '[cluster]\nurls = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]\nreplicas = 1\n'
        'stream = "CHAT"\nduplicate_window = 30\n'
    )
    cluster = ServerConfig(**load_toml(config)).cluster
    assert cluster.enabled
    assert cluster.urls == ("nats://127.0.0.1:4222", "nats://127.0.0.1:4223")
    assert (cluster.replicas, cluster.stream, cluster.duplicate_window) == (1, "CHAT", 30)
    default = ClusterConfig()
    assert not default.enabled
    assert (default.stream, default.replicas, default.duplicate_window) == (
        DEFAULT_STREAM,
        DEFAULT_REPLICAS,
        DEFAULT_DUPLICATE_WINDOW,
    )
    for bad in ('urls = ["http://x:1"]', "replicas = 0", 'stream = "a.b"', "wat = 1"):
        config.write_text(f"[cluster]\n{bad}\n")
        with pytest.raises(ValueError, match="cluster"):
            ServerConfig(**load_toml(config))


def test_nats_down_at_start_is_refused_clearly(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    cluster = ClusterConfig(urls=(f"nats://127.0.0.1:{port}",), connect_timeout=1.0)
    server = ChatServer(ServerConfig(**{**TEST_SETTINGS, "data_dir": tmp_path, "cluster": cluster}))
    before = threading.active_count()
    with pytest.raises(ClusterUnavailable, match=f"127.0.0.1:{port}"):
        server.start()
    assert threading.active_count() <= before  # the nats thread ended too


def test_command_line_refuses_when_nats_is_down(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    config = tmp_path / "server.toml"
    config.write_text("[cluster]\nconnect_timeout = 1.0\n")
    arguments = ("--config", str(config), "--cluster", f"nats://127.0.0.1:{port}", "--port", "0")
    with ServerProcess(*arguments, "--data-dir", str(tmp_path)) as server:
        assert server.process.wait(30) == 1
        _, err = server.close()
        assert "chat-server: cannot start" in err
        assert f"nats://127.0.0.1:{port}" in err


def test_command_line_cluster_server(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    stream, prefix = nats_cluster.stream_names()
    config = tmp_path / "server.toml"
    config.write_text(f'[cluster]\nstream = "{stream}"\nsubject_prefix = "{prefix}"\n')
    common = ("--config", str(config), "--cluster", nats_cluster.url_list, "--port", "0")
    with (
        ServerProcess(*common, "--data-dir", str(tmp_path / "1")) as one,
        ServerProcess(*common, "--data-dir", str(tmp_path / "2")) as two,
    ):
        assert one.address is not None, one.first_line
        assert two.address is not None, two.first_line
        with ChatTestClient(one.address) as alice, ChatTestClient(two.address) as bob:
            alice.login("alice", ["lobby"])
            bob.login("bob", ["lobby"])
            alice.send(Say(room="lobby", text="over nats", ref=1))
            ack = alice.recv(Ack, ref=1)
            said = bob.recv(Said)
            assert (said.id, said.text) == (ack.id, "over nats")
        assert one.stop() == 0
        assert two.stop() == 0


def test_a_single_server_history_is_not_followed(
    tmp_path: Path, cluster_config: ClusterConfig, start_cluster_server: Callable[..., ChatServer]
) -> None:
    folder = tmp_path / "old"
    settings = {**TEST_SETTINGS, "data_dir": folder}
    with ChatServer(ServerConfig(**settings)) as single, ChatTestClient(single.address) as alice:
        alice.login("alice", ["lobby"])
        alice.send(Say(room="lobby", text="before the cluster", ref=1))
        alice.recv(Ack, ref=1)
    server = ChatServer(ServerConfig(**{**settings, "cluster": cluster_config}))
    with pytest.raises(ClusterUnavailable, match="new data folder"):
        server.start()


def test_nats_thread_runs_only_in_cluster_mode(start_cluster_server: Callable[..., ChatServer]) -> None:
    start_cluster_server("one")
    assert "nats" in {thread.name for thread in threading.enumerate()}
