"""A short run of the soak (benchmarks/soak.py): clients come and go, and nothing acknowledged is lost."""

from __future__ import annotations

import json

import pytest

from benchmarks import soak


def test_a_short_soak_loses_nothing_and_reports_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Six clients for 15 s with drops every 3-8 s, against a real server process: every message that had
    to reach a connected client did; the canary, /proc samples and reconnects are all reported."""
    status = soak.main(["--clients", "6", "--seconds", "15", "--disconnect", "3", "8", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0, result
    assert result["lost"] == 0
    assert result["required_deliveries"] > 100  # 6 clients x 2 msg/s x 15 s, each to most of the others
    assert result["reconnects"] >= 6  # every client dropped its connection at least once
    assert result["canary_lines"] > 20
    assert result["canary_p99_ms"] is not None
    assert result["rss_kb_end"] > 0
    assert result["threads_range"][0] > 0
    assert result["fds_range"][0] > 0
