"""A long soak: chatty clients that come and go, while the server's memory, threads and files are watched.

    python -m benchmarks.soak                          # 50 clients, 2 msg/s each, 10 minutes
    python -m benchmarks.soak --minutes 60 --json      # the hour-long run
    python -m benchmarks.soak --clients 6 --seconds 20 --disconnect 3 8     # a smoke run

One server process (ours, history on, started exactly as the benchmarks start it: `benchmarks.servers`,
a fresh data folder, the per-address limits raised because every client comes from 127.0.0.1), and in this
process one asyncio loop running:

* ``--clients`` chat clients in one room, each saying a numbered line every 1/``--rate`` seconds. Each one
  drops its connection at a random moment every ``--disconnect LOW HIGH`` seconds (uniform) and logs in
  again at once (the same nick: the server must have freed it).
* a canary pair that never disconnects: ``canary-tx`` says its send time every ``CANARY_INTERVAL`` seconds
  in a room of its own, ``canary-rx`` measures the latency to its screen, write to read.
* a sampler reading the server's RSS, threads and open descriptors from /proc every ``SAMPLE_INTERVAL`` s.

What it reports (JSON with ``--json``, a short table otherwise):

* ``lost``: messages that were acknowledged (stored) while a receiver was logged in and stayed logged in for
  ``GRACE`` seconds after the `ack`, but never reached that receiver. Must be 0.
* RSS after warm-up (the first ``--warmup`` seconds, default a fifth of the run) and at the end, and the
  growth between them; threads and descriptors: their range over the steady part against the number of
  connections at the same moments (each connection costs one reader thread and one socket).
* the canary's latency p50 / p99 / max, and the refusals, errors and reconnects counted.

The exit status is 0 when nothing was lost and every client kept up, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared import (
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Ack,
    EndOfStream,
    Error,
    Hello,
    History,
    Message,
    Ping,
    Pong,
    ProtocolConnection,
    Role,
    Said,
    Say,
)
from shared.errors import RemoteProtocolError

from .loadgen import histogram
from .servers import started

#: The room every soak client is in, and the canary's own room (so its latency is the server's, not the
#: time its line waits behind the others' in the same outboxes).
ROOM = "soak"
CANARY_ROOM = "canary"
#: Seconds between two canary lines.
CANARY_INTERVAL = 0.2
#: Seconds between two /proc samples of the server.
SAMPLE_INTERVAL = 1.0
#: A receiver that stayed logged in this long after a message's `ack` must have received it.
GRACE = 5.0
#: Seconds a login (hello to the room's `history`) may take before the client counts an error and retries.
LOGIN_TIMEOUT = 15.0
#: Seconds the clients get after the sending stops, to receive what is still on its way.
DRAIN = 5.0
#: Defaults of the command line.
DEFAULT_CLIENTS = 50
DEFAULT_RATE = 2.0
DEFAULT_SECONDS = 600.0
DEFAULT_DISCONNECT = (30.0, 120.0)


@dataclass
class Session:
    """One login of one client: from its room's history (joined) to the moment it closed."""

    nick: str
    start: float
    end: float = float("inf")
    #: (sender, number) of every line received in this session.
    received: set[tuple[str, int]] = field(default_factory=set)


@dataclass
class Sent:
    """One line a client said, and when it was acknowledged (None: never, e.g. the client disconnected)."""

    nick: str
    number: int
    sent_at: float
    acked_at: float | None = None


@dataclass
class Totals:
    """What all clients saw, shared by the tasks of this one event loop (no lock needed)."""

    sessions: list[Session] = field(default_factory=list)
    sent: dict[tuple[str, int], Sent] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    login_failures: int = 0
    canary: list[int] = field(default_factory=histogram.new)
    canary_count: int = 0
    samples: list[dict[str, float]] = field(default_factory=list)

    def error(self, code: str) -> None:
        """Count one error frame (or failure) by its code."""
        self.errors[code] = self.errors.get(code, 0) + 1


class Link:
    """A logged-in protocol connection over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = ProtocolConnection(Role.CLIENT)

    @classmethod
    async def login(cls, port: int, nick: str, room: str) -> Link:
        """Connect, send `hello` with `room`, and return once the room's `history` has arrived."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        link = cls(reader, writer)
        try:
            link.send(Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=nick, rooms=(room,)))
            async with asyncio.timeout(LOGIN_TIMEOUT):
                while True:
                    for message in await link.receive():
                        if isinstance(message, Error):
                            raise ConnectionError(message.code)
                        if isinstance(message, History) and message.room == room:
                            return link
        except BaseException:
            link.close()
            raise

    def send(self, message: Message) -> None:
        """Queue one message on the stream (asyncio writes it in the background)."""
        self.writer.write(self.protocol.send(message))

    async def receive(self) -> list[Message]:
        """The messages of the next chunk of bytes (a `ping` is answered here); ConnectionError at the end."""
        data = await self.reader.read(65536)
        self.protocol.receive_data(data)
        messages: list[Message] = []
        for event in self.protocol.events():
            if isinstance(event, EndOfStream):
                raise ConnectionError("closed by the server")
            if isinstance(event, RemoteProtocolError):
                raise event
            messages.append(event)
        for message in messages:
            if isinstance(message, Ping):
                self.send(Pong(token=message.token))
        return messages

    def close(self) -> None:
        """Close the socket at once (what a crashing or vanishing client does)."""
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


async def chat_client(
    index: int, port: int, rate: float, disconnect: tuple[float, float], until: float, totals: Totals
) -> None:
    """One soak client: log in, say a line every 1/rate s, drop the connection now and then, repeat."""
    nick = f"soak{index:03d}"
    number = 0
    loop = asyncio.get_running_loop()
    rng = random.Random(index)
    first = True
    while loop.time() < until:
        try:
            link = await Link.login(port, nick, ROOM)
        except (OSError, TimeoutError) as error:
            totals.login_failures += 1
            totals.error(f"login: {error}")
            await asyncio.sleep(0.5)  # do not spin against a server that refuses
            continue
        if not first:
            totals.reconnects += 1
        first = False
        session = Session(nick, loop.time())
        totals.sessions.append(session)
        drop_at = min(until, loop.time() + rng.uniform(*disconnect))
        pending: dict[int, tuple[str, int]] = {}  # ref -> (nick, number) awaiting ack

        async def speak(link: Link, drop_at: float, pending: dict[int, tuple[str, int]]) -> None:
            nonlocal number
            ref = 0
            next_at = loop.time() + rng.uniform(0, 1 / rate)
            while loop.time() < drop_at:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at += 1 / rate
                number += 1
                ref += 1
                pending[ref] = (nick, number)
                totals.sent[(nick, number)] = Sent(nick, number, loop.time())
                link.send(Say(room=ROOM, text=f"{nick} {number}", ref=ref))

        speaker = asyncio.create_task(speak(link, drop_at, pending))
        try:
            async with asyncio.timeout(max(0.0, drop_at - loop.time()) + (DRAIN if drop_at >= until else 0)):
                while True:
                    for message in await link.receive():
                        now = loop.time()
                        if isinstance(message, Said) and message.room == ROOM:
                            sender, _, count = message.text.partition(" ")
                            session.received.add((sender, int(count)))
                        elif isinstance(message, Ack) and message.ref in pending:
                            totals.sent[pending.pop(message.ref)].acked_at = now
                        elif isinstance(message, Error):
                            totals.error(message.code)
        except TimeoutError:
            pass  # time to drop this connection (or the run is over)
        except (OSError, ConnectionError) as error:
            totals.error(f"closed: {error}")
        finally:
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await speaker
            session.end = loop.time()
            link.close()


async def canary(port: int, until: float, totals: Totals) -> None:
    """A pair that never disconnects: the latency of a line in a quiet room while the soak room is busy."""
    receiver = await Link.login(port, "canary-rx", CANARY_ROOM)
    sender = await Link.login(port, "canary-tx", CANARY_ROOM)
    loop = asyncio.get_running_loop()

    async def speak() -> None:
        while loop.time() < until:
            sender.send(Say(room=CANARY_ROOM, text=str(time.monotonic_ns())))
            await asyncio.sleep(CANARY_INTERVAL)

    async def drain_acks() -> None:
        while True:
            await sender.receive()

    tasks = [asyncio.create_task(speak()), asyncio.create_task(drain_acks())]
    try:
        async with asyncio.timeout(until - loop.time() + DRAIN):
            while True:
                for message in await receiver.receive():
                    if isinstance(message, Said) and message.nick == "canary-tx":
                        latency_us = (time.monotonic_ns() - int(message.text)) // 1000
                        totals.canary[histogram.bucket_of(latency_us)] += 1
                        totals.canary_count += 1
    except TimeoutError:
        pass
    finally:
        for task in tasks:
            task.cancel()
        receiver.close()
        sender.close()


async def sampler(pid: int, until: float, totals: Totals, connections: Any) -> None:
    """Every `SAMPLE_INTERVAL` s: the server's RSS (KiB), threads, open descriptors, and our connections."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() < until:
        totals.samples.append(
            {
                "t": round(loop.time() - start, 1),
                "rss_kb": _status_field(pid, "VmRSS"),
                "threads": _status_field(pid, "Threads"),
                "fds": len(os.listdir(f"/proc/{pid}/fd")),
                "connections": connections(),
            }
        )
        await asyncio.sleep(SAMPLE_INTERVAL)


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise ValueError(f"no {name} in /proc/{pid}/status")


async def soak(
    port: int, pid: int, clients: int, rate: float, seconds: float, disconnect: tuple[float, float]
) -> Totals:
    """Run the clients, the canary and the sampler against the server at `port` (process `pid`)."""
    totals = Totals()
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds

    def connections() -> int:
        return 2 + sum(1 for session in totals.sessions if session.end == float("inf"))

    await asyncio.gather(
        canary(port, until, totals),
        sampler(pid, until, totals, connections),
        *(chat_client(index, port, rate, disconnect, until, totals) for index in range(clients)),
    )
    return totals


def lost_messages(totals: Totals) -> tuple[int, int]:
    """(deliveries that had to happen, deliveries that did not): see the module docstring for "had to".

    The acknowledged messages are sorted by send time once; each session then looks only at the ones sent
    while it was logged in (a bisection), so an hour's run (360,000 messages, 2,500 sessions) takes seconds.
    """
    acked = sorted(
        (message.sent_at, message.acked_at, message.nick, message.number)
        for message in totals.sent.values()
        if message.acked_at is not None
    )
    times = [sent_at for sent_at, _acked, _nick, _number in acked]
    required = missing = 0
    for session in totals.sessions:
        first = bisect.bisect_right(times, session.start)
        last = bisect.bisect_left(times, session.end - GRACE)
        for _sent_at, acked_at, nick, number in acked[first:last]:
            if nick == session.nick or not acked_at + GRACE < session.end:
                continue  # the server does not echo a line to its sender; or acked too late to count
            required += 1
            if (nick, number) not in session.received:
                missing += 1
    return required, missing


def by_minute(samples: list[dict[str, float]], key: str) -> list[int]:
    """`key` of the first sample at or after each whole minute of the run."""
    values: list[int] = []
    for sample in samples:
        if sample["t"] >= 60 * len(values):
            values.append(int(sample[key]))
    return values


def summary(totals: Totals, seconds: float, warmup: float) -> dict[str, Any]:
    """The figures of a finished run."""
    required, missing = lost_messages(totals)
    steady = [s for s in totals.samples if s["t"] >= warmup] or totals.samples
    first, last = steady[0], steady[-1]
    canary = histogram.percentiles(totals.canary, (50, 99, 100))
    acked = sum(1 for message in totals.sent.values() if message.acked_at is not None)
    # Each connection costs one reader thread and two descriptors (its socket and the sender's dup).
    per_connection = [(s["threads"] - s["connections"], s["fds"] - 2 * s["connections"]) for s in steady]
    return {
        "seconds": seconds,
        "warmup_s": warmup,
        "sessions": len(totals.sessions),
        "reconnects": totals.reconnects,
        "login_failures": totals.login_failures,
        "said": len(totals.sent),
        "acked": acked,
        "required_deliveries": required,
        "lost": missing,
        "errors": totals.errors,
        "rss_kb_after_warmup": first["rss_kb"],
        "rss_kb_end": last["rss_kb"],
        "rss_kb_max": max(s["rss_kb"] for s in steady),
        "rss_growth_kb": last["rss_kb"] - first["rss_kb"],
        "threads_range": [min(s["threads"] for s in steady), max(s["threads"] for s in steady)],
        "fds_range": [min(s["fds"] for s in steady), max(s["fds"] for s in steady)],
        "connections_range": [min(s["connections"] for s in steady), max(s["connections"] for s in steady)],
        # Threads and descriptors beyond what the connections of the moment explain: a narrow, flat range in
        # a server that leaks neither (it is not one value: clients in mid-reconnect are counted on one side).
        "threads_minus_connections": [min(a for a, _ in per_connection), max(a for a, _ in per_connection)],
        "fds_minus_2x_connections": [min(b for _, b in per_connection), max(b for _, b in per_connection)],
        "rss_kb_by_minute": by_minute(totals.samples, "rss_kb"),
        "canary_lines": totals.canary_count,
        "canary_p50_ms": canary[50],
        "canary_p99_ms": canary[99],
        "canary_max_ms": canary[100],
        "loadavg_end": list(os.getloadavg()),
        "rss_median_kb": statistics.median(s["rss_kb"] for s in steady),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="default %(default)s")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="lines per second per client")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help=f"length of the run (default {DEFAULT_SECONDS:g})")
    length.add_argument("--minutes", type=float, help="length of the run in minutes")
    parser.add_argument(
        "--disconnect",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=DEFAULT_DISCONNECT,
        help="each client drops its connection after a random LOW-HIGH seconds (default 30 120)",
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds before RSS counts (default: a fifth of the run)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--samples", type=Path, help="write every /proc sample to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one soak; exit 0 when nothing was lost."""
    arguments = build_parser().parse_args(argv)
    seconds = arguments.seconds or (arguments.minutes * 60 if arguments.minutes else DEFAULT_SECONDS)
    warmup = arguments.warmup if arguments.warmup is not None else seconds / 5
    with started("mpchat") as server:
        totals = asyncio.run(
            soak(
                server.port,
                server.pid,
                arguments.clients,
                arguments.rate,
                seconds,
                (arguments.disconnect[0], arguments.disconnect[1]),
            )
        )
    result = summary(totals, seconds, warmup)
    if arguments.samples is not None:
        arguments.samples.write_text(json.dumps(totals.samples))
    if arguments.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>28}  {value}")
    return 0 if result["lost"] == 0 and result["required_deliveries"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
