"""`chat-lab`: the lab's tools, one subcommand each (`chat-lab --help` lists them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import lessoncli, proxycli, replaycli, timeline, wiresharkcli

#: Each tool: its name, one line of help, how to add its arguments, and how to run it.
TOOLS: list[
    tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = [
    (
        "proxy",
        "a fault proxy: delay, throttle, split, merge, freeze, cut or corrupt a link (TCP or UDP)",
        proxycli.add_arguments,
        proxycli.run,
    ),
    (
        "wireshark",
        "the Wireshark dissector for mpchat: where it is, or --install it",
        wiresharkcli.add_arguments,
        wiresharkcli.run,
    ),
    (
        "replay",
        "replay a recording (chat-server --record) against a server; report the answers that differ",
        replaycli.add_arguments,
        replaycli.run,
    ),
    (
        "timeline",
        "trace a short scripted chat and write a thread timeline for Perfetto (needs the 'lab' extra)",
        timeline.add_arguments,
        timeline.run,
    ),
    (
        "lesson",
        "run a lesson of docs/lessons.md (chat-lab lesson N; alone: the list)",
        lessoncli.add_arguments,
        lessoncli.run,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per tool."""
    parser = argparse.ArgumentParser(
        prog="chat-lab",
        description="The mpchat lab: tools for seeing the protocol and the threads at work. "
        "docs/lessons.md is the reading order.",
    )
    tools = parser.add_subparsers(dest="tool", metavar="TOOL", required=True)
    for name, summary, add_arguments, run in TOOLS:
        sub = tools.add_parser(name, help=summary, description=summary)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one tool and return its exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
