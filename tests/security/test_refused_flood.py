"""Requests the decoder refuses (unknown type, invalid field, invalid text, a second hello) count against the
request rate limit and `flood_refusals` like any other request (docs/server.md, docs/security.md): a flood of
them ends with `excess_flood`, not with thousands of answered error frames."""

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
    """2,000 invalid requests with rate_burst 1 and flood_refusals 5: at most a handful of answers, then
    excess_flood (fatal) and the connection closed."""
    server = make_server(rate_burst=1, rate_messages=0.01, flood_refusals=5)
    with ChatTestClient(server.address) as client:
        client.login("flooder")
        with contextlib.suppress(OSError):  # closed before it read everything, as it should be
            client.send_raw(frame(msgpack.packb(body)) * 2000)
        errors = [m for m in client.wait_closed(10) if isinstance(m, Error)]
    assert (errors[-1].code, errors[-1].fatal) == ("excess_flood", True)
    assert len(errors) <= 1 + 1 + 5  # the burst, the refusals, then excess_flood
