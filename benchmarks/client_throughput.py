"""How many incoming messages per second the TUI absorbs while its input line stays responsive.

    python -m benchmarks.client_throughput [--rates 200 500 1000 2000 4000] [--seconds 3] [--default-gc]

For each rate: a fresh `chat-server` process (rate limits lifted), the real `ChatApp` in this process
(headless, 120x40, through `App.run_test`), and a flooding library client in a third process sending to
the room at the given rate. While the flood runs, a key is pressed in the input line every 100 ms and the
time until the input shows it is recorded. Reported per rate: messages absorbed per second (first to last
message shown in the model), and the p50/p99/max key latency. A headless app does all the work of a real
one except writing the frames to a terminal, so the figures are an upper bound for a fast terminal. The
GC is tuned as `chat-client` tunes it (chat_client/tui/startup.py) unless `--default-gc` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from textual import events

from chat_client.model.chat import Buffer
from shared.discovery import LOOPBACK_ONLY_ENV

# Benchmarks send nothing beyond loopback: any LAN discovery the app might start stays on 127.0.0.0/8.
os.environ.setdefault(LOOPBACK_ONLY_ENV, "1")

ROOT = Path(__file__).resolve().parents[1]
SERVER_TOML = """\
rate_messages = 1000000.0
rate_burst = 1000000
rate_bytes = 1000000000.0
rate_bytes_burst = 1000000000
flood_refusals = 1000000
sendq_hard = 67108864
sendq_soft = 33554432
history_sync = "NORMAL"
"""


def start_server(folder: Path) -> tuple[subprocess.Popen[str], int]:
    """A fresh chat-server process with the rate limits lifted; returns it and its port."""
    config = folder / "server.toml"
    config.write_text(SERVER_TOML, encoding="utf-8")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chat_server",
            "--port",
            "0",
            "--data-dir",
            str(folder),
            "--config",
            str(config),
            "--log-level",
            "ERROR",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("mpchat server listening on "):
        server.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return server, int(line.rsplit(":", 1)[1])


async def flood(host: str, port: int, rate: float, seconds: float) -> int:
    """Send to #lobby at `rate` messages per second for `seconds`; return how many were sent."""
    from chat_client import ChatClient, ClientOptions

    options = ClientOptions(outbox_limit=1_000_000)
    async with ChatClient(host, port, "flood", options=options) as client:

        async def ignore_events() -> None:
            async for _ in client.events():
                pass

        reader = asyncio.create_task(ignore_events())
        sent = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate) + 1
            while sent < due:
                await client.say("lobby", f"flood message number {sent} with some ordinary chat-sized text")
                sent += 1
            await asyncio.sleep(0.005)
        await client.wait_delivered(60)
        reader.cancel()
        return sent


def shown_count(buffer: Buffer) -> int:
    """How many flood messages the log has shown: the number in the newest one, plus one (O(1))."""
    for line in reversed(buffer.lines):
        if line.nick == "flood":
            return int(line.text.split()[3]) + 1
    return 0


async def measure(
    port: int, rate: float, seconds: float, folder: Path, tuned_gc: bool = True
) -> dict[str, Any]:
    """Run the TUI while a flood process sends at `rate`; return the figures."""
    from chat_client.tui.app import ChatApp
    from chat_client.tui.screens.chat import ChatScreen
    from chat_client.tui.startup import tune_gc
    from chat_client.tui.widgets.chat_input import ChatInput

    app = ChatApp(host="127.0.0.1", port=port, nick="reader", connect_now=True, config_dir=folder)
    if tuned_gc:
        tune_gc()  # as `chat-client` does once its modules are loaded (ChatApp after_start)
    latencies: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not isinstance(app.screen, ChatScreen) or app.screen.model.current != "#lobby":
            await asyncio.sleep(0.01)
        screen = app.screen
        buffer = screen.model.buffers["#lobby"]
        chat_input = screen.query_one(ChatInput)
        sender = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.client_throughput",
            "--flood",
            str(port),
            str(rate),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        first: float | None = None
        last = 0.0
        seen = 0
        deadline = time.perf_counter() + seconds + 60
        next_key = time.perf_counter() + 0.1
        while sender.returncode is None and time.perf_counter() < deadline:
            count = shown_count(buffer)
            if count > seen:
                now = time.perf_counter()
                first = first or now
                last, seen = now, count
            if time.perf_counter() >= next_key:
                before = chat_input.value
                pressed = time.perf_counter()
                app.post_message(events.Key("x", "x"))
                while chat_input.value == before:
                    await asyncio.sleep(0.0005)
                latencies.append(time.perf_counter() - pressed)
                next_key = time.perf_counter() + 0.1
            await asyncio.sleep(0.002)
            if sender.stdout is not None and sender.stdout.at_eof():
                break
        output = await sender.stdout.read() if sender.stdout else b""
        await sender.wait()
        sent = int(output.decode().strip() or 0)
        drained = time.perf_counter() + 30
        while time.perf_counter() < drained:
            count = shown_count(buffer)
            if count > seen:
                last, seen = time.perf_counter(), count
                first = first or last
            if count >= sent:
                break
            await asyncio.sleep(0.005)
        shown = screen.model.status.value
        await pilot.pause()
    absorbed = (seen - 1) / (last - first) if first and last > first else 0.0
    return {
        "rate": rate,
        "sent": sent,
        "shown": seen,
        "absorbed_per_s": round(absorbed),
        "key_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "key_p99_ms": round(sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if latencies
        else None,
        "key_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "keys": len(latencies),
        "status": shown,
    }


def main() -> None:
    """Measure each rate with a fresh server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rates", type=float, nargs="+", default=[200, 500, 1000, 2000, 4000])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep the interpreter's GC settings (chat-client tunes them)",
    )
    parser.add_argument("--flood", nargs=3, metavar=("PORT", "RATE", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        port, rate, seconds = int(args.flood[0]), float(args.flood[1]), float(args.flood[2])
        print(asyncio.run(flood("127.0.0.1", port, rate, seconds)))
        return
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    rows = []
    for rate in args.rates:
        with tempfile.TemporaryDirectory() as folder:
            server, port = start_server(Path(folder))
            try:
                rows.append(asyncio.run(measure(port, rate, args.seconds, Path(folder), not args.default_gc)))
            finally:
                server.terminate()
                server.wait(timeout=10)
        if not args.json:
            row = rows[-1]
            print(
                f"offered {row['rate']:>6g}/s  sent {row['sent']:>6}  absorbed {row['absorbed_per_s']:>6}/s  "
                f"key p50 {row['key_p50_ms']} ms  p99 {row['key_p99_ms']} ms  max {row['key_max_ms']} ms",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
