"""Lesson 4: from a two-person chat to many. The tutorial server (`chat_lab.lessons.tutorial_server`: a thread
per client, one list, a `sendall` loop under one lock) against mpchat, with one client that stops reading.

Alice and bob chat in one room; a third member, "stalled", logged in and then never reads again (a laptop
lid closed, a frozen program). Alice sends batches of 4 KiB messages; after each batch the lesson waits for
bob to receive them. On the tutorial server the stalled member's socket buffers fill, `sendall` blocks
inside the broadcast loop, holding the lock, and bob stops receiving: the whole server stalls behind one
reader. On mpchat each member has its own bounded send queue, written by the sender thread without a lock;
the stalled member is disconnected when its queue passes the hard limit, and bob never notices.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import Said, Say

from .tutorial_server import TutorialServer
from .wire import LessonClient

#: Messages per batch, batches at most, characters per message: up to 6 MiB in all, past the kernel's
#: socket buffers for the stalled member (its receive window is 4 KiB; Linux lets the sending side's buffer
#: grow to 4 MiB, tcp_wmem; the tutorial server was seen stalling after about 2.8 MiB).
BATCH = 64
BATCHES = 24
TEXT = 4000
#: Seconds bob may take to receive one batch before the lesson calls the server stalled.
BATCH_TIMEOUT = 4.0


@dataclass
class RoomRun:
    """One server's result: messages sent, how many bob received, and whether the server stalled."""

    server: str
    sent: int = 0
    received: int = 0
    stalled: bool = False
    seconds: float = 0.0


@contextmanager
def serving(name: str) -> Iterator[tuple[str, int]]:
    """Run the tutorial server or mpchat (history in a temporary folder) on 127.0.0.1 port 0."""
    if name == "tutorial":
        with TutorialServer() as tutorial:
            yield tutorial.address
        return
    with tempfile.TemporaryDirectory() as folder:
        config = ServerConfig(
            host="127.0.0.1",
            port=0,
            data_dir=Path(folder),
            rate_messages=1e6,
            rate_burst=1_000_000,
            rate_bytes=1e12,
            rate_bytes_burst=10**12,
            history_sync="NORMAL",
        )
        with ChatServer(config) as server:
            yield server.address[0], server.address[1]


def chat_with_a_stalled_member(name: str) -> RoomRun:
    """Alice sends batches; bob counts; "stalled" never reads. Stops at the first batch bob does not get."""
    run = RoomRun(name)
    with serving(name) as address:
        stalled = LessonClient(address, "stalled", receive_buffer=4096)
        alice = LessonClient(address, "alice")
        bob = LessonClient(address, "bob")
        started = time.monotonic()
        try:
            for _ in range(BATCHES):
                for _ in range(BATCH):
                    alice.send(Say(room="lobby", text="x" * TEXT))
                    run.sent += 1
                sent = run.sent
                arrived = bob.wait_until(lambda: count(bob) >= sent, BATCH_TIMEOUT)  # noqa: B023 (called here)
                run.received = count(bob)
                if not arrived:
                    run.stalled = True
                    break
        except TimeoutError:  # alice's own sendall blocked: the server stopped reading her too
            run.stalled = True
        run.seconds = time.monotonic() - started
        for client in (alice, bob, stalled):
            client.close()
    return run


def count(client: LessonClient) -> int:
    """How many of alice's messages `client` received."""
    return sum(1 for m in client.received if isinstance(m, Said) and m.nick == "alice")


def run(out: TextIO) -> list[RoomRun]:
    """Run the lesson on both servers, narrating to `out`; return the two results."""
    results = []
    print(
        f"alice sends batches of {BATCH} messages of {TEXT} characters; bob reads; 'stalled' never reads",
        file=out,
    )
    for name in ("tutorial", "mpchat"):
        result = chat_with_a_stalled_member(name)
        results.append(result)
        verdict = (
            f"STALLED: bob got nothing more for {BATCH_TIMEOUT:g} s"
            if result.stalled
            else "bob got every message"
        )
        print(
            f"   {name:<8}: {result.sent} sent, {result.received} received by bob, {verdict} "
            f"({result.seconds:.1f} s)",
            file=out,
        )
    print(
        "\nmpchat: the history thread hands each frame to every member's bounded send queue and never "
        "writes to a socket; one sender thread writes without blocking, and a member whose queue passes "
        "the hard limit (sendq_hard, 1 MiB) is disconnected with a reason (docs/architecture.md, "
        "'Broadcast and the slow-consumer policy'; chat_server/sender/thread.py). Under load without a "
        "stalled member the difference is in docs/performance.md "
        "(python -m benchmarks.run W1 --duration 2 --plot).",
        file=out,
    )
    return results
