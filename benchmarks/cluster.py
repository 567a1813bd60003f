"""What cluster mode costs, measured: W1 on one single server, on one cluster server, and split over two.

    python -m benchmarks.cluster [--rates 500 2000] [--clients 100] [--senders 10] [--duration 5]

For each offered rate, three configurations run one after the other in the same run, each with the project's
load generator (benchmarks.loadgen: every client reads everything, each message's latency measured from its
send time): ``single`` (one `chat-server`, SQLite), ``cluster x1`` (one `chat-server --cluster` on a fresh
three-node NATS JetStream cluster on loopback: the cost of the NATS round trip and the replication) and
``cluster x2`` (two cluster servers, the clients split evenly over them: every room has members on both).
The CPU seconds of the chat servers and of the NATS nodes during the message phase (from /proc) are
divided by the messages sent. Results go to a JSON file; docs/performance.md quotes them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .loadgen import LoadSpec, run_load
from .loadgen.procstat import sample
from .natscluster import NatsCluster
from .servers import RunningServer, started

#: The configurations measured for each rate: (label, chat servers, cluster mode).
CONFIGURATIONS = (("single", 1, False), ("cluster x1", 1, True), ("cluster x2", 2, True))


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time (user + system) of these processes together."""
    return sum(sample(pid).cpu_s for pid in pids)


def point(label: str, servers: int, cluster: bool, spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load point on a fresh set of servers (and a fresh NATS cluster in cluster mode)."""
    with contextlib.ExitStack() as stack:
        arguments: tuple[str, ...] = ()
        nats_pids: list[int] = []
        if cluster:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-nats-")))
            nats = NatsCluster(folder)
            stack.callback(nats.stop)
            nats.start()
            arguments = ("--cluster", nats.url_list)
            nats_pids = [process.pid for process in nats.processes if process is not None]
        running: list[RunningServer] = [
            stack.enter_context(started("mpchat", arguments=arguments)) for _ in range(servers)
        ]
        chat_pids = [server.pid for server in running]
        load = LoadSpec(
            port=running[0].port, ports=tuple(server.port for server in running[1:]), label=label, **spec
        )
        marks: dict[str, float] = {}

        def ready() -> None:
            marks["chat"], marks["nats"] = cpu_seconds(chat_pids), cpu_seconds(nats_pids)

        result = run_load(load, on_ready=ready)
        sent = max(1, result["sent"])
        chat = cpu_seconds(chat_pids) - marks["chat"]
        nats_cpu = cpu_seconds(nats_pids) - marks["nats"]
        result.update(
            configuration=label,
            chat_servers=servers,
            chat_cpu_s=round(chat, 3),
            chat_cpu_us_per_message=round(chat / sent * 1e6, 1),
            nats_cpu_s=round(nats_cpu, 3),
            nats_cpu_us_per_message=round(nats_cpu / sent * 1e6, 1),
        )
        return result


def table(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| configuration | offered msg/s | delivered | p50 ms | p99 ms | chat servers CPU µs/msg"
        " | NATS CPU µs/msg |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['configuration']} | {r['rate_offered']:g} | {r['delivery_ratio']:.4f} | {r['p50_ms']}"
            f" | {r['p99_ms']} | {r['chat_cpu_us_per_message']} | {r['nats_cpu_us_per_message']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every configuration at every rate; print the table; write the JSON results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0, 2000.0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--output", type=Path, help="results file (default benchmarks/results/cluster-<time>)"
    )
    args = parser.parse_args(argv)
    spec = {
        "clients": args.clients,
        "senders": args.senders,
        "duration": args.duration,
        "workers": args.workers,
    }
    results = []
    for rate in args.rates:
        for label, servers, cluster in CONFIGURATIONS:
            results.append(point(label, servers, cluster, {**spec, "rate": rate}))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print(table(results))
    output = (
        args.output or Path(__file__).parent / "results" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"results written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
