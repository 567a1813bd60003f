"""Test helpers: a real server that can be stopped and restarted, a TCP proxy that can cut, refuse or freeze
a client's connection (a fault injector, not a fake server), and an in-process run of the line mode."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chat_client.plain.linemode import run_plain

if TYPE_CHECKING:
    from chat_server.config import ServerConfig


def fast_server_config(data_dir: Path, **changes: Any) -> ServerConfig:
    """A server configuration with short timeouts and generous rate limits, for fast tests."""
    from chat_server.config import ServerConfig

    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": data_dir,
        "ping_interval": 1.0,
        "ping_timeout": 3.0,
        "rate_messages": 500.0,
        "rate_burst": 500,
        "rate_joins": 500.0,
        "rate_joins_burst": 500,
        "rate_nicks": 500.0,
        "rate_nicks_burst": 500,
        "max_connections_per_minute": 100_000,
        "linger": 0.2,
        "history_sync": "NORMAL",
    }
    settings.update(changes)
    return ServerConfig(**settings)


class LiveServer:
    """A real `ChatServer` in this process that a test can stop and start again on the same port."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._server: Any = None
        self.host = config.host
        self.port = config.port

    def start(self) -> None:
        """Start the server (on the port of the previous run, if there was one)."""
        from chat_server.server import ChatServer

        server = ChatServer(self.config)
        server.__enter__()
        self._server = server
        self.host, self.port = server.address[0], server.address[1]
        # A restart must come back on the same port, so the clients find it again.
        self.config = replace(self.config, port=self.port)

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (clients get `server_shutdown`); safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.__exit__(None, None, None)

    async def astop(self) -> None:
        """Stop from async code without blocking the event loop while the server joins its threads."""
        await asyncio.to_thread(self.stop)

    async def astart(self) -> None:
        """Start from async code."""
        await asyncio.to_thread(self.start)

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._server is not None


class Proxy:
    """Forwards TCP between clients and the server; a test can cut, refuse or freeze the traffic."""

    def __init__(self, target: Callable[[], tuple[str, int]]) -> None:
        self._target = target
        self._server: asyncio.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: New connections are closed at once while set.
        self.refuse = False
        #: Bytes from the server are thrown away while set (the client never sees the answers).
        self.drop_to_client = False
        #: Bytes from the server are passed on one at a time, with a pause after each (frames split anywhere).
        self.trickle_to_client = False
        #: Applied to each block of bytes from (or to) the server before it is passed on: a corrupting link.
        self.mangle_to_client: Callable[[bytes], bytes] | None = None
        self.mangle_to_server: Callable[[bytes], bytes] | None = None
        self._gates: list[asyncio.Event] = []  # one per connection: set while its bytes flow
        self.port = 0

    async def start(self) -> int:
        """Listen on 127.0.0.1 (port 0) and return the port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def freeze(self) -> None:
        """Stop moving bytes on the current connections, keeping them open (a silent network).

        New connections flow normally, so a client that gives up on a frozen one can connect again.
        """
        for gate in self._gates:
            gate.clear()

    def thaw(self) -> None:
        """Move bytes again on every connection."""
        for gate in self._gates:
            gate.set()

    def freeze_after(self, count: int) -> Callable[[bytes], bytes]:
        """A filter (for `mangle_to_client` / `mangle_to_server`) that freezes every connection once `count`
        bytes have passed: a transfer is then surely stopped part-way, however fast the machine."""
        passed = 0

        def watch(data: bytes) -> bytes:
            nonlocal passed
            passed += len(data)
            if passed >= count:
                self.freeze()
            return data

        return watch

    async def cut(self) -> None:
        """Close every current connection on both sides."""
        pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            client.close()
            upstream.close()

    async def close(self) -> None:
        """Stop listening and close everything."""
        await self.cut()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        host, port = self._target()
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        self._pairs.append((writer, up_writer))
        gate = asyncio.Event()
        gate.set()
        self._gates.append(gate)
        self._spawn(self._pump(reader, up_writer, gate, to_client=False))
        self._spawn(self._pump(up_reader, writer, gate, to_client=True))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        gate: asyncio.Event,
        *,
        to_client: bool,
    ) -> None:
        try:
            while data := await reader.read(65536):
                await gate.wait()
                if to_client and self.drop_to_client:
                    continue
                mangle = self.mangle_to_client if to_client else self.mangle_to_server
                if mangle is not None:
                    data = mangle(data)
                if to_client and self.trickle_to_client:
                    for byte in data:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.0005)  # the trickle is the fault under test, not a wait
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            writer.close()


@dataclass(frozen=True, slots=True)
class PlainRun:
    """How a run of the line mode ended: its exit status, and what it wrote to stdout and stderr."""

    status: int
    out: str
    err: str


async def run_plain_captured(server: LiveServer, nick: str, *, lines: str = "", **options: Any) -> PlainRun:
    """Run the line mode in this process as `nick` against `server`, reading `lines` as its input.

    `options` go to `run_plain` as they are (`options=`, `tls=`, `ask=`...).
    """
    out, err = io.StringIO(), io.StringIO()
    status = await run_plain(
        server.host, server.port, nick, source=io.StringIO(lines), out=out, err=err, **options
    )
    return PlainRun(status, out.getvalue(), err.getvalue())
