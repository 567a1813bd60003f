"""Test helpers: a real server that can be stopped and restarted, and an in-process run of the line mode.

The fault proxy that cuts, refuses or freezes a client's connection is the lab's (`chat_lab.proxy.FaultProxy`,
`chat-lab proxy`): one implementation for the tests and for people."""

from __future__ import annotations

import asyncio
import io
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
        "rate_searches": 500.0,
        "rate_searches_burst": 500,
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
