"""Drive the servers with the C reference load generator (../shared/bench/loadgen.c), side by side.

    gcc -O2 -Wall -o /tmp/loadgen ../shared/bench/loadgen.c       # once; never commit the binary
    python -m benchmarks.cloadgen --loadgen /tmp/loadgen [--rates 1000 5000 20000] [--clients 100]

The Python load generator spends 1.5 to 9 µs of CPU per delivery; on a two-core machine, with the server on
the other core, it tops out near half a million deliveries per second. The C one spends 0.3 to 4 µs, so it is
the instrument for the high-rate figures (W1 at 20,000 msg/s, the sustained maximum). This runner starts
each server fresh per point exactly as `benchmarks.run` does (same server.toml, same CPU pinning), writes
the `frames` config with `benchmarks.frames.mkframes`, runs the binary on the other CPU, collects its JSON.
Only one room is supported (the C tool's frames mode has one message template).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .frames.mkframes import config_text
from .run import LOADGEN_CPU, RESULTS, git_head, machine, pinning
from .servers import BENCH_SETTINGS, SERVERS, ServerError, started

#: Seconds the C load generator may take beyond its sending time (login plus drain).
SLACK_S = 90.0
COLUMNS = ("delivery_ratio", "deliveries_per_s", "p50_ms", "p99_ms", "max_ms", "login_s", "send_lag_max_ms")


def run_point(
    loadgen: Path, config: Path, server_name: str, rate: float, args: argparse.Namespace, cpu: int | None
) -> dict[str, Any]:
    """One C-loadgen run against a fresh server; the parsed JSON line, or the failure."""
    label = f"{server_name} {rate:g}/s"
    try:
        with started(server_name, cpu=cpu, source=args.mpchat_source) as server:
            command = [str(loadgen), "--mode", "frames", "-c", str(config), "--port", str(server.port)]
            command += ["-n", str(args.clients), "-s", str(args.senders), "-r", f"{rate:g}"]
            command += ["-d", f"{args.duration:g}", "--pid", str(server.pid), "--label", label]
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + SLACK_S)
    except (ServerError, subprocess.TimeoutExpired) as error:
        return {"label": label, "failed": str(error)}
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"label": label, "failed": f"no JSON from loadgen: {done.stderr.strip()[-300:]}"}
    result.update(server_name=server_name, loadavg_end=[round(x, 2) for x in os.getloadavg()])
    return result


def row(result: dict[str, Any]) -> str:
    """One readable line."""
    if "failed" in result:
        return f"{result['label']:>22}  FAILED: {result['failed']}"
    server = result.get("server") or {}
    cells = [f"{result['label']:>22}"] + [f"{result.get(key)!s:>10}" for key in COLUMNS]
    cells += [f"{server.get('cpu_us_per_delivery')!s:>8}", f"{server.get('cpu_msg_pct')!s:>6}"]
    cells += [f"{result.get('loadgen_cpu_msg_pct')!s:>6}", str(result.get("errors"))]
    return "  ".join(cells)


def main(argv: list[str] | None = None) -> int:
    """Run every rate against every server, alternating servers; print and record the results."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cloadgen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--loadgen", type=Path, default=Path("/tmp/loadgen"), help="the built C binary")
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 5000.0, 20000.0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--mpchat-source", type=Path, help="import our server from this folder")
    parser.add_argument("--output", type=Path, help="results file (default benchmarks/results/c-<time>.json)")
    args = parser.parse_args(argv)
    if not os.access(args.loadgen, os.X_OK):
        parser.error(f"{args.loadgen} is not an executable: build it with gcc (see the module docstring)")
    server_cpu, pinned = pinning()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    record: dict[str, Any] = {
        "started": started_at,
        "machine": machine(),
        "pinned": {"server_cpu": server_cpu, "loadgen_cpu": LOADGEN_CPU if pinned else None},
        "bench_settings": BENCH_SETTINGS,
        "instrument": "C loadgen (frames mode)",
        "git_head": git_head(),
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="cbench-") as folder:
        config = Path(folder) / "mpchat.frames"
        config.write_text(config_text(64, "bench"))
        print(f"{args.clients} clients, 1 room, {args.senders} senders, {args.duration:g} s per point")
        print(f"{'run':>22}  " + "  ".join(f"{c[:10]:>10}" for c in COLUMNS) + "  srv µs    srv%    lg%")
        for rate in args.rates:
            for _ in range(args.repeat):
                for server_name in args.servers:
                    result = run_point(args.loadgen, config, server_name, rate, args, server_cpu)
                    record["results"].append(result)
                    print(row(result), flush=True)
    output = args.output or RESULTS / f"c-{started_at.replace(':', '')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"results written to {output}")
    return 1 if any("failed" in result for result in record["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
