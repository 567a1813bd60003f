"""Start-up time of the client: process start to the first painted frame of the TUI, in a real pty.

    python -m benchmarks.client_startup [--runs 10] [--json]

Each run starts `python -m chat_client` (the connect screen; no server needed) in a fresh pseudo-terminal
of 100x30, reads what it draws until the connect form's "Connect" button is on screen, then presses
Ctrl+Q and waits for the exit. Also timed: importing the client library alone (what a bot pays) and the
TUI modules. Medians and ranges over the runs.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

from shared.discovery import LOOPBACK_ONLY_ENV

ROOT = Path(__file__).resolve().parents[1]
#: Seconds one run may take before it is counted as a failure.
RUN_TIMEOUT = 30.0


def first_paint(config_dir: str) -> float:
    """Seconds from spawning the TUI to the connect form being drawn (then quit it)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {
        **os.environ,
        LOOPBACK_ONLY_ENV: "1",  # the connect screen listens for LAN servers: never broadcast from here
        "TERM": "xterm-256color",
        "MPCHAT_CONFIG_DIR": config_dir,
        "TEXTUAL_ANIMATIONS": "none",
    }
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "chat_client"], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT
    )
    os.close(slave)
    seen = b""
    painted: float | None = None
    try:
        deadline = start + RUN_TIMEOUT
        while painted is None and time.perf_counter() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                if b"Connect" in seen:
                    painted = time.perf_counter() - start
        os.write(master, b"\x11")  # Ctrl+Q
        end = time.perf_counter() + 10
        while process.poll() is None and time.perf_counter() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(master)
    if painted is None:
        raise RuntimeError("the TUI did not paint its connect screen in time")
    return painted


def import_time(module: str) -> float:
    """Seconds for a fresh interpreter to import `module` (minus the bare interpreter start)."""

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - start

    bare = min(run("pass") for _ in range(3))
    return min(run(f"import {module}") for _ in range(3)) - bare


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description="mpchat client start-up time")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as config_dir:
        paints = [first_paint(config_dir) for _ in range(args.runs)]
    result: dict[str, Any] = {
        "first_paint_median_s": round(statistics.median(paints), 3),
        "first_paint_min_s": round(min(paints), 3),
        "first_paint_max_s": round(max(paints), 3),
        # What a bot pays: `chat_client` itself loads its names lazily, so time the module behind ChatClient.
        "import_library_s": round(import_time("chat_client.net.client"), 3),
        "import_tui_s": round(import_time("chat_client.tui.app"), 3),
        "runs": args.runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
