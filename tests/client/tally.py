"""What the server said and stored, seen from outside: its `error` frames counted on the wire, its history.

`ErrorTally` watches the server's side of the lab's fault proxy (`chat_lab.proxy.FaultProxy`, its
`to_client.observe` hook): put in front of a real server, it proves what a client never saw (zero
`rate_limited` refusals, zero disconnects), and the proxy counts the connections. It decodes the server's
stream with the shared framing and decoder, one reassembler per connection; the bytes pass unchanged.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from chat_lab.proxy import FaultProxy
from shared import DEFAULT_LIMITS, SENT_BY_SERVER, Error, FrameReassembler, decode_body

#: Largest frame the tally reassembles (the server's own limit is far below).
MAX_FRAME = 1 << 24


class ErrorTally:
    """The `code` of every `error` frame the server sent through a proxy, counted (`errors`)."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self._frames: dict[int, FrameReassembler] = {}

    @classmethod
    def watching(cls, proxy: FaultProxy) -> ErrorTally:
        """A tally of what the server says through `proxy`, from its next connection on."""
        tally = cls()
        proxy.to_client.observe = tally.feed
        return tally

    def feed(self, connection: int, data: bytes) -> None:
        """Take the next bytes the server sent on `connection`."""
        frames = self._frames.setdefault(connection, FrameReassembler(MAX_FRAME))
        frames.feed(data)
        for body in frames.frames():
            if b"error" in body:  # cheap filter: only error frames need decoding
                message = decode_body(body, SENT_BY_SERVER, DEFAULT_LIMITS)
                if isinstance(message, Error):
                    self.errors[message.code] += 1


def stored_texts(history: Path, room: str, nick: str) -> list[str]:
    """The texts `nick` said in `room`, as the server stored them, in id order (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{history}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT text FROM messages WHERE room_key = ? AND sender_key = ? AND event IS NULL ORDER BY id",
            (room, nick),
        ).fetchall()
    return [text for (text,) in rows]


def rate_limited(server: Any) -> dict[str, int]:
    """What the running in-process server (`LiveServer`) counted as delayed (fakelag) or refused by a rate
    limit, by bucket: {} when a client kept within every limit."""
    counts: dict[str, int] = server._server.tally.events("rate_limited")
    return {bucket: count for bucket, count in counts.items() if count}
