"""File transfer through the client library, and how long the same client's chat messages wait meanwhile.

    python -m benchmarks.client_files [--size-mb 100] [--chat-interval 0.02] [--json]

A fresh `chat-server` process (rate limits lifted), two `ChatClient`s in this process. Three phases:

* idle: alice says a line every `--chat-interval` seconds, and waits for each one's `ack`;
* upload: alice sends a `--size-mb` file with `send_file` (hash, offer, chunks) and keeps saying lines on
  the same connection;
* download: bob gets the file with `get_file` (chunks, SHA-256 check, final name) and says lines likewise.

Reported: the throughput of each transfer as the user sees it (from the call to the verified end, so the
upload includes hashing the file first; MB/s, 1 MB = 10^6 bytes) and, per phase, the p50 / p99 / max time
from `say` to its `ack`. That time includes waiting in the client's own write buffer behind the file's
chunks: the figure that shows whether a big transfer delays the sender's chat (`Session.drain` keeps about
one chunk queued). The benchmark of the server side (chat between two *other* clients during a transfer) is
`benchmarks/files.py`. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.client_throughput import start_server
from chat_client import ChatClient, ClientOptions


async def chatter(client: ChatClient, interval: float, stop: asyncio.Event) -> list[float]:
    """Say a line every `interval` s until `stop`; return each line's say-to-ack time in seconds."""
    latencies: list[float] = []
    number = 0
    while not stop.is_set():
        started = time.perf_counter()
        await client.say("lobby", f"chat line {number} during the transfer", wait=True)
        latencies.append(time.perf_counter() - started)
        number += 1
        await asyncio.sleep(interval)
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds."""
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "count": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def drain_events(client: ChatClient) -> None:
    async for _ in client.events():
        pass


async def run(port: int, size: int, interval: float, folder: Path) -> dict[str, Any]:
    source = folder / "payload.bin"
    with source.open("wb") as out:
        for _ in range(size // (1 << 20)):
            out.write(os.urandom(1 << 20))
    options = ClientOptions(outbox_limit=100_000, request_timeout=60)
    async with (
        ChatClient("127.0.0.1", port, "alice", options=options) as alice,
        ChatClient(
            "127.0.0.1", port, "bob", options=ClientOptions(downloads_dir=folder / "downloads")
        ) as bob,
    ):
        readers = [asyncio.create_task(drain_events(c)) for c in (alice, bob)]
        results: dict[str, Any] = {"size_mb": size / 1e6}

        stop = asyncio.Event()
        idle = asyncio.create_task(chatter(alice, interval, stop))
        await asyncio.sleep(3)
        stop.set()
        results["idle"] = summary(await idle)

        stop = asyncio.Event()
        talking = asyncio.create_task(chatter(alice, interval, stop))
        started = time.perf_counter()
        info = await (await alice.send_file(source, room="lobby")).wait()
        results["upload_mb_s"] = size / 1e6 / (time.perf_counter() - started)
        stop.set()
        results["during_upload"] = summary(await talking)

        assert info.offer_id is not None
        offer_id = info.offer_id
        while bob.file_offer(offer_id) is None:
            await asyncio.sleep(0.01)
        stop = asyncio.Event()
        talking = asyncio.create_task(chatter(bob, interval, stop))
        started = time.perf_counter()
        got = await bob.get_file(offer_id).wait()
        results["download_mb_s"] = size / 1e6 / (time.perf_counter() - started)
        stop.set()
        results["during_download"] = summary(await talking)
        assert got.path is not None
        assert got.path.stat().st_size == size
        for reader in readers:
            reader.cancel()
    results["load_average"] = os.getloadavg()
    return results


def main() -> None:
    """Run the three phases once and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=100, help="file size in MiB (default 100)")
    parser.add_argument("--chat-interval", type=float, default=0.02, help="seconds between chat lines")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mpchat-client-files-") as tmp:
        folder = Path(tmp)
        (folder / "server").mkdir()
        server, port = start_server(folder / "server")
        try:
            results = asyncio.run(run(port, args.size_mb * (1 << 20), args.chat_interval, folder))
        finally:
            server.terminate()
            server.wait(10)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"file: {results['size_mb']:.1f} MB; load average {results['load_average']}")
    print(f"upload   {results['upload_mb_s']:6.1f} MB/s (send_file, hashing included)")
    print(f"download {results['download_mb_s']:6.1f} MB/s (get_file, SHA-256 check included)")
    for phase in ("idle", "during_upload", "during_download"):
        row = results[phase]
        print(
            f"say->ack {phase:16} n={row['count']:4d}  p50 {row['p50_ms']:6.1f} ms"
            f"  p99 {row['p99_ms']:6.1f} ms  max {row['max_ms']:6.1f} ms"
        )


if __name__ == "__main__":
    main()
