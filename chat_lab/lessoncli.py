"""`chat-lab lesson N`: run one lesson (docs/lessons.md); `chat-lab lesson` alone lists them."""

from __future__ import annotations

import argparse
import sys

from .lessons import LESSONS, run_lesson


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The lesson's number (none: the list)."""
    parser.add_argument("number", type=int, nargs="?", choices=sorted(LESSONS), help="the lesson to run")


def run(args: argparse.Namespace) -> int:
    """Run the lesson, or list them all."""
    if args.number is None:
        for number, (_, title) in sorted(LESSONS.items()):
            print(f"{number}. {title}")
        print("\nchat-lab lesson N runs one; docs/lessons.md says what to look at.")
        return 0
    run_lesson(args.number, sys.stdout)
    return 0
