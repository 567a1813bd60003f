"""`MetricsEndpoint`: the ``metrics-http`` thread, which serves the server's counters (chat_server.metrics) in
the Prometheus text format through the `prometheus_client` library (the optional extra ``metrics``).

Nothing is registered per event: one custom collector reads the `Tally` and asks the server for its gauges
(`ChatServer.observe()`, which copies under the acceptor's and the hub's locks, one after the other, never
nested) at scrape time. It answers one request at a time, each bounded by `HTTP_TIMEOUT`.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from chat_server.metrics import TOP_QUEUES, Gauges, MetricsUnavailable, Tally, process_figures

log = logging.getLogger(__name__)

#: Seconds one HTTP request to the endpoint may take (a stalled scraper cannot hold the thread longer).
HTTP_TIMEOUT = 5.0
#: How often the endpoint's thread checks whether it should stop, in seconds.
HTTP_POLL = 0.5


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
