"""Profile our server under a workload with py-spy, and list where its CPU time goes.

    pip install py-spy                       # not a project dependency: only this tool needs it
    python -m benchmarks.profile [--workload W1] [--rate 1000] [--duration 8] [--gil] [--top 25]

It starts the server exactly as `benchmarks.run` does (pinned to CPU 0, benchmark server.toml), attaches
`py-spy record` (raw "collapsed stack" output) once every client is logged in, for the message phase of one
load point, then prints the functions with the highest share of samples: "self" is time spent in the
function's own code, "total" time spent in it or anything it called. Idle threads (blocked in a wait) are
not sampled, so the shares are of the server's busy time. With `--gil` only the thread holding the GIL is
sampled: the serial part of the work.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .loadgen import LoadSpec, run_load, table
from .run import pinning
from .servers import started
from .workloads import WORKLOADS

_FRAME = re.compile(r"^(?P<name>.+?) \((?P<file>[^()]+?)(?::\d+)?\)$")


def summarise(collapsed: str, top: int) -> tuple[int, list[tuple[str, int, int]]]:
    """(total samples, [(function, self samples, total samples)]) from py-spy's raw output, busiest first."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame.strip())
            if match:
                names.append(f"{match['name']} ({_short(match['file'])})")
        if not names:
            continue
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    ranked = sorted(inclusive, key=lambda name: (own[name], inclusive[name]), reverse=True)[:top]
    return total, [(name, own[name], inclusive[name]) for name in ranked]


def _short(path: str) -> str:
    for marker in ("/chat_server/", "/shared/", "/lib/python3"):
        if marker in path:
            return path[path.index(marker) + 1 :]
    return path


def main(argv: list[str] | None = None) -> int:
    """Run one profiled load point and print the hot spots."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="W1", choices=list(WORKLOADS))
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--sampling-rate", type=int, default=200, help="samples per second")
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--mpchat-source", type=Path, help="import our server from this folder")
    parser.add_argument("--keep", type=Path, help="also save the collapsed stacks to this file")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        parser.error("py-spy is not installed (pip install py-spy)")
    workload = WORKLOADS[args.workload]
    server_cpu, _ = pinning()
    with tempfile.TemporaryDirectory(prefix="profile-") as folder:
        raw = Path(folder) / "stacks.txt"
        with started("mpchat", cpu=server_cpu, source=args.mpchat_source) as server:
            command = [spy, "record", "--pid", str(server.pid), "--format", "raw", "--output", str(raw)]
            command += [
                "--rate",
                str(args.sampling_rate),
                "--duration",
                f"{args.duration:.0f}",
                "--nonblocking",
            ]
            command += ["--gil"] if args.gil else []
            spec = LoadSpec(
                host=server.host,
                port=server.port,
                clients=workload.clients,
                rooms=workload.rooms,
                senders=workload.senders,
                rate=args.rate,
                duration=args.duration,
                label=f"{workload.name} mpchat {args.rate:g}/s (profiled)",
            )
            recorders: list[subprocess.Popen[str]] = []

            def attach() -> None:
                # Once every client is logged in: py-spy samples the message phase, not logins or teardown.
                recorders.append(
                    subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                )

            result = run_load(spec, server.pid, on_ready=attach)
            recorder = recorders[0]
            try:
                _, errors = recorder.communicate(timeout=args.duration + 30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                _, errors = recorder.communicate()
        print(table([result]))
        if not raw.exists():
            print(f"py-spy wrote no profile: {errors.strip()[-500:]}", file=sys.stderr)
            return 1
        collapsed = raw.read_text()
        if args.keep:
            args.keep.write_text(collapsed)
    total, rows = summarise(collapsed, args.top)
    print(f"\n{total} samples ({'GIL holder only' if args.gil else 'all busy threads'})")
    print(f"{'self %':>7} {'total %':>8}  function")
    for name, own, inclusive in rows:
        print(f"{100 * own / total:7.1f} {100 * inclusive / total:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
