"""A TCP proxy that reads what the server says: how many connections, and every `error` frame by code.

Put in front of a real server, it proves what a client never saw: zero `rate_limited` refusals, zero
disconnects. It decodes the server's stream with the shared framing and decoder, one reassembler per
connection; bytes are passed on unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from shared import DEFAULT_LIMITS, SENT_BY_SERVER, Error, FrameReassembler, decode_body


class Meter:
    """Forwards 127.0.0.1:`port` to the server and counts connections and the server's error codes."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        #: Connections accepted (a client that never reconnects makes one).
        self.connections = 0
        #: The `code` of every `error` frame the server sent, counted.
        self.errors: Counter[str] = Counter()
        #: Seconds every block of bytes from the server is held before it is passed on (a slow link: the
        #: fault under test, not a wait), read when the block arrives.
        self.latency_to_client = 0.0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        delayed: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        for coro in (
            self._pump(reader, up_writer, None, None),
            self._pump(up_reader, writer, FrameReassembler(1 << 24), delayed),
            self._deliver(delayed, writer),
        ):
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        frames: FrameReassembler | None,
        delayed: asyncio.Queue[tuple[float, bytes]] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(65536):
                if frames is not None:
                    frames.feed(data)
                    for body in frames.frames():
                        if b"error" in body:  # cheap filter: only error frames need decoding
                            message = decode_body(body, SENT_BY_SERVER, DEFAULT_LIMITS)
                            if isinstance(message, Error):
                                self.errors[message.code] += 1
                if delayed is not None:
                    delayed.put_nowait((loop.time() + self.latency_to_client, data))
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            if delayed is not None:
                delayed.put_nowait((0.0, b""))
            else:
                writer.close()

    async def _deliver(
        self, delayed: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        """Pass the server's bytes on in order, each block once its latency has passed."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await delayed.get()
                if not data:
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))  # the emulated link's latency
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            writer.close()


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
