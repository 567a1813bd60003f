"""Requests the decoder refuses (unknown type, invalid field, invalid text, a second hello) spend request
tokens like any other request (docs/server.md, docs/security.md): past the burst each waits for its token,
so a flood of them holds the reader behind its client and ends with `excess_flood` once that lasts
`max_fakelag_seconds`, not with thousands of answered error frames."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import msgpack
import pytest

from chat_server.server import ChatServer
from shared import Error, frame
from tests.server.client import ChatTestClient

MakeServer = Callable[..., ChatServer]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "no_such_type"},
        {"type": "say", "room": "lobby"},
        {"type": "say", "room": "lobby", "text": "bell\x07"},
        {"type": "hello", "proto": "mpchat", "version": 1, "nick": "again"},
    ],
    ids=["unknown_type", "invalid_field", "invalid_text", "already_logged_in"],
)
def test_a_flood_of_invalid_requests_meets_excess_flood(
    make_server: MakeServer, body: dict[str, object]
) -> None:
    """2,000 invalid requests with rate_burst 1, one token per 100 s and max_fakelag_seconds 1: the first is
    answered, the second would keep the reader behind for longer than allowed: excess_flood (fatal) and the
    connection closed."""
    server = make_server(rate_burst=1, rate_messages=0.01, max_fakelag_seconds=1.0)
    with ChatTestClient(server.address) as client:
        client.login("flooder")
        with contextlib.suppress(OSError):  # closed before it read everything, as it should be
            client.send_raw(frame(msgpack.packb(body)) * 2000)
        errors = [m for m in client.wait_closed(10) if isinstance(m, Error)]
    assert (errors[-1].code, errors[-1].fatal) == ("excess_flood", True)
    assert len(errors) == 1 + 1  # the burst's answer, then excess_flood
