"""Fixtures for the cluster-mode tests: one real three-node NATS JetStream cluster per module, and chat
servers in cluster mode on it (each test gets a stream of its own, so tests share no history)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.natscluster import NatsCluster
from chat_server.cluster.config import ClusterConfig
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from tests.server.conftest import TEST_SETTINGS


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """Three NATS nodes on loopback with JetStream, started once per module and stopped by PID."""
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_config(nats_cluster: NatsCluster) -> ClusterConfig:
    """The cluster settings of this test: every node's URL, and a stream of its own."""
    stream, prefix = nats_cluster.stream_names()
    return ClusterConfig(urls=nats_cluster.urls, stream=stream, subject_prefix=prefix, bucket_prefix=prefix)


@pytest.fixture
def start_cluster_server(
    tmp_path: Path, cluster_config: ClusterConfig
) -> Iterator[Callable[..., ChatServer]]:
    """Start a chat server in cluster mode (each with its own data folder); all are stopped at the end."""
    servers: list[ChatServer] = []

    def start(name: str = "a", **overrides: Any) -> ChatServer:
        """Start one cluster-mode server; `overrides` replace test settings."""
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        settings = {**TEST_SETTINGS, "data_dir": folder, "cluster": cluster_config, **overrides}
        server = ChatServer(ServerConfig(**settings))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_single(tmp_path: Path) -> Iterator[Callable[..., ChatServer]]:
    """Start a single server (no cluster), stopped at the end."""
    servers: list[ChatServer] = []

    def start(**overrides: Any) -> ChatServer:
        """Start one single server."""
        server = ChatServer(ServerConfig(**{**TEST_SETTINGS, "data_dir": tmp_path / "single", **overrides}))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
