"""Fixtures for the lab's tests: a real chat server on 127.0.0.1 port 0, and the fault proxy before it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from chat_lab.proxy import FaultProxy, ProxyThread
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from tests.server.conftest import TEST_SETTINGS

Front = Callable[..., AbstractContextManager[ProxyThread[FaultProxy]]]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ChatServer]:
    """A running chat server with its history in a temp folder, stopped after the test."""
    chat = ChatServer(ServerConfig(**{**TEST_SETTINGS, "data_dir": tmp_path / "server"}))
    chat.start()
    try:
        yield chat
    finally:
        chat.stop()


@pytest.fixture
def front(server: ChatServer) -> Front:
    """Start a fault proxy in front of the server; keyword arguments are `Faults` of both directions, or
    `up={...}` / `down={...}` for one."""

    @contextmanager
    def start(
        up: dict[str, Any] | None = None, down: dict[str, Any] | None = None, **both: Any
    ) -> Iterator[ProxyThread[FaultProxy]]:
        proxy = FaultProxy(server.address[:2], seed=1)
        for faults, settings in (
            (proxy.to_server, {**both, **(up or {})}),
            (proxy.to_client, {**both, **(down or {})}),
        ):
            for name, value in settings.items():
                setattr(faults, name, value)
        with ProxyThread(proxy) as running:
            yield running

    return start
