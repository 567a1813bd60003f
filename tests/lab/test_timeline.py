"""`chat-lab timeline` (docs/lab.md): a traced scripted chat, written as a trace of the server's threads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chat_lab.timeline import record_timeline


def thread_names(trace: Path) -> set[str]:
    """The thread names a Chrome/Perfetto JSON trace declares (its `thread_name` metadata events)."""
    data = json.loads(trace.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    return {e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}


def test_the_timeline_names_the_servers_threads(tmp_path: Path) -> None:
    """The trace shows the acceptor, the history and sender threads, and a reader per client (three)."""
    names = thread_names(record_timeline(tmp_path / "trace.json", lines=1))
    assert {"acceptor", "history", "sender"} <= names
    assert {f"conn-{n}-reader" for n in (1, 2, 3)} <= names


def test_the_timeline_holds_the_hand_offs(tmp_path: Path) -> None:
    """Each thread's own work is in the trace: the readers decode, the history thread stores, the sender
    writes (function names from chat_server and shared, each on its thread)."""
    trace = record_timeline(tmp_path / "trace.json", lines=1)
    data = json.loads(trace.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {
        e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    calls: dict[str, set[str]] = {}
    for event in events:
        if event.get("ph") == "X":
            calls.setdefault(names.get(event["tid"], "?"), set()).add(event["name"])
    assert any("decode_body" in name for name in calls.get("conn-1-reader", set()))
    assert calls.get("history")
    assert calls.get("sender")


def test_chat_lab_timeline_writes_the_file(tmp_path: Path) -> None:
    """The command writes the trace where --out says, and says where it is."""
    out = tmp_path / "t.json"
    result = subprocess.run(
        [sys.executable, "-m", "chat_lab", "timeline", "--out", str(out), "--lines", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert str(out) in result.stdout
    assert "history" in thread_names(out)


def test_the_picture_has_a_lane_per_server_thread(tmp_path: Path) -> None:
    """`--svg`: an SVG with one named lane for the acceptor, each reader, history and sender, and each lane
    holds the stretches its thread was busy."""
    from chat_lab.timelinesvg import draw, lanes

    trace = record_timeline(tmp_path / "trace.json", lines=1)
    rows = lanes(trace)
    assert next(iter(rows)) == "acceptor"
    assert list(rows)[-2:] == ["history", "sender"]
    assert all(rows[name] for name in ("conn-1-reader", "history", "sender"))
    text = draw(trace, tmp_path / "timeline.svg").read_text()
    for name in ("acceptor", "conn-1-reader", "conn-3-reader", "history", "sender"):
        assert f">{name}<" in text


def test_without_the_lab_extra_it_says_how_to_install_it(tmp_path: Path) -> None:
    """Where viztracer is not installed: exit 2, the install hint, no trace file (docs/lab.md)."""
    out = tmp_path / "t.json"
    hidden = "import sys; sys.modules['viztracer'] = None; from chat_lab.__main__ import main; "
    result = subprocess.run(
        [sys.executable, "-c", hidden + f"sys.exit(main(['timeline', '--out', {str(out)!r}]))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install 'mpchat[lab]'" in result.stdout + result.stderr
    assert not out.exists()
