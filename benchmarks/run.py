"""Run the standard workloads against our server and the tutorial baseline, side by side, and record them.

    python -m benchmarks.run [W1 W2 W3 W4] [--servers mpchat tutorial] [--duration 10] [--repeat 1] [--quick]
                             [--plot [--plot-dir DIR]]
    python -m benchmarks.run --plot-from RESULTS.json [--plot-dir DIR]

For every load point (a workload at one rate), each server is started fresh (ours with history on, in a new
temporary data folder, with the benchmark's server.toml raising only the rate and per-address limits), driven
by the Python load generator, and stopped; the servers alternate point by point so that both see the same
machine conditions. On a machine with two or more CPUs the server runs on CPU 0 and the load generator on
CPU 1. Results go to benchmarks/results/<timestamp>.json (with the machine description) and a table per
workload is printed (at most `TABLE_WIDTH` columns wide, its columns explained under it; the JSON holds
every figure, the table the ones people compare).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .loadgen import LoadError, LoadSpec, run_load
from .loadgen.report import cell, field_value
from .servers import BENCH_SETTINGS, CHECKOUT, SERVERS, ServerError, started, tail
from .workloads import DEFAULT_DURATION, WORKLOADS, Workload

RESULTS = Path(__file__).resolve().parent / "results"
#: What --plot says without matplotlib (the optional 'plot' extra), before running anything.
NO_MATPLOTLIB = "--plot needs matplotlib: pip install -e '.[plot]'"
SERVER_CPU, LOADGEN_CPU = 0, 1
#: The printed table fits a terminal this wide.
TABLE_WIDTH = 120

#: The printed table: (result key, column title, what it means). Every other figure is in the JSON.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rate_offered", "msg/s", "messages per second offered, all senders together"),
    (
        "delivery_ratio",
        "ratio",
        "deliveries made / deliveries expected (1.00: every message reached everyone)",
    ),
    ("deliveries_per_s", "deliv/s", "messages delivered to receivers per second"),
    ("p50_ms", "p50", "latency from send to delivery, median (ms)"),
    ("p99_ms", "p99", "latency, 99th percentile (ms)"),
    ("max_ms", "max", "latency, worst (ms)"),
    ("login_s", "login s", "seconds to log every client in"),
    ("server.cpu_us_per_delivery", "µs/deliv", "server CPU time per delivery (µs)"),
    ("server.cpu_msg_pct", "cpu%", "server CPU use while sending (% of one core)"),
    ("server.rss_kb_per_connection", "KiB/conn", "server memory per connection (KiB)"),
    ("send_lag_max_ms", "lag ms", "how far the load generator fell behind its schedule, worst (ms)"),
)


def summary_table(workload: Workload, results: list[dict[str, Any]]) -> str:
    """One row per load point: the server and its rate, then `COLUMNS` (failures and errors below it)."""
    header = ["server"] + [title for _, title, _ in COLUMNS]
    rows = [header]
    for result in results:
        label = str(result.get("label") or "run").removeprefix(f"{workload.name} ")
        if "failed" in result:
            rows.append([label, "failed"] + [""] * (len(COLUMNS) - 1))
            continue
        rows.append([label] + [cell(field_value(result, key), small_digits=3) for key, _, _ in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for result in results:
        problems = dict(result.get("errors") or {})
        for key in ("duplicates", "misrouted"):
            if result.get(key):
                problems[key] = result[key]
        if "failed" in result:
            lines.append(f"{result.get('label')}: failed: {result['failed']}")
        elif problems:
            lines.append(f"{result.get('label')}: errors {problems}")
    return "\n".join(lines)


def legend() -> str:
    """What each column of the tables means."""
    width = max(len(title) for _, title, _ in COLUMNS)
    lines = ["columns:", f"  {'server'.ljust(width)}  the server measured and the offered rate"]
    lines += [f"  {title.ljust(width)}  {meaning}" for _, title, meaning in COLUMNS]
    return "\n".join(lines)


def workloads_help() -> str:
    """The workloads, for --help."""
    lines = ["workloads (clients connected, rooms, clients sending, offered rates in msg/s):"]
    for workload in WORKLOADS.values():
        rates = " / ".join(f"{rate:,.0f}" for rate in workload.rates)
        lines.append(
            f"  {workload.name} {workload.title}: {workload.clients:,} clients in {workload.rooms} room(s), "
            f"{workload.senders} sending; {rates}"
        )
    lines += [
        "  W1 shows fan-out throughput and latency in one busy room, W2 a large fan-out per message,",
        "  W3 login time and memory per connection, W4 the per-message cost across many small rooms",
        "  (benchmarks/workloads.py, docs/performance.md).",
        "",
        "Run from the repository root: .venv/bin/python -m benchmarks.run --quick (about 15 s) checks",
        "the set-up.",
        "",
        legend(),
    ]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def git_head() -> str | None:
    """The checkout's commit, and whether chat_server/ or shared/ differ from it (then "+dirty")."""
    try:
        head = subprocess.run(
            ["git", "-C", str(CHECKOUT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(CHECKOUT), "status", "--porcelain", "--", "chat_server", "shared"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def pinning() -> tuple[int | None, bool]:
    """(the server's CPU, whether the load generator is pinned): pin only on two or more usable CPUs."""
    usable = os.sched_getaffinity(0)
    if SERVER_CPU in usable and LOADGEN_CPU in usable:
        os.sched_setaffinity(0, {LOADGEN_CPU})  # inherited by the load generator's worker processes
        return SERVER_CPU, True
    return None, False


def run_point(
    server_name: str, workload: Workload, rate: float, args: argparse.Namespace, server_cpu: int | None
) -> dict[str, Any]:
    """Start `server_name`, run one load point against it, stop it; return the result (or the failure)."""
    label = f"{workload.name} {server_name} {rate:g}/s" + (
        f" +{args.stalled} stalled" if args.stalled else ""
    )
    try:
        with started(server_name, cpu=server_cpu, source=args.mpchat_source) as server:
            spec = LoadSpec(
                host=server.host,
                port=server.port,
                clients=workload.clients,
                rooms=workload.rooms,
                senders=workload.senders,
                rate=rate,
                duration=args.duration,
                workers=min(args.workers, workload.clients),
                drain_timeout=args.drain_timeout,
                stalled=args.stalled,
                label=label,
            )
            result = run_load(spec, server.pid)
            if result["errors"] or result["delivery_ratio"] < 1.0:
                # Keep the server's last words with the result: its temporary folder is about to go.
                result["server_log_tail"] = tail(server.log, 30)
    except (LoadError, ServerError) as error:
        return {"label": label, "failed": str(error), "errors": {"run": 1}}
    result.update(workload=workload.name, server=result.get("server"), server_name=server_name)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the chosen workloads; exit status 1 if any point failed to run at all."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.splitlines()[0],
        epilog=workloads_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("workloads", nargs="*", default=list(WORKLOADS), help="W1 W2 W3 W4 (default: all)")
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument(
        "--duration", type=float, help=f"seconds of sending per point (default {DEFAULT_DURATION:g})"
    )
    parser.add_argument("--rates", type=float, nargs="+", help="override the workloads' rates")
    parser.add_argument("--repeat", type=int, default=1, help="run every point this many times")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--drain-timeout", type=float, default=5.0)
    parser.add_argument("--stalled", type=int, default=0, help="add clients that never read (fairness)")
    parser.add_argument("--quick", action="store_true", help="a few seconds in all: tiny workloads, 1 s each")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load generator to CPUs")
    parser.add_argument(
        "--mpchat-source", type=Path, help="import our server from this folder (e.g. a `git archive` export)"
    )
    parser.add_argument("--output", type=Path, help="results file (default benchmarks/results/<time>.json)")
    parser.add_argument(
        "--plot",
        action="store_true",
        help="draw SVG charts of the results beside the results file (the 'plot' extra)",
    )
    parser.add_argument(
        "--plot-from",
        type=Path,
        metavar="RESULTS",
        help="draw the charts of an earlier results file, run nothing",
    )
    parser.add_argument(
        "--plot-dir", type=Path, metavar="DIR", help="where the charts go (default: beside the results)"
    )
    args = parser.parse_args(argv)
    if args.plot_from is not None:
        return draw(args.plot_from, args.plot_dir)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print(NO_MATPLOTLIB, file=sys.stderr)  # said before the run, not after minutes of it
        return 2
    unknown = [name for name in args.workloads if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    if args.duration is None:
        args.duration = 1.0 if args.quick else DEFAULT_DURATION
    if args.quick:
        args.drain_timeout = min(args.drain_timeout, 3.0)
    server_cpu, pinned = (None, False) if args.no_pin else pinning()
    record: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "pinned": {"server_cpu": server_cpu, "loadgen_cpu": LOADGEN_CPU if pinned else None},
        "bench_settings": BENCH_SETTINGS,
        "instrument": "python benchmarks.loadgen",
        "mpchat_source": str(args.mpchat_source or CHECKOUT),
        "git_head": git_head(),
        "results": [],
    }
    for name in args.workloads:
        workload = WORKLOADS[name].quick() if args.quick else WORKLOADS[name]
        rates = tuple(args.rates) if args.rates else workload.rates
        rows = []
        for rate in rates:
            for _ in range(args.repeat):
                for server_name in args.servers:
                    result = run_point(server_name, workload, rate, args, server_cpu)
                    record["results"].append(result)
                    rows.append(result)
        print(
            f"\n{workload.name} {workload.title}: {workload.clients} clients, {workload.rooms} room(s), "
            f"{workload.senders} sender(s), {args.duration:g} s per point"
        )
        print(summary_table(workload, rows))
    print("\n" + legend())
    output = args.output or RESULTS / f"{record['started'].replace(':', '')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nresults written to {output}")
    if args.plot and draw(output, args.plot_dir) != 0:
        return 2
    return 1 if any("failed" in result for result in record["results"]) else 0


def draw(results: Path, folder: Path | None) -> int:
    """Draw the charts of `results` (benchmarks.plot); 2 without matplotlib."""
    from .plot import plot

    try:
        charts = plot(results, folder)
    except ModuleNotFoundError as error:
        if error.name != "matplotlib":
            raise
        print(NO_MATPLOTLIB, file=sys.stderr)
        return 2
    for chart in charts:
        print(f"chart written to {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
