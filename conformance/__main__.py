"""`python -m conformance`: check a server against the protocol, or play the server for a client under test.

    python -m conformance --host 127.0.0.1 --port 7878         # every case against a server
    python -m conformance --port 7878 -k history               # the cases whose name holds "history"
    python -m conformance --list                                # the cases, with their spec sections
    python -m conformance --port 7878 --group configured        # the cases that need a configured server
    python -m conformance --serve --port 7979                   # play the server side (docs/conformance.md)

Exit status: 0 when every case passed, 1 when one failed, 2 for a usage or transcript error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .peer import DEFAULT_TIMEOUT
from .runner import run_cases
from .serve import servable, serve
from .transcript import DEFAULT_GROUP, Case, TranscriptError, groups, load


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Black-box conformance suite for the mpchat protocol (docs/protocol.md): runs "
        "transcripts of raw frames against a server and reports PASS or FAIL per case, or plays the "
        "server side of them.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="the server's address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7878, help="the server's port (default 7878)")
    parser.add_argument("-k", dest="select", default="", help="only the cases whose name contains this text")
    parser.add_argument(
        "--transcripts", type=Path, nargs="*", help="transcript files to run instead of the suite's own"
    )
    parser.add_argument(
        "--group",
        help=f"the group of cases to run (default {DEFAULT_GROUP!r}, which needs a server with its default "
        "settings; 'configured' needs the settings that --list --group configured prints; 'all': every "
        "group; with --transcripts: every case of those files)",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each expected frame (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="play the server side of the cases that one client can play, for testing a client",
    )
    parser.add_argument(
        "--once", action="store_true", help="with --serve: exit after one connection (one case)"
    )
    return parser.parse_args(argv)


def select(cases: list[Case], text: str) -> list[Case]:
    """The cases whose name contains `text`."""
    return [case for case in cases if text in case.name]


def main(argv: list[str] | None = None) -> int:
    """Run the suite; the exit status says whether every case passed."""
    args = parse_args(argv)
    group: str | None = args.group or (None if args.transcripts else DEFAULT_GROUP)
    try:
        cases = select(load(args.transcripts, None if group == "all" else group), args.select)
        headers = groups(args.transcripts)
    except (TranscriptError, OSError) as error:
        print(f"conformance: {error}", file=sys.stderr)
        return 2
    if not cases:
        print("conformance: no case matches", file=sys.stderr)
        return 2
    if args.list:
        for name, header in headers.items():
            if group in (name, "all", None):
                print(f"group {name}: {header.doc}")
                for key, value in header.server.items():
                    print(f"  {key} = {value!r}")
        for case in cases:
            served = "" if servable(case) else "  (client side only)"
            print(f"{case.name}  (§{case.spec}){served}: {case.doc}")
        return 0
    if args.serve:
        return serve(cases, args.host, args.port, args.timeout, once=args.once)
    failed = 0
    for result in run_cases(cases, args.host, args.port, args.timeout, report=print):
        failed += not result.passed
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
