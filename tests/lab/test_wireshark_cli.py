"""`chat-lab wireshark` (docs/lab.md): where the dissector is; `--install` copies it into a plugins folder.
The dissector itself is tested with tshark in tshark_tests/ (run by .ci/run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chat_lab.wireshark import DISSECTOR


def chat_lab(*arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "chat_lab", *arguments], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def test_the_dissector_ships_with_the_lab() -> None:
    """The Lua file is in the package, and `chat-lab wireshark` prints its path first."""
    assert DISSECTOR.read_text().startswith("-- mpchat.lua")
    assert chat_lab("wireshark").splitlines()[0] == str(DISSECTOR)


def test_install_copies_it_into_the_plugins_folder(tmp_path: Path) -> None:
    """`--install --plugins DIR` creates DIR and puts mpchat.lua in it, unchanged."""
    plugins = tmp_path / "wireshark" / "plugins"
    out = chat_lab("wireshark", "--install", "--plugins", str(plugins))
    assert (plugins / "mpchat.lua").read_bytes() == DISSECTOR.read_bytes()
    assert str(plugins / "mpchat.lua") in out
