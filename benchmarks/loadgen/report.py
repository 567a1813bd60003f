"""Format load results as a readable table (the JSON is the record; this is for people)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COLUMNS: tuple[tuple[str, str], ...] = (
    ("label", "run"),
    ("clients", "clients"),
    ("rooms", "rooms"),
    ("senders", "senders"),
    ("rate_offered", "msg/s"),
    ("delivery_ratio", "ratio"),
    ("deliveries_per_s", "deliv/s"),
    ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("login_s", "login s"),
    ("server.cpu_us_per_delivery", "srv µs/deliv"),
    ("server.cpu_msg_pct", "srv cpu%"),
    ("server.switches_per_delivery", "srv cs/deliv"),
    ("server.rss_kb_per_connection", "KiB/conn"),
    ("loadgen_cpu_us_per_delivery", "lg µs/deliv"),
    ("send_lag_max_ms", "lag ms"),
)


def field_value(result: dict[str, Any], key: str) -> Any:
    """The value at a dotted `key` (``server.cpu_msg_pct``) of a result, or None where it is missing."""
    value: Any = result
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def cell(value: Any, small_digits: int = 4) -> str:
    """A table cell: thousands separated, `small_digits` decimals below 1, two below 100, none above."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value < 1:
            return f"{value:,.{small_digits}f}"
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(results: Sequence[dict[str, Any]]) -> str:
    """A plain-text table with one row per result, and a line for any errors."""
    rows = [[title for _, title in COLUMNS]]
    rows += [[cell(field_value(result, key)) for key, _ in COLUMNS] for result in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for result in results:
        problems = dict(result.get("errors") or {})
        for key in ("duplicates", "misrouted"):
            if result.get(key):
                problems[key] = result[key]
        if problems:
            lines.append(f"{result.get('label') or 'run'}: errors {problems}")
    return "\n".join(lines)
