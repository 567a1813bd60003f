"""The routing table (chat_server/routes.py): every request a client may send has exactly one row, and every
history row is bound to the part of the history thread that defines its handler."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import shared.messages  # noqa: F401  (importing the catalogue registers every frame type)
from chat_server.history.chat import Chat
from chat_server.routes import ROUTES, Cost, Route, Thread, bind_history
from chat_server.server import ChatServer
from shared.messages import Ping, Pong, Say, Tell
from shared.schema import SENT_BY_CLIENT


def test_every_client_request_has_a_row() -> None:
    """A message type a client may send and the table does not route would be answered by no one."""
    missing = sorted(name for name, kind in SENT_BY_CLIENT.items() if kind not in ROUTES)
    assert not missing, f"client requests without a row in chat_server/routes.py: {missing}"


def test_only_the_connections_own_frames_are_free() -> None:
    """`hello`, `ping`, `pong` and `quit` cost nothing; every other request draws from a rate bucket, and the
    text buckets are those of the two chat messages."""
    free = {
        kind.TYPE
        for kind, route in ROUTES.items()
        if route.cost is Cost.FREE and kind in SENT_BY_CLIENT.values()
    }
    assert free == {"hello", "ping", "pong", "quit"}
    assert {kind for kind, route in ROUTES.items() if route.cost is Cost.TEXT} == {Say, Tell}
    assert ROUTES[Ping].thread is ROUTES[Pong].thread is Thread.READER


def test_every_history_row_is_bound_when_the_server_starts(make_server: Callable[..., ChatServer]) -> None:
    """The running history thread has a bound handler for every history row, and nothing else."""
    server = make_server()
    assert server._services is not None
    handlers = server._services.history.handlers
    assert set(handlers) == {kind for kind, route in ROUTES.items() if route.thread is Thread.HISTORY}
    handler, needs_login = handlers[Say]
    assert getattr(handler, "__self__", None) is server._services.history.chat.messages
    assert needs_login


def test_a_handler_no_part_defines_is_refused_at_start() -> None:
    """A history row whose handler belongs to no part fails when the table is bound, not at its first use."""

    def stray(part: object, client: object, request: object) -> None:
        """Defined by no part."""

    broken = {Say: Route(Thread.HISTORY, Cost.TEXT, stray)}
    with pytest.raises(LookupError):
        bind_history([Chat.__new__(Chat)], broken)
