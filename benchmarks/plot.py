"""Charts of a benchmark run (`python -m benchmarks.run --plot`, or `--plot-from RESULTS.json`): SVG files,
mpchat next to the tutorial server.

For every workload with more than one rate: deliveries per second against the offered rate, and the 99th
percentile latency against the offered rate (log scale: the tutorial server's grows by orders of
magnitude past saturation). Across the workloads: server memory per connection against the number of
clients. Needs the `plot` extra (matplotlib); the charts are drawn without a display (the Agg backend).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

#: Line colour and marker per server, the same in every chart.
STYLE = {"mpchat": ("#1f77b4", "o"), "tutorial": ("#d62728", "s")}


def _series(results: list[dict[str, Any]], workload: str, key: str) -> dict[str, list[tuple[float, float]]]:
    """Per server, the (offered rate, `key`) points of `workload`, averaged over repeats, by rate."""
    points: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        if result.get("workload") != workload or "failed" in result:
            continue
        value = _value(result, key)
        if value is not None:
            points[result["server_name"]][float(result["rate_offered"])].append(value)
    return {
        server: sorted((rate, sum(values) / len(values)) for rate, values in by_rate.items())
        for server, by_rate in points.items()
    }


def _value(result: dict[str, Any], key: str) -> float | None:
    value: Any = result
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def plot(results_file: Path, folder: Path | None = None) -> list[Path]:
    """Draw the charts of `results_file` into `folder` (default: beside it); return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = json.loads(results_file.read_text())
    results: list[dict[str, Any]] = record["results"]
    folder = folder or results_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    stem = results_file.stem
    written = []
    plt.rcParams["svg.hashsalt"] = "mpchat"  # the same data draws the same file
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller files, searchable, selectable
    workloads = sorted({r["workload"] for r in results if "workload" in r})
    charts = (
        ("deliveries_per_s", "deliveries per second", "deliveries", False),
        ("p99_ms", "latency, 99th percentile (ms)", "p99", True),
    )
    for workload in workloads:
        for key, label, name, log_scale in charts:
            series = _series(results, workload, key)
            if not series or max(len(points) for points in series.values()) < 2:
                continue
            figure, axes = plt.subplots(figsize=(6, 4))
            for server, points in sorted(series.items()):
                colour, marker = STYLE.get(server, ("black", "x"))
                axes.plot(*zip(*points, strict=True), marker=marker, color=colour, label=server)
            axes.set_xlabel("messages offered per second")
            axes.set_ylabel(label)
            if log_scale:
                axes.set_yscale("log")
            axes.set_title(f"{workload}: {label}")
            axes.grid(True, alpha=0.3)
            axes.legend()
            path = folder / f"{stem}-{workload}-{name}.svg"
            figure.savefig(path, format="svg", metadata={"Date": None})
            plt.close(figure)
            written.append(path)
    memory: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for result in results:
        per_connection = _value(result, "server.rss_kb_per_connection")
        if per_connection is not None and "failed" not in result:
            memory[result["server_name"]].append((float(result["clients"]), per_connection))
    if memory:
        figure, axes = plt.subplots(figsize=(6, 4))
        for server, points in sorted(memory.items()):
            colour, marker = STYLE.get(server, ("black", "x"))
            axes.scatter(*zip(*sorted(points), strict=True), marker=marker, color=colour, label=server)
        axes.set_xlabel("clients")
        axes.set_ylabel("server memory per connection (KiB)")
        axes.set_title("memory per connection")
        axes.grid(True, alpha=0.3)
        axes.legend()
        path = folder / f"{stem}-memory.svg"
        figure.savefig(path, format="svg", metadata={"Date": None})
        plt.close(figure)
        written.append(path)
    return written
