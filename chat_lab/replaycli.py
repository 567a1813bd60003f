"""`chat-lab replay FILE --to HOST:PORT [--speed S]`: replay a recording, report the differing answers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .proxycli import address
from .replay import DEFAULT_SETTLE, load, replay


def positive(text: str) -> float:
    """A number above 0 (argparse turns the error into a usage error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, help="a recording (chat-server --record FILE); FILE.1... are read too"
    )
    parser.add_argument(
        "--to", type=address, required=True, metavar="HOST:PORT", help="the server to replay against"
    )
    parser.add_argument(
        "--speed",
        type=positive,
        default=1.0,
        help="recorded gaps divided by this: 2 is twice as fast, 0.1 ten times slower (default 1)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE,
        metavar="SECONDS",
        help=f"stop waiting for answers after this long without one (default {DEFAULT_SETTLE:g})",
    )


def run(args: argparse.Namespace) -> int:
    """Replay; print each difference and a summary; exit status 1 if the answers differ."""
    if not args.file.is_file():
        print(f"chat-lab replay: no recording at {args.file}", file=sys.stderr)
        return 2
    records = load(args.file)
    report = replay(records, args.to, args.speed, args.settle)
    for difference in report.differences:
        print(difference)
    verdict = "the same answers" if not report.differences else f"{len(report.differences)} differ"
    print(
        f"replayed {report.connections} connections, {report.sent} frames sent, "
        f"{report.compared} answers compared: {verdict}"
    )
    return 1 if report.differences else 0
