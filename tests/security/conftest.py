"""Fixtures for the security tests: the server fixtures of tests/server (a real server on 127.0.0.1 port 0,
history in tmp_path, and the thread and file-descriptor leak check after every test), plus the canary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chat_server.server import ChatServer
from tests.server.conftest import make_config, make_server, no_leaks

from .canary import Canary

__all__ = ["make_config", "make_server", "no_leaks", "start_canary"]


@pytest.fixture
def start_canary(
    make_server: Callable[..., ChatServer], record_property: Callable[[str, object], None]
) -> Iterator[Callable[..., Canary]]:
    """Start a `Canary` next to a server: `start_canary(server, interval=0.05)`; stopped after the test.

    Depends on `make_server`, so the canaries stop before the servers do.
    """
    canaries: list[Canary] = []

    def start(server: ChatServer, **options: Any) -> Canary:
        """Log the two canary clients in and start them chatting."""
        canary = Canary(server.address, **options)
        canaries.append(canary)
        return canary.start()

    yield start
    for canary in canaries:
        record_property(f"canary_latency_{canary.room}", canary.latency_summary())
        canary.stop()
