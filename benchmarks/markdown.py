"""Render results files (from `benchmarks.run` or `benchmarks.cloadgen`) as Markdown tables for the docs.

    python -m benchmarks.markdown benchmarks/results/<time>.json [more.json ...]

One row per load point, in the order measured, with the figures docs/performance.md quotes. Figures are
rounded for reading; the JSON files keep the full values.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HEADER = (
    "| point | ratio | deliveries/s | p50 ms | p99 ms | max ms | server µs/delivery | server CPU % "
    "| switches/delivery | KiB/conn | login s | loadgen lag ms | load avg |"
)


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def row(result: dict[str, Any]) -> str:
    """One Markdown table row for one load point."""
    if "failed" in result:
        return f"| {result['label']} | failed: {result['failed'][:80]} |" + " |" * 11
    server = result.get("server") or {}
    per_conn = server.get("rss_kb_per_connection")
    if per_conn is None and server.get("rss_kb_ready") is not None:
        per_conn = (server["rss_kb_ready"] - server["rss_kb_start"]) / max(1, result.get("clients", 1))
    load = result.get("loadavg_end") or []
    cells = [
        result.get("label") or "",
        _num(result.get("delivery_ratio"), 3),
        _num(round(result.get("deliveries_per_s") or 0)),
        _num(result.get("p50_ms")),
        _num(result.get("p99_ms")),
        _num(result.get("max_ms")),
        _num(server.get("cpu_us_per_delivery"), 2),
        _num(server.get("cpu_msg_pct")),
        _num(server.get("switches_per_delivery"), 2),
        _num(per_conn),
        _num(result.get("login_s"), 2),
        _num(result.get("send_lag_max_ms")),
        _num(load[0] if load else None),
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    """Print one table per file."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.markdown", description=__doc__.splitlines()[0]
    )
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    for path in args.files:
        record = json.loads(path.read_text())
        machine = record.get("machine", {})
        print(f"\n{path.name}: {record.get('instrument')}, started {record.get('started')}, {machine}")
        print(HEADER)
        print("|" + "---|" * (HEADER.count("|") - 1))
        for result in record.get("results", []):
            print(row(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
