"""The admin's `/stats`: the server's figures (or one connection's) as a `stats_report`, on the reader thread.

A `stats` request is answered by the asking connection's reader thread (chat_server.reader.requests), like
`fetch_history`: it reads the `Tally` (chat_server.metrics) and asks the server for its gauges, which copy
under the server's lock and the hub's lock in turn, never both. The history thread is not involved, so
asking costs the chat nothing. Only a server admin may ask: a nick in the config's `admins` whose password
was verified (`Client.account`, as for the admin's operator rights in chat_server.history.moderation).
"""

from __future__ import annotations

import time

from chat_server.hub import Client
from chat_server.metrics import LATENCY_BOUNDS, Gauges, Tally, process_figures
from chat_server.replies import error_frame
from chat_server.services import Services
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import Figure, GetStats, StatsReport
from shared.text import fold


def answer_stats(services: Services, client: Client, request: GetStats) -> bytes:
    """The `stats_report` (or the `error`) answering `request` from `client`."""
    with services.hub.lock:
        account = client.account
    if account is None or account not in {fold(nick) for nick in services.config.admins}:
        return error_frame(ErrorCode.NOT_ADMIN, "only a server admin may ask for stats", request.ref)
    observer = services.observer
    if observer is None:
        return error_frame(ErrorCode.INTERNAL_ERROR, "stats are not available", request.ref)
    if request.nick is None:
        figures = server_figures(services.tally, observer.observe())
    else:
        found = observer.connection_figures(request.nick)
        if found is None:
            return error_frame(ErrorCode.NO_SUCH_NICK, f"{request.nick!r} is not online", request.ref)
        figures = found
    report = StatsReport(
        figures=tuple(Figure(name=name, value=value) for name, value in figures),
        nick=request.nick,
        ref=request.ref,
    )
    return encode(report)


def _ms(seconds: float | None) -> float:
    """A latency histogram's quantile in milliseconds (0 before any observation)."""
    if seconds is None:
        return 0.0
    return round(min(seconds, LATENCY_BOUNDS[-1]) * 1000, 3)  # "over the last bound" shows as that bound


def server_figures(tally: Tally, gauges: Gauges) -> list[tuple[str, int | float]]:
    """The server-wide figures of `/stats`, in the order docs/protocol.md lists them."""
    now = time.monotonic()
    messages_rate, deliveries_rate = tally.rates(now)
    process = process_figures()
    connections = sum(gauges.connections.values())
    tls = sum(count for (_state, encrypted), count in gauges.connections.items() if encrypted)
    files = tally.events("file_bytes")
    return [
        ("uptime_s", round(now - tally.started, 1)),
        ("connections", connections),
        ("connections_tls", tls),
        ("logged_in", gauges.logged_in),
        ("rooms", gauges.rooms),
        ("logins", sum(tally.events("logins").values())),
        ("refusals", sum(tally.events("refusals").values())),
        ("messages", tally.messages),
        ("deliveries", tally.deliveries),
        ("messages_per_s", round(messages_rate, 2)),
        ("deliveries_per_s", round(deliveries_rate, 2)),
        ("commit_p50_ms", _ms(tally.commit_seconds.quantile(0.5))),
        ("commit_p99_ms", _ms(tally.commit_seconds.quantile(0.99))),
        ("fanout_p99_ms", _ms(tally.fanout_seconds.quantile(0.99))),
        ("slow_consumer_drops", sum(tally.events("slow_consumer_drops").values())),
        ("rate_limited", sum(tally.events("rate_limited").values())),
        ("queued_bytes", gauges.queued_bytes),
        ("queue_max_bytes", gauges.top_queues[0][1] if gauges.top_queues else 0),
        ("threads", process.threads),
        ("open_fds", process.open_fds),
        ("rss_bytes", process.rss_bytes),
        ("file_upload_bytes", files.get("upload", 0)),
        ("file_download_bytes", files.get("download", 0)),
    ]
