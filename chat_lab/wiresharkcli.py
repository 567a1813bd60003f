"""`chat-lab wireshark`: where the dissector is, and `--install` to put it in Wireshark's plugins folder."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .wireshark import DISSECTOR

#: Wireshark's personal Lua plugins folder on Linux and macOS (Help > About > Folders shows yours).
PERSONAL_PLUGINS = Path("~/.local/lib/wireshark/plugins")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--install", action="store_true", help=f"copy the dissector into {PERSONAL_PLUGINS}")
    parser.add_argument(
        "--plugins",
        type=Path,
        default=PERSONAL_PLUGINS,
        metavar="DIR",
        help="install into this folder instead (Wireshark: Help > About > Folders)",
    )


def run(args: argparse.Namespace) -> int:
    """Print where the dissector is and how to use it, or install it."""
    if args.install:
        folder = args.plugins.expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / DISSECTOR.name
        shutil.copyfile(DISSECTOR, target)
        print(f"installed {target}: restart Wireshark (or Analyze > Reload Lua Plugins)")
        return 0
    print(DISSECTOR)
    print(f"\none run:  tshark -X lua_script:{DISSECTOR} -r capture.pcap -d tcp.port==7878,mpchat -V")
    print("install:  chat-lab wireshark --install")
    return 0
