"""`python -m benchmarks.run --plot-from RESULTS` (benchmarks/plot.py): SVG charts of a results file, mpchat
next to the tutorial server; the results are in the format `benchmarks.run` writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import run as bench_run

ROOT = Path(__file__).resolve().parents[2]


def result(
    server: str, workload: str, rate: float, clients: int, deliveries: float, p99: float
) -> dict[str, Any]:
    """One load point as `benchmarks.run` records it (the fields the charts read)."""
    return {
        "server_name": server,
        "workload": workload,
        "rate_offered": rate,
        "clients": clients,
        "deliveries_per_s": deliveries,
        "p99_ms": p99,
        "server": {"rss_kb_per_connection": 30.0 if server == "mpchat" else 40.0},
    }


def results_file(folder: Path) -> Path:
    points = [
        result("mpchat", "W1", 1000, 100, 99_000, 5.0),
        result("tutorial", "W1", 1000, 100, 99_000, 9.0),
        result("mpchat", "W1", 5000, 100, 495_000, 12.0),
        result("tutorial", "W1", 5000, 100, 210_000, 3_500.0),
        result("mpchat", "W3", 100, 5000, 400, 8.0),
        {"label": "W3 tutorial 100/s", "failed": "the server did not start", "errors": {"run": 1}},
    ]
    path = folder / "run.json"
    path.write_text(json.dumps({"results": points}))
    return path


def test_plot_from_draws_each_chart_with_both_servers(tmp_path: Path) -> None:
    """Deliveries and p99 against the offered rate for W1 (two rates), memory per connection against the
    clients; each an SVG naming both servers; W3 (one rate) gets no rate chart; a failed point is skipped."""
    charts = tmp_path / "charts"
    assert bench_run.main(["--plot-from", str(results_file(tmp_path)), "--plot-dir", str(charts)]) == 0
    assert sorted(p.name for p in charts.iterdir()) == [
        "run-W1-deliveries.svg",
        "run-W1-p99.svg",
        "run-memory.svg",
    ]
    for chart in charts.iterdir():
        text = chart.read_text()
        assert text.lstrip().startswith("<?xml")
        assert "mpchat" in text
        assert "tutorial" in text
    assert "messages offered per second" in (charts / "run-W1-p99.svg").read_text()


def test_the_same_results_draw_the_same_files(tmp_path: Path) -> None:
    """Charts are regenerated, not drawn by hand: the same results give byte-identical SVG files."""
    results = results_file(tmp_path)
    for folder in ("a", "b"):
        assert bench_run.main(["--plot-from", str(results), "--plot-dir", str(tmp_path / folder)]) == 0
    for chart in (tmp_path / "a").iterdir():
        assert chart.read_bytes() == (tmp_path / "b" / chart.name).read_bytes()


def test_plot_without_matplotlib_says_so_before_running_anything(tmp_path: Path) -> None:
    """`--plot` where matplotlib is not installed: exit 2 with the install hint at once, no results file."""
    output = tmp_path / "run.json"
    hidden = "import sys; sys.modules['matplotlib'] = None; from benchmarks.run import main; "
    result = subprocess.run(
        [sys.executable, "-c", hidden + f"sys.exit(main(['W1', '--plot', '--output', {str(output)!r}]))"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install -e '.[plot]'" in result.stderr
    assert not output.exists()
    assert "W1" not in result.stdout  # no workload was run
