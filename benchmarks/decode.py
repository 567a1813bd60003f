"""Measure the protocol decoder: frames per second for a typical chat message, fed whole and byte by byte.

Usage: python -m benchmarks.decode [--frames N] [--json]

"Whole" hands the decoder one chunk holding N frames (what a busy connection's recv() returns); "byte by byte"
hands it one byte per call (the worst case a peer can force). Both go through `ProtocolConnection`, the same
path the server uses: reassembly, msgpack decoding and field validation.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from shared import Hello, ProtocolConnection, Role, Say, encode

#: A `say` frame of about 100 bytes, the size of a typical chat line with its envelope.
TYPICAL = Say(
    room="lobby", text="see you at the stand-up in ten minutes, bring the numbers", client_msg_id="c-12345"
)


def logged_in_server() -> ProtocolConnection:
    """A server-side connection past its hello, ready to decode requests."""
    connection = ProtocolConnection(Role.SERVER)
    connection.receive_data(encode(Hello(proto="mpchat", version=1, nick="bench")))
    list(connection.events())
    return connection


def run_whole(frames: int) -> float:
    """Seconds to decode `frames` frames handed over in one chunk."""
    stream = encode(TYPICAL) * frames
    connection = logged_in_server()
    start = time.perf_counter()
    connection.receive_data(stream)
    count = sum(1 for _ in connection.events())
    elapsed = time.perf_counter() - start
    assert count == frames
    return elapsed


def run_byte_by_byte(frames: int) -> float:
    """Seconds to decode `frames` frames handed over one byte at a time."""
    stream = encode(TYPICAL) * frames
    connection = logged_in_server()
    count = 0
    start = time.perf_counter()
    for index in range(len(stream)):
        connection.receive_data(stream[index : index + 1])
        for _ in connection.events():
            count += 1
    elapsed = time.perf_counter() - start
    assert count == frames
    return elapsed


def best_of(runs: int, measure: Callable[[int], float], frames: int) -> float:
    """The fastest of `runs` runs, in frames per second (the least disturbed by other load)."""
    return frames / min(measure(frames) for _ in range(runs))


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args()
    frame_size = len(encode(TYPICAL))
    whole = best_of(args.runs, run_whole, args.frames)
    bytewise = best_of(args.runs, run_byte_by_byte, max(1, args.frames // 20))
    if args.json:
        print(
            json.dumps(
                {"frame_bytes": frame_size, "whole_fps": round(whole), "byte_by_byte_fps": round(bytewise)}
            )
        )
        return
    print(f"frame size: {frame_size} bytes (header included)")
    print(f"whole chunk:  {whole:>10,.0f} frames/s  ({1e6 / whole:.2f} µs per frame)")
    print(f"byte by byte: {bytewise:>10,.0f} frames/s  ({1e6 / bytewise:.2f} µs per frame)")


if __name__ == "__main__":
    main()
