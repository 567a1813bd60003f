"""Fixtures for the server tests: a real server on 127.0.0.1 port 0 with its history in tmp_path,
clients, and a leak check after every test (threads and file descriptors back to their baseline)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chat_server.config import ServerConfig
from chat_server.server import ChatServer

from .client import ChatTestClient, wait_until

#: Settings every test server starts from: generous rate limits (tests about rates lower them), short
#: liveness timers, and synchronous=NORMAL (the kill -9 test uses FULL) so tests do not wait for fsync.
TEST_SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "rate_messages": 10_000.0,
    "rate_burst": 10_000,
    "rate_bytes": 1e9,
    "rate_bytes_burst": 10**9,
    "rate_joins": 10_000.0,
    "rate_joins_burst": 10_000,
    "rate_nicks": 10_000.0,
    "rate_nicks_burst": 10_000,
    "rate_searches": 10_000.0,
    "rate_searches_burst": 10_000,
    "max_connections_per_minute": 1_000_000,
    "ping_interval": 30.0,
    "ping_timeout": 60.0,
    "history_sync": "NORMAL",
    "linger": 0.5,
}


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """After each test, the threads and file descriptors of this process return to their baseline."""
    threads, fds = threading.active_count(), open_fds()
    yield
    wait_until(lambda: threading.active_count() <= threads, 5.0, f"threads back to {threads}")
    wait_until(lambda: open_fds() <= fds, 5.0, f"file descriptors back to {fds}")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., ServerConfig]:
    """Build a test config; keyword arguments override `TEST_SETTINGS`."""

    def make(**overrides: Any) -> ServerConfig:
        """Build a test config."""
        return ServerConfig(**{**TEST_SETTINGS, "data_dir": tmp_path, **overrides})

    return make


@pytest.fixture
def make_server(make_config: Callable[..., ServerConfig]) -> Iterator[Callable[..., ChatServer]]:
    """Start servers (stopped at the end of the test); keyword arguments override the test config."""
    servers: list[ChatServer] = []

    def make(**overrides: Any) -> ChatServer:
        """Start a server with these overrides."""
        server = ChatServer(make_config(**overrides))
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    """A running server with the test settings."""
    return make_server()


@pytest.fixture
def connect(server: ChatServer) -> Iterator[Callable[..., ChatTestClient]]:
    """Open clients to `server` (closed at the end of the test)."""
    clients: list[ChatTestClient] = []

    def open_client(**kwargs: Any) -> ChatTestClient:
        """Open one client connection."""
        client = ChatTestClient(server.address, **kwargs)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def login(connect: Callable[..., ChatTestClient]) -> Callable[..., ChatTestClient]:
    """Open a client and log it in: `login("alice")`, `login("bob", rooms=["a", "b"])`."""

    def log_in(nick: str, rooms: list[str] | None = None) -> ChatTestClient:
        """Open a client and log it in."""
        client = connect()
        client.login(nick, rooms)
        return client

    return log_in
