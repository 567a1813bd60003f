"""The lessons, in reading order (docs/lessons.md): each a short script, `chat-lab lesson N` runs it.

Every lesson module has `run(out)`: it narrates to `out` and returns what it saw, so the test suite runs each
lesson and checks that it still shows what its page says it shows.
"""

from __future__ import annotations

import importlib
from typing import Any, TextIO

#: Number -> (module in this package, title).
LESSONS: dict[int, tuple[str, str]] = {
    1: ("echo", "the echo server; the handshake and the close in `ss -tan`; SO_REUSEADDR"),
    2: ("sticky", "sticky packets: a byte stream, not messages; the length prefix; a struct file header"),
    3: ("udp", "UDP: the time query and the beacon through loss, duplication and reordering"),
    4: ("many", "from two to many: the tutorial server stalls behind one slow reader, mpchat does not"),
    5: ("faults", "timeouts, errors and resource release: a peer that vanishes, freezes or sends garbage"),
}


def run_lesson(number: int, out: TextIO) -> Any:
    """Run lesson `number`, narrating to `out`; return its findings."""
    module = importlib.import_module(f"{__name__}.{LESSONS[number][0]}")
    return module.run(out)
