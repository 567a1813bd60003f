"""File transfer throughput, and chat latency between two other clients while a large file moves.

    python -m benchmarks.files [--size-mb 50] [--chat-interval 0.02] [--json]

A fresh `chat-server` process (its own data folder; rate limits lifted, everything else default, history
`synchronous=FULL`), four clients in this process, each on its own socket:

* carol says a line every `--chat-interval` seconds; dave receives it. Latency = dave's receive time minus
  carol's send time (one clock, one process), for every line.
* alice uploads a `--size-mb` file with the protocol's window (`welcome.files.window` chunks unconfirmed);
  then bob downloads it with the same window. Both run in a child process, so the chat measurement shares
  no interpreter lock with them.

Three phases: idle (chat only), during the upload, during the download. Reported: upload and download
throughput (MB/s, 1 MB = 10^6 bytes) and chat latency p50 / p99 / max per phase, with the machine's load
average. Numbers go to docs/performance.md; nothing here is a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    FileChunk,
    FileData,
    FileDone,
    FileOffered,
    FileProgress,
    GetFile,
    Hello,
    Message,
    OfferFile,
    ProtocolConnection,
    Role,
    Said,
    Say,
    Welcome,
)
from shared.connection import EndOfStream
from shared.errors import RemoteProtocolError

ROOT = Path(__file__).resolve().parents[1]
SERVER_TOML = """\
rate_messages = 1000000.0
rate_burst = 1000000
rate_bytes = 1000000000.0
rate_bytes_burst = 1000000000
"""
#: Seconds any one wait may last before the benchmark gives up.
WAIT = 120.0
#: Chat lines measured in the idle phase.
IDLE_LINES = 200

M = TypeVar("M", bound=Message)


class Client:
    """A blocking protocol client: one socket, one decoder, messages kept until asked for."""

    def __init__(self, address: tuple[str, int], nick: str) -> None:
        self.sock = socket.create_connection(address, timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.protocol = ProtocolConnection(Role.CLIENT)
        self.pending: list[Message] = []
        self.send(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick))
        self.welcome = self.wait(Welcome)

    def send(self, message: Message) -> None:
        """Encode and send one message."""
        self.sock.sendall(self.protocol.send(message))

    def wait(self, kind: type[M], **fields: Any) -> M:
        """The first message of `kind` whose fields match, reading as needed (raises after `WAIT`)."""
        deadline = time.monotonic() + WAIT
        while True:
            for index, message in enumerate(self.pending):
                if isinstance(message, kind) and all(getattr(message, k) == v for k, v in fields.items()):
                    del self.pending[index]
                    return message
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind.__name__} {fields} within {WAIT} s")
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.protocol.receive_data(data)
            for event in self.protocol.events():
                if isinstance(event, RemoteProtocolError | EndOfStream):
                    raise ConnectionError(f"the stream ended: {event}")
                self.pending.append(event)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


class Chatter(threading.Thread):
    """carol -> dave, one line every `interval` seconds; records each line's latency in the current phase."""

    def __init__(self, carol: Client, dave: Client, interval: float) -> None:
        super().__init__(name="chatter", daemon=True)
        self.carol, self.dave, self.interval = carol, dave, interval
        self.phase = "idle"
        self.latencies: dict[str, list[float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        """Say, wait for the delivery, record, pace; until stopped."""
        number = 0
        while not self.stop.is_set():
            number += 1
            text = f"line {number}"
            phase = self.phase
            start = time.perf_counter()
            self.carol.send(Say(room="lobby", text=text))
            self.dave.wait(Said, text=text)
            self.latencies.setdefault(phase, []).append(time.perf_counter() - start)
            self.stop.wait(self.interval)  # pacing between lines, not synchronisation


def upload(alice: Client, data: bytes) -> float:
    """Upload `data` with the announced window; return the seconds it took (offer to file_done)."""
    policy = alice.welcome.files
    assert policy is not None, "file sharing is off on this server"
    chunk, window = policy.chunk, policy.window
    start = time.perf_counter()
    digest = hashlib.sha256(data).hexdigest()
    alice.send(OfferFile(name="bench.bin", size=len(data), sha256=digest, room="lobby", ref=1))
    upload_id = alice.wait(FileProgress, ref=1).upload
    sent = confirmed = 0
    view = memoryview(data)
    while confirmed < len(data):
        while sent < len(data) and sent - confirmed < window * chunk:
            piece = bytes(view[sent : sent + chunk])
            alice.send(FileChunk(upload=upload_id, offset=sent, data=piece, ref=1))
            sent += len(piece)
        confirmed = alice.wait(FileProgress, upload=upload_id, ref=None).offset
    alice.wait(FileDone, upload=upload_id)
    return time.perf_counter() - start


def download(bob: Client, message_id: int, size: int) -> tuple[float, str]:
    """Download the file with the announced window; return the seconds it took and the SHA-256."""
    policy = bob.welcome.files
    assert policy is not None
    chunk, window = policy.chunk, policy.window
    start = time.perf_counter()
    hasher = hashlib.sha256()
    asked = held = 0
    while held < size:
        while asked < size and asked - held < window * chunk:
            bob.send(GetFile(id=message_id, offset=asked, ref=asked // chunk + 1))
            asked += chunk
        data = bob.wait(FileData, offset=held)
        hasher.update(data.data)
        held += len(data.data)
    return time.perf_counter() - start, hasher.hexdigest()


def summary(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds, and the count."""
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "lines": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def start_server(folder: Path) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    """A fresh chat-server process in `folder`; returns it and its address."""
    config = folder / "server.toml"
    config.write_text(SERVER_TOML)
    command = [sys.executable, "-m", "chat_server", "--port", "0", "--data-dir", str(folder / "data")]
    command += ["--config", str(config), "--log-level", "WARNING"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    host, port = line.rsplit(" ", 1)[1].strip().rsplit(":", 1)
    return process, (host, int(port))


def transfer(address: tuple[str, int], size: int, report: Connection) -> None:
    """The child process: alice uploads, bob downloads; each step is reported through `report`."""
    data = os.urandom(1 << 20) * (size // (1 << 20)) + os.urandom(size % (1 << 20))
    alice, bob = Client(address, "alice"), Client(address, "bob")
    report.send(("ready", 0.0))
    report.recv()  # go
    up_seconds = upload(alice, data)
    offered = bob.wait(FileOffered)
    report.send(("uploaded", up_seconds))
    down_seconds, digest = download(bob, offered.id, size)
    report.send(("downloaded", down_seconds))
    report.send(("intact", float(digest == hashlib.sha256(data).hexdigest())))
    alice.close()
    bob.close()


def measure(size: int, interval: float) -> dict[str, Any]:
    """Run the three phases against a fresh server; return the results.

    The transfer runs in a child process, so the chat latency measured here shares no interpreter lock
    with it: what is measured is the server's doing (and the machine's).
    """
    with tempfile.TemporaryDirectory(prefix="mpchat-files-bench-") as temp:
        process, address = start_server(Path(temp))
        try:
            ours, theirs = multiprocessing.Pipe()
            child = multiprocessing.Process(target=transfer, args=(address, size, theirs), daemon=True)
            child.start()
            carol, dave = Client(address, "carol"), Client(address, "dave")
            chatter = Chatter(carol, dave, interval)
            chatter.start()
            if not ours.poll(WAIT):
                raise TimeoutError("the transfer process did not start")
            ours.recv()
            while len(chatter.latencies.get("idle", ())) < IDLE_LINES:
                chatter.stop.wait(0.05)  # the idle phase lasts until enough lines are measured
            chatter.phase = "upload"
            ours.send("go")
            seconds: dict[str, float] = {}
            for phase in ("download", "after", None):
                if not ours.poll(WAIT):
                    raise TimeoutError("the transfer process stopped reporting")
                step, value = ours.recv()
                seconds[step] = value
                if phase is not None:
                    chatter.phase = phase
            chatter.stop.set()
            chatter.join(WAIT)
            child.join(WAIT)
            assert seconds["intact"] == 1.0, "the downloaded file differs"
            carol.close()
            dave.close()
        finally:
            process.terminate()
            process.wait(30)
    return {
        "size_bytes": size,
        "upload_mb_per_s": round(size / seconds["uploaded"] / 1e6, 1),
        "download_mb_per_s": round(size / seconds["downloaded"] / 1e6, 1),
        "chat": {phase: summary(chatter.latencies[phase]) for phase in ("idle", "upload", "download")},
        "loadavg": os.getloadavg(),
        "nproc": os.cpu_count(),
    }


def main() -> None:
    """Parse the options, run, print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=50.0, help="file size in MiB (default 50)")
    parser.add_argument("--chat-interval", type=float, default=0.02, help="seconds between chat lines")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    arguments = parser.parse_args()
    result = measure(int(arguments.size_mb * 1024 * 1024), arguments.chat_interval)
    if arguments.json:
        print(json.dumps(result, indent=2))
        return
    load = ", ".join(f"{value:.2f}" for value in result["loadavg"])
    print(f"file of {result['size_bytes']:,} bytes; load average {load}; {result['nproc']} CPUs")
    print(f"upload   {result['upload_mb_per_s']:8.1f} MB/s")
    print(f"download {result['download_mb_per_s']:8.1f} MB/s")
    print(f"{'chat latency':16} {'lines':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for phase, numbers in result["chat"].items():
        print(
            f"{phase:16} {numbers['lines']:6} {numbers['p50_ms']:8.2f} {numbers['p99_ms']:8.2f}"
            f" {numbers['max_ms']:8.2f}"
        )


if __name__ == "__main__":
    main()
