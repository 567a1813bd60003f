"""What an operator can see: the server's counters, and their Prometheus endpoint (``--metrics HOST:PORT``).

Two halves, so that counting costs nothing extra on the message path and needs no library:

* `Tally` holds the counters. They are incremented where the server already counts, by the thread that owns
  the event, with plain attribute arithmetic: messages, deliveries, commit latency and batch size once per
  history batch (history thread), fan-out latency once per sender round (sender thread). Rare events
  (logins, refusals, drops, rate-limit refusals, file bytes per chunk) come from many threads and go through
  `Tally.count`, under ``Tally._lock``. The tally always runs: the admin's ``/stats``
  (chat_server.reader.adminstats) reads it too, with or without the metrics endpoint.
* `MetricsEndpoint` (chat_server.metrics_http.endpoint, its own thread ``metrics-http``) serves them over
  HTTP in the Prometheus text format. Nothing is registered per event: it reads the tally and the gauges
  (`Gauges`: connections, queues, rooms; `process_figures`: threads, descriptors, memory) at scrape time.

Used by every thread: the counters as said above; `Gauges` and `process_figures` by whichever thread asks
(the metrics endpoint, a reader answering `/stats`).

docs/server.md lists every metric; docs/grafana/mpchat.json is a dashboard of them.
"""

from __future__ import annotations

import bisect
import logging
import os
import resource
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

#: Port in the examples (Prometheus's registry of exporter ports lists 9464 for "OpenTelemetry"-style
#: exporters; any free port will do). There is no default: the endpoint is off unless asked for.
EXAMPLE_METRICS_PORT = 9464
#: Host the endpoint binds when `--metrics` gives a port alone: loopback, metrics are not for everyone.
DEFAULT_METRICS_HOST = "127.0.0.1"
#: How many of the largest send queues are shown one by one (`mpchat_top_queue_bytes`).
TOP_QUEUES = 5

#: Bucket upper bounds, in seconds, of the commit and fan-out latency histograms.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Bucket upper bounds of the batch size histogram (requests applied in one commit).
BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

#: Seconds over which /stats computes the message and delivery rates (the endpoint leaves that to rate()).
RATE_WINDOW = 60.0

#: How the close reasons of a slow consumer dropped begin, and the label each drop is counted under.
SLOW_CONSUMER_REASONS = {"send queue": "sendq_exceeded", "write timeout": "write_timeout"}


class MetricsUnavailable(Exception):
    """``--metrics`` was asked for but `prometheus_client` is not installed, or the address is unusable."""


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``PORT`` (loopback) as (host, port); `ValueError` if malformed."""
    host, port = DEFAULT_METRICS_HOST, text
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"metrics address {text!r}: write an IPv6 address as [ADDRESS]:PORT")
        host, port = inside, rest[1:]
    elif ":" in text:
        host, _, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"metrics address {text!r}: write an IPv6 address as [ADDRESS]:PORT")
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ValueError(f"metrics address {text!r} is not HOST:PORT (port 0-65535)")
    return host, int(port)


class FixedHistogram:
    """Counts of observations in fixed buckets, plus their sum: one thread observes, any thread reads.

    `observe` is a `bisect` and two additions, cheap enough for once per batch. A reader copies the counts
    first (`snapshot`), so what it reports is always cumulative and consistent with itself.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (owner thread only)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> tuple[list[int], float]:
        """(counts per bucket, sum) as they are now."""
        return list(self.counts), self.total

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile `q` (0-1); None without observations."""
        counts, _ = self.snapshot()
        count = sum(counts)
        if not count:
            return None
        seen = 0
        for index, in_bucket in enumerate(counts):
            seen += in_bucket
            if seen >= q * count:
                return self.bounds[index] if index < len(self.bounds) else float("inf")
        return float("inf")


@dataclass
class Tally:
    """The server's counters (see the module docstring for which thread increments which)."""

    #: Room and direct messages stored (history thread, once per batch).
    messages: int = 0
    #: Frames of those messages queued for their recipients (history thread, once per room run).
    deliveries: int = 0
    #: Seconds per history commit, and requests per commit (history thread).
    commit_seconds: FixedHistogram = field(default_factory=lambda: FixedHistogram(LATENCY_BOUNDS))
    batch_size: FixedHistogram = field(default_factory=lambda: FixedHistogram(BATCH_BOUNDS))
    #: Seconds from a batch's commit to the end of the sender round that wrote it (sender thread).
    fanout_seconds: FixedHistogram = field(default_factory=lambda: FixedHistogram(LATENCY_BOUNDS))
    #: When the latest batch was committed (monotonic; history thread writes, sender reads and clears).
    fanout_from: float = 0.0
    #: When the server started (monotonic), for the averages in /stats.
    started: float = field(default_factory=time.monotonic)
    #: (time, messages, deliveries) at most once a second over `RATE_WINDOW` (history thread appends).
    _samples: deque[tuple[float, int, int]] = field(
        default_factory=lambda: deque(maxlen=int(RATE_WINDOW) + 2)
    )
    #: Rare events by kind and label ("refusals", "bad_password"); guarded by `_lock`.
    _events: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sample(self, now: float) -> None:
        """Remember the totals for the rates of /stats, at most once a second (history thread, per batch)."""
        samples = self._samples
        if not samples or now - samples[-1][0] >= 1.0:
            samples.append((now, self.messages, self.deliveries))

    def rates(self, now: float) -> tuple[float, float]:
        """Messages and deliveries per second over about the last `RATE_WINDOW` seconds."""
        samples = list(self._samples)  # one C-level copy: safe while the history thread appends
        older = [sample for sample in samples if sample[0] <= now - RATE_WINDOW]
        base = older[-1] if older else (samples[0] if samples else (self.started, 0, 0))
        span = max(now - base[0], 1.0)
        return (self.messages - base[1]) / span, (self.deliveries - base[2]) / span

    def count(self, kind: str, label: str, amount: int = 1) -> None:
        """Count a rare event (any thread): a login, a refusal by code, a drop, a rate-limit refusal..."""
        with self._lock:
            self._events[kind, label] += amount

    def events(self, kind: str) -> dict[str, int]:
        """Every label counted under `kind`, with its count."""
        with self._lock:
            return {label: value for (k, label), value in self._events.items() if k == kind}

    def closed(self, reason: str) -> None:
        """A connection ended for `reason` (its close reason): count it, and a slow-consumer drop as one."""
        label = reason.partition(":")[0]  # "tls: handshake failed: ..." -> "tls": a bounded set of labels
        with self._lock:
            self._events["disconnects", label] += 1
            for start, drop in SLOW_CONSUMER_REASONS.items():
                if label.startswith(start):
                    self._events["slow_consumer_drops", drop] += 1


@dataclass(frozen=True, slots=True)
class Gauges:
    """What the server looks like now (`ChatServer.observe()`): read at scrape time, never counted."""

    #: Connections by (state, tls): state is "tls_handshake", "greeting" (before the welcome) or "chatting".
    connections: dict[tuple[str, bool], int]
    logged_in: int
    rooms: int
    queued_bytes: int
    #: The largest send queues: (nick or "#conn-N", bytes), largest first, at most `TOP_QUEUES`.
    top_queues: list[tuple[str, int]]


class Observer(Protocol):
    """What the admin's /stats asks of the server (`ChatServer` is one)."""

    def observe(self) -> Gauges:
        """The gauges now."""
        ...

    def connection_figures(self, nick: str) -> list[tuple[str, int | float]] | None:
        """The queue and rates of the connection logged in as `nick`; None if nobody is."""
        ...


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    """Threads, open descriptors and resident memory of this process."""

    threads: int
    open_fds: int
    rss_bytes: int


def process_figures() -> ProcessFigures:
    """Read this process's threads, descriptors and RSS (from /proc on Linux; a fallback elsewhere)."""
    threads = threading.active_count()
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    rss = 0
    try:
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the peak: better than nothing
    return ProcessFigures(threads=threads, open_fds=fds, rss_bytes=rss)
