"""The Wireshark dissector for mpchat, shipped with the lab (`chat-lab wireshark`, docs/lab.md)."""

from __future__ import annotations

from pathlib import Path

#: The dissector: Lua, for Wireshark and tshark 3.x and later.
DISSECTOR = Path(__file__).resolve().parent / "mpchat.lua"
