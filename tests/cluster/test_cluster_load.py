"""The load generator split over two cluster servers (what `python -m benchmarks.cluster` runs): every client
on either server gets every message of its room exactly once, and every send is acked. Correctness only."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.loadgen import LoadSpec, run_load
from benchmarks.servers import BENCH_SETTINGS
from chat_server.server import ChatServer


def test_load_split_over_two_servers_is_delivered_exactly_once(
    start_cluster_server: Callable[..., ChatServer],
) -> None:
    one = start_cluster_server("one", **BENCH_SETTINGS)
    two = start_cluster_server("two", **BENCH_SETTINGS)
    spec = LoadSpec(
        port=one.address[1], ports=(two.address[1],), clients=12, rooms=3, senders=6, rate=60.0, duration=1.0
    )
    assert {spec.port_of(client) for client in range(12)} == {one.address[1], two.address[1]}
    result = run_load(spec)
    assert result["errors"] == {}
    assert result["sent"] == result["acked"] == 60
    assert result["delivered"] == result["expected_deliveries"] == 60 * 3
    assert (result["duplicates"], result["misrouted"]) == (0, 0)
