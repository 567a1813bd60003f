"""Fixtures for the client tests: a real server on 127.0.0.1 port 0 with its history in a temp folder, and
config/data/downloads folders redirected to temp folders so no test ever touches the user's real files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chat_lab.proxy import FaultProxy

from .helpers import LiveServer, fast_server_config


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the client's config and data folders at a temp folder (inherited by subprocesses too)."""
    monkeypatch.setenv("MPCHAT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MPCHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MPCHAT_DOWNLOADS_DIR", str(tmp_path / "downloads"))
    return tmp_path / "config"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A running chat server with fast timeouts, stopped after the test."""
    with LiveServer(fast_server_config(tmp_path / "server")) as live:
        yield live


@pytest.fixture
async def proxy(server: LiveServer) -> AsyncIterator[FaultProxy]:
    """A fault-injecting TCP proxy in front of the server."""
    front = FaultProxy(lambda: (server.host, server.port))
    await front.start()
    try:
        yield front
    finally:
        await front.close()
