"""Command line of the load generator: run one workload against a running server, print a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from .coordinator import LoadError, run_load
from .report import table
from .spec import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOGIN_TIMEOUT,
    DEFAULT_TEXT_BYTES,
    LoadSpec,
)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen", description="Open-loop load generator for an mpchat server."
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address (loopback only)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("-n", "--clients", type=int, default=100)
    parser.add_argument("-R", "--rooms", type=int, default=1)
    parser.add_argument("-s", "--senders", type=int, default=10)
    parser.add_argument("-r", "--rate", type=float, default=1000.0, help="messages per second, all senders")
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds of sending")
    parser.add_argument("-m", "--text-bytes", type=int, default=DEFAULT_TEXT_BYTES)
    parser.add_argument("-w", "--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="logins at once/worker")
    parser.add_argument("--login-timeout", type=float, default=DEFAULT_LOGIN_TIMEOUT)
    parser.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT)
    parser.add_argument("--nick-prefix", default="u")
    parser.add_argument("--stalled", type=int, default=0, help="extra clients in room 0 that never read")
    parser.add_argument("--server-pid", type=int, help="measure this process's CPU time and memory")
    parser.add_argument("--label", default="")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the workload; exit status 1 if the run failed or lost messages."""
    args = parse(argv)
    try:
        spec = LoadSpec(
            host=args.host,
            port=args.port,
            clients=args.clients,
            rooms=args.rooms,
            senders=args.senders,
            rate=args.rate,
            duration=args.duration,
            text_bytes=args.text_bytes,
            workers=args.workers,
            concurrency=args.concurrency,
            login_timeout=args.login_timeout,
            drain_timeout=args.drain_timeout,
            idle_timeout=args.idle_timeout,
            nick_prefix=args.nick_prefix,
            stalled=args.stalled,
            label=args.label,
        )
        result = run_load(spec, args.server_pid)
    except (ValueError, LoadError) as error:
        print(f"loadgen: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else table([result]))
    return 0 if result["delivery_ratio"] >= 1.0 and not result["duplicates"] else 1


if __name__ == "__main__":
    sys.exit(main())
