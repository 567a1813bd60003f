"""Lesson 5: timeouts, errors and resource release. Three clients reach mpchat through the fault proxy; one
vanishes (the proxy cuts its connection), one freezes (the proxy holds its bytes: no FIN, no RST, nothing),
one sends garbage (the proxy corrupts a byte). The lesson shows what the server logs for each (its log,
and the `--trace` of every frame in and out), how long it took to notice, and that the connection's
reader thread ends and its socket closes every time.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from chat_lab.proxy import FaultProxy, ProxyThread
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import Ping

from .wire import LessonClient

#: The server's liveness settings in the lesson: a ping after 0.5 s without input, dead after 1 s without.
PING_INTERVAL = 0.5
PING_TIMEOUT = 1.0
#: Seconds the lesson waits for the server to notice a fault.
NOTICE_TIMEOUT = 10.0


@dataclass
class FaultRun:
    """One fault: how the server saw it."""

    fault: str
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)
    reader_ended: bool = False


class Lines(logging.Handler):
    """Keeps the server's log lines (and trace lines) in memory, for the lesson to show."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name.removeprefix('chat_server.')}: {record.getMessage()}")


def readers() -> set[str]:
    """The names of the server's reader threads alive now (one per connection: conn-N-reader)."""
    return {t.name for t in threading.enumerate() if t.name.endswith("-reader")}


def wait(condition: Callable[[], bool], timeout: float = NOTICE_TIMEOUT) -> bool:
    """Poll `condition` until it holds or `timeout` passes (the lesson's one way of waiting)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # polling interval of a bounded wait
    return True


def one_fault(server: ChatServer, lines: Lines, fault: str) -> FaultRun:
    """Log in through a fresh proxy, apply `fault`, and watch the server until the connection is gone."""
    result = FaultRun(fault)
    with ProxyThread(FaultProxy(server.address[:2])) as proxy:
        before = readers()
        started = time.monotonic()  # the client's last bytes (its hello) go out after this
        client = LessonClient(proxy.address, fault.split()[0])
        wait(lambda: len(readers()) > len(before))
        (mine,) = readers() - before
        conn = mine.split("-")[1]
        start = len(lines.lines)
        if fault.startswith("vanish"):
            proxy.run(proxy.proxy.cut())
        elif fault.startswith("freeze"):
            proxy.call(lambda p: p.freeze())
        else:
            proxy.call(lambda p: setattr(p.to_server, "corrupt", p.stats_up.bytes_in + 4))
            client.send(Ping(token=1))
        result.reader_ended = wait(lambda: mine not in readers())
        result.seconds = time.monotonic() - started  # from the login: the server counts silence from there
        result.log = [line for line in lines.lines[start:] if f"conn={conn} " in line]
        client.close()
    return result


def run(out: TextIO) -> list[FaultRun]:
    """Run the lesson, narrating to `out`; return what the server did with each fault."""
    lines = Lines()
    logger = logging.getLogger("chat_server")
    previous = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.DEBUG)  # the server's log and its --trace (chat_server.trace)
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = ServerConfig(
                host="127.0.0.1",
                port=0,
                data_dir=Path(folder),
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                history_sync="NORMAL",
            )
            with ChatServer(config) as server:
                for fault in (
                    "vanish (the proxy cuts the connection)",
                    "freeze (the proxy holds every byte)",
                    "garbage (the proxy corrupts a byte of a ping)",
                ):
                    result = one_fault(server, lines, fault)
                    results.append(result)
                    print(
                        f"\n-- {fault}: connection ended {result.seconds:.2f} s after the login; "
                        f"reader thread ended: {'yes' if result.reader_ended else 'NO'}",
                        file=out,
                    )
                    for line in result.log[-6:]:
                        print(f"   {line[:150]}", file=out)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(previous)
    print(
        "\nA vanished peer is noticed at once (recv returns b'' or fails); a frozen one only by the "
        f"server's pings: after {PING_INTERVAL:g} s without input a ping, after {PING_TIMEOUT:g} s "
        "without input the connection is closed (ping_interval, ping_timeout in docs/server.md); garbage "
        "is a protocol error, answered with an error frame and the connection closed. Each time the reader "
        "thread ends and releases everything the connection held (chat_server/reader/connection.py, close).",
        file=out,
    )
    return results
