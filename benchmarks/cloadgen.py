"""Drive the servers with the C reference load generator (../shared/bench/loadgen.c), side by side.

    gcc -O2 -Wall -o /tmp/loadgen ../shared/bench/loadgen.c       # once; never commit the binary
    python -m benchmarks.cloadgen --loadgen /tmp/loadgen [--rates 1000 5000 20000] [--clients 100]

The Python load generator spends 1.5 to 9 µs of CPU per delivery; on a two-core machine, with the server on
the other core, it tops out near half a million deliveries per second. The C one spends 0.3 to 4 µs, so it is
the instrument for the high-rate figures (W1 at 20,000 msg/s, the sustained maximum). This runner starts
each server fresh per point exactly as `benchmarks.run` does (same server.toml, same CPU pinning), writes
the `frames` config with `benchmarks.frames.mkframes`, runs the binary on the other CPU, collects its JSON.
Only one room is supported (the C tool's frames mode has one message template).

Three variations, each recorded in the results:

* `--stalled K` (fairness): K more clients log in to the room first and then never read (with a small
  receive buffer); the server must drop them without slowing the others. Compare with `--stalled 0`.
* `--own-rooms` (login cost): every client logs in to a room of its own (``r`` + its 6-digit index), so a
  login costs no `joined` fan-out. Only `login_s` and the server's `cpu_login_s`/memory mean anything then:
  the messages go to a room nobody is in.
* `--setting KEY=VALUE` (e.g. `history_sync=NORMAL`): a server setting on top of the benchmark's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Hello, encode, encode_body

from .frames.mkframes import CONN, config_text
from .run import LOADGEN_CPU, RESULTS, git_head, machine, pinning
from .servers import BENCH_SETTINGS, SERVERS, ServerError, started

#: Seconds the C load generator may take beyond its sending time (login plus drain).
SLACK_S = 90.0
COLUMNS = ("delivery_ratio", "deliveries_per_s", "p50_ms", "p99_ms", "max_ms", "login_s", "send_lag_max_ms")
#: A stalled client's receive buffer: small, so the server's queue for it fills soon.
STALLED_RCVBUF = 4096
#: Seconds a stalled client may take to log in (it reads until its login is complete, then never again).
STALLED_LOGIN_S = 10.0


def own_rooms_config(size: int) -> str:
    """The frames config with each client logging in to a room of its own ("r" + its 6-digit index)."""
    stand_in_nick, stand_in_room = "u" + "9" * len(CONN), "r" + "9" * len(CONN)
    hello = encode_body(
        Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=stand_in_nick, rooms=(stand_in_room,))
    )
    hello = hello.replace(stand_in_nick.encode(), b"u" + CONN.encode())
    hello = hello.replace(stand_in_room.encode(), b"r" + CONN.encode())
    lines = config_text(size, "bench").splitlines()
    lines = [f"send = {hello.hex()}" if line.startswith("send = ") else line for line in lines]
    return "\n".join(["# each client in a room of its own (benchmarks.cloadgen --own-rooms)", *lines]) + "\n"


@contextlib.contextmanager
def stalled_clients(port: int, count: int, room: str) -> Iterator[list[socket.socket]]:
    """`count` clients logged in to `room` that never read again; closed on exit."""
    done_marker = msgpack.packb("type") + msgpack.packb("history")  # the last frame of a login
    sockets: list[socket.socket] = []
    try:
        for index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
            sock.connect(("127.0.0.1", port))
            hello = Hello(
                proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick=f"stalled{index}", rooms=(room,)
            )
            sock.sendall(encode(hello))
            received, deadline = b"", time.monotonic() + STALLED_LOGIN_S
            while done_marker not in received:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ServerError(f"stalled client {index} was refused: {received[-200:]!r}")
                received += chunk
        yield sockets
    except (OSError, TimeoutError) as error:
        raise ServerError(f"stalled clients could not log in: {error}") from error
    finally:
        for sock in sockets:
            sock.close()


def run_point(
    loadgen: Path, config: Path, server_name: str, rate: float, args: argparse.Namespace, cpu: int | None
) -> dict[str, Any]:
    """One C-loadgen run against a fresh server; the parsed JSON line, or the failure."""
    label = f"{server_name} {rate:g}/s" + (f" +{args.stalled} stalled" if args.stalled else "")
    settings = args.settings if server_name == "mpchat" else None
    try:
        with (
            started(server_name, cpu=cpu, source=args.mpchat_source, settings=settings) as server,
            stalled_clients(server.port, args.stalled, "bench"),
        ):
            command = [str(loadgen), "--mode", "frames", "-c", str(config), "--port", str(server.port)]
            command += ["-n", str(args.clients), "-s", str(args.senders), "-r", f"{rate:g}"]
            command += ["-d", f"{args.duration:g}", "--pid", str(server.pid), "--label", label]
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + SLACK_S)
    except (ServerError, subprocess.TimeoutExpired) as error:
        return {"label": label, "failed": str(error)}
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"label": label, "failed": f"no JSON from loadgen: {done.stderr.strip()[-300:]}"}
    result.update(server_name=server_name, loadavg_end=[round(x, 2) for x in os.getloadavg()])
    return result


def parse_setting(item: str) -> tuple[str, int | float | str]:
    """`KEY=VALUE` from the command line: the value as an integer, a float or else a string."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--setting wants KEY=VALUE, got {item!r}")
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return key, kind(value)
    return key, value


def row(result: dict[str, Any]) -> str:
    """One readable line."""
    if "failed" in result:
        return f"{result['label']:>22}  FAILED: {result['failed']}"
    server = result.get("server") or {}
    cells = [f"{result['label']:>22}"] + [f"{result.get(key)!s:>10}" for key in COLUMNS]
    cells += [f"{server.get('cpu_us_per_delivery')!s:>8}", f"{server.get('cpu_msg_pct')!s:>6}"]
    cells += [f"{result.get('loadgen_cpu_msg_pct')!s:>6}", f"{server.get('cpu_login_s')!s:>8}"]
    cells += [f"{kib_per_connection(result)!s:>8}", str(result.get("errors"))]
    return "  ".join(cells)


def kib_per_connection(result: dict[str, Any]) -> float | None:
    """The server's resident memory gained by logging the clients in, per client (KiB)."""
    server = result.get("server") or {}
    if "rss_kb_ready" not in server or not result.get("connections"):
        return None
    gained = float(server["rss_kb_ready"] - server["rss_kb_start"])
    return round(gained / int(result["connections"]), 1)


def main(argv: list[str] | None = None) -> int:
    """Run every rate against every server, alternating servers; print and record the results."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cloadgen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--loadgen", type=Path, default=Path("/tmp/loadgen"), help="the built C binary")
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 5000.0, 20000.0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--mpchat-source", type=Path, help="import our server from this folder")
    parser.add_argument("--stalled", type=int, default=0, help="clients in the room that never read")
    parser.add_argument(
        "--own-rooms", action="store_true", help="each client in a room of its own (login cost)"
    )
    parser.add_argument(
        "--setting", action="append", default=[], metavar="KEY=VALUE", help="a setting for our server"
    )
    parser.add_argument("--output", type=Path, help="results file (default benchmarks/results/c-<time>.json)")
    args = parser.parse_args(argv)
    try:
        args.settings = dict(parse_setting(item) for item in args.setting)
    except ValueError as error:
        parser.error(str(error))
    if not os.access(args.loadgen, os.X_OK):
        parser.error(f"{args.loadgen} is not an executable: build it with gcc (see the module docstring)")
    server_cpu, pinned = pinning()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    record: dict[str, Any] = {
        "started": started_at,
        "machine": machine(),
        "pinned": {"server_cpu": server_cpu, "loadgen_cpu": LOADGEN_CPU if pinned else None},
        "bench_settings": BENCH_SETTINGS,
        "settings": args.settings,
        "stalled": args.stalled,
        "own_rooms": args.own_rooms,
        "instrument": "C loadgen (frames mode)",
        "git_head": git_head(),
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="cbench-") as folder:
        config = Path(folder) / "mpchat.frames"
        config.write_text(own_rooms_config(64) if args.own_rooms else config_text(64, "bench"))
        rooms = f"{args.clients} rooms of 1" if args.own_rooms else "1 room"
        print(f"{args.clients} clients, {rooms}, {args.senders} senders, {args.duration:g} s per point")
        print(
            f"{'run':>22}  "
            + "  ".join(f"{c[:10]:>10}" for c in COLUMNS)
            + "  srv µs    srv%    lg%  login cpu  KiB/conn"
        )
        for rate in args.rates:
            for _ in range(args.repeat):
                for server_name in args.servers:
                    result = run_point(args.loadgen, config, server_name, rate, args, server_cpu)
                    record["results"].append(result)
                    print(row(result), flush=True)
    output = args.output or RESULTS / f"c-{started_at.replace(':', '')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"results written to {output}")
    return 1 if any("failed" in result for result in record["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
