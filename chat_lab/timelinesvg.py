"""A picture of a thread timeline (`chat-lab timeline --svg FILE`): one lane per server thread, a mark for
every call it made, so one sees at a glance which thread works when. The trace itself (Perfetto) has the
detail; this is the screenshot for a page, drawn from the file, never by hand (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The lanes, top to bottom: the threads a message passes (readers in between), then the rest.
ORDER = ("acceptor", "reader", "history", "sender")
#: Calls longer than this (µs) are left out: a thread's loop, or a call that waits, spans its whole life.
LONGEST_CALL_US = 1000
#: Calls closer than this (ms) are drawn as one busy stretch.
GAP_MS = 0.02
#: Lane colours by thread kind.
COLOURS = {"acceptor": "#7f7f7f", "reader": "#1f77b4", "history": "#2ca02c", "sender": "#d62728"}


def _kind(name: str) -> str:
    return "reader" if name.endswith("-reader") else name


def lanes(trace: Path) -> dict[str, list[tuple[float, float]]]:
    """Per server thread (acceptor, conn-N-reader, history, sender), when it was busy: its calls (those not
    longer than `LONGEST_CALL_US`, merged when nested or close) as (start, length) in ms from the first."""
    data: dict[str, Any] = json.loads(trace.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {
        e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    wanted = {tid: name for tid, name in names.items() if _kind(name) in ORDER}
    spans: dict[str, list[tuple[float, float]]] = {name: [] for name in wanted.values()}
    for event in events:
        if event.get("ph") == "X" and event.get("tid") in wanted and event.get("dur", 0) <= LONGEST_CALL_US:
            spans[wanted[event["tid"]]].append((float(event["ts"]), max(float(event.get("dur", 0)), 1.0)))
    start = min((s for spans_ in spans.values() for s, _ in spans_), default=0.0)
    return {
        name: _merged([((s - start) / 1000, d / 1000) for s, d in sorted(spans_)])
        for name, spans_ in sorted(spans.items(), key=lambda item: (ORDER.index(_kind(item[0])), item[0]))
    }


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Nested and touching calls as one busy stretch (calls less than `GAP_MS` apart join)."""
    merged: list[tuple[float, float]] = []
    for begin, length in spans:
        if merged and begin <= merged[-1][0] + merged[-1][1] + GAP_MS:
            last_begin, last_length = merged[-1]
            merged[-1] = (last_begin, max(last_length, begin + length - last_begin))
        else:
            merged.append((begin, length))
    return merged


def draw(trace: Path, svg: Path) -> Path:
    """Draw the lanes of `trace` into the SVG file `svg`; return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "mpchat"
    plt.rcParams["svg.fonttype"] = "none"
    rows = lanes(trace)
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
    for index, (name, spans) in enumerate(reversed(list(rows.items()))):
        axes.broken_barh(spans, (index - 0.35, 0.7), facecolors=COLOURS[_kind(name)], linewidth=0)
    axes.set_yticks(range(len(rows)), list(reversed(list(rows))))
    axes.set_xlabel("milliseconds")
    axes.set_title("mpchat server threads during a scripted chat (chat-lab timeline)")
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(svg, format="svg", metadata={"Date": None})
    plt.close(figure)
    return svg
