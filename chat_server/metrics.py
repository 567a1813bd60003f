"""What an operator can see: the server's counters, and their Prometheus endpoint (``--metrics HOST:PORT``).

Two halves, so that counting costs nothing extra on the message path and needs no library:

* `Tally` holds the counters. They are incremented where the server already counts, by the thread that owns
  the event, with plain attribute arithmetic: messages, deliveries, commit latency and batch size once per
  history batch (history thread), fan-out latency once per sender round (sender thread). Rare events
  (logins, refusals, drops, rate-limit refusals, file bytes per chunk) come from many threads and go through
  `Tally.count`, under ``Tally._lock``. The tally always runs: the admin's ``/stats``
  (chat_server.reader.adminstats) reads it too, with or without the metrics endpoint.
* `MetricsEndpoint` serves them over HTTP in the Prometheus text format through the `prometheus_client`
  library (the optional extra ``metrics``). Nothing is registered per event: one custom collector reads the
  tally and asks the server for its gauges (connections, queues, threads, descriptors, memory) at scrape
  time. Its thread, ``metrics-http``, answers one request at a time (each bounded by `HTTP_TIMEOUT`) and
  touches nothing but the tally, `ChatServer.observe()` (which copies under the server's and the hub's locks,
  one after the other, never nested) and /proc.

docs/server.md lists every metric; docs/grafana/mpchat.json is a dashboard of them.
"""

from __future__ import annotations

import bisect
import logging
import os
import resource
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Port in the examples (Prometheus's registry of exporter ports lists 9464 for "OpenTelemetry"-style
#: exporters; any free port will do). There is no default: the endpoint is off unless asked for.
EXAMPLE_METRICS_PORT = 9464
#: Host the endpoint binds when `--metrics` gives a port alone: loopback, metrics are not for everyone.
DEFAULT_METRICS_HOST = "127.0.0.1"
#: Seconds one HTTP request to the endpoint may take (a stalled scraper cannot hold the thread longer).
HTTP_TIMEOUT = 5.0
#: How often the endpoint's thread checks whether it should stop, in seconds.
HTTP_POLL = 0.5
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


# -- The Prometheus endpoint (needs prometheus_client) ------------------------------------------------------


def _require_library() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MetricsUnavailable(
            "--metrics needs the prometheus_client library: pip install 'mpchat[metrics]'"
        ) from None
    return prometheus_client


class TallyCollector:
    """A `prometheus_client` collector: turns the tally and the server's gauges into metric families."""

    def __init__(self, tally: Tally, gauges: Callable[[], Gauges]) -> None:
        self.tally = tally
        self.gauges = gauges

    def describe(self) -> list[Any]:
        """Nothing up front: keeps registration from calling `collect` (the server may not be started)."""
        return []

    def collect(self) -> Iterator[Any]:
        """Every metric, as it is now (runs on the ``metrics-http`` thread)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        tally, now = self.tally, self.gauges()
        connections = GaugeMetricFamily(
            "mpchat_connections", "Open client connections by state and TLS.", labels=["state", "tls"]
        )
        for state in ("tls_handshake", "greeting", "chatting"):
            for tls in (False, True):
                count = now.connections.get((state, tls), 0)
                connections.add_metric([state, "true" if tls else "false"], count)
        yield connections
        yield GaugeMetricFamily(
            "mpchat_logged_in", "Clients logged in (holding a nick).", value=now.logged_in
        )
        yield GaugeMetricFamily("mpchat_rooms", "Rooms that exist now.", value=now.rooms)
        yield GaugeMetricFamily(
            "mpchat_queued_bytes", "Bytes waiting in all send queues together.", value=now.queued_bytes
        )
        largest = now.top_queues[0][1] if now.top_queues else 0
        yield GaugeMetricFamily("mpchat_queue_max_bytes", "Bytes in the largest send queue.", value=largest)
        top = GaugeMetricFamily(
            "mpchat_top_queue_bytes",
            f"Bytes in each of the {TOP_QUEUES} largest non-empty send queues, by nick.",
            labels=["nick"],
        )
        for nick, size in now.top_queues:
            top.add_metric([nick], size)
        yield top
        figures = process_figures()
        yield GaugeMetricFamily("mpchat_threads", "Threads of the server process.", value=figures.threads)
        yield GaugeMetricFamily("mpchat_open_fds", "Open file descriptors.", value=figures.open_fds)
        yield GaugeMetricFamily(
            "mpchat_resident_memory_bytes", "Resident set size (RSS).", value=figures.rss_bytes
        )
        yield CounterMetricFamily("mpchat_messages", "Room and direct messages stored.", value=tally.messages)
        yield CounterMetricFamily(
            "mpchat_deliveries", "Message frames queued for their recipients.", value=tally.deliveries
        )
        for name, kind, text, label in (
            ("mpchat_logins", "logins", "Successful logins.", None),
            ("mpchat_refusals", "refusals", "Connections and logins refused, by error code.", "reason"),
            ("mpchat_disconnects", "disconnects", "Connections ended, by close reason.", "reason"),
            ("mpchat_slow_consumer_drops", "slow_consumer_drops", "Clients dropped as too slow.", "reason"),
            ("mpchat_rate_limited", "rate_limited", "Requests over a rate limit, by bucket.", "bucket"),
            ("mpchat_file_bytes", "file_bytes", "File transfer bytes, by direction.", "direction"),
        ):
            events = tally.events(kind)
            family = CounterMetricFamily(name, text, labels=[] if label is None else [label])
            if label is None:
                family.add_metric([], sum(events.values()))
            else:
                for value, count in sorted(events.items()):
                    family.add_metric([value], count)
            yield family
        for name, text, histogram in (
            ("mpchat_commit_seconds", "Seconds per history commit.", tally.commit_seconds),
            ("mpchat_commit_batch_size", "Requests applied per history commit.", tally.batch_size),
            (
                "mpchat_fanout_seconds",
                "Seconds from a commit to its last recipient's write.",
                tally.fanout_seconds,
            ),
        ):
            counts, total = histogram.snapshot()
            buckets, seen = [], 0
            for bound, in_bucket in zip((*histogram.bounds, float("inf")), counts, strict=True):
                seen += in_bucket
                buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", seen))
            yield HistogramMetricFamily(name, text, buckets=buckets, sum_value=total)


class MetricsEndpoint:
    """The HTTP endpoint (thread ``metrics-http``): ``GET /metrics`` in the Prometheus text format."""

    def __init__(self, host: str, port: int, tally: Tally, gauges: Callable[[], Gauges]) -> None:
        library = _require_library()
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class QuietHandler(WSGIRequestHandler):
            """Bounded in time; logs through `logging` at DEBUG instead of printing each request."""

            timeout = HTTP_TIMEOUT

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("event=metrics_request " + format, *args)

        class Server(WSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        registry = library.CollectorRegistry(auto_describe=False)
        registry.register(TallyCollector(tally, gauges))
        app = library.make_wsgi_app(registry)
        try:
            self._server: WSGIServer = make_server(host, port, app, Server, QuietHandler)
        except OSError as error:
            raise MetricsUnavailable(f"cannot serve metrics on {host}:{port}: {error.strerror}") from error
        self._server.timeout = HTTP_POLL  # handle_request() returns after this long without a request
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="metrics-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start answering scrapes."""
        self._thread.start()

    def _serve(self) -> None:
        # One request at a time, each bounded by HTTP_TIMEOUT; between requests, a look at `_stopping`.
        while not self._stopping.is_set():
            try:
                self._server.handle_request()
            except Exception:
                log.exception("event=metrics_request_failed")

    def stop(self, timeout: float) -> None:
        """Stop answering and close the socket (waits at most `timeout` for the thread)."""
        self._stopping.set()
        self._thread.join(timeout)
        self._server.server_close()
