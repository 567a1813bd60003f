"""Alt+Enter from a plain terminal: Textual reads ESC CR as a bare Enter, and this puts the Alt back.

A terminal without an extended keyboard protocol (xterm's defaults, tmux, the Linux console, most SSH
sessions) sends Alt+key as ESC followed by the key. Textual's input parser (8.2) turns ESC + letter into
``alt+letter``, but ESC + CR comes out as ``enter``: the Alt is dropped because CR maps to a named key, not to
a character (`XTermParser._sequence_to_key_events` honours `alt` only for one-character key names). Alt+Enter
then sends the message instead of starting a new line in it (seen in tmux: ``first`` Alt+Enter ``second``
Enter was stored as two messages).

`report_alt_enter()` wraps that one method so that CR (or LF) read with the Alt prefix is the key
``alt+enter``, which the input binds to "new line". Every other sequence goes through Textual's own code
unchanged. Terminals that speak the kitty keyboard protocol report Alt+Enter and Shift+Enter themselves and
never reach this path. The TUI's entry point calls it once, before the app starts reading the terminal (the
parser binds the method when it starts).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual import events
from textual._xterm_parser import XTermParser  # no public name: the parser the terminal drivers use

#: The name of the key made from ESC CR (Textual's name for Alt+Enter from the kitty protocol, too).
ALT_ENTER = "alt+enter"
_ENTER_CHARACTERS = frozenset({"\r", "\n"})


def report_alt_enter() -> None:
    """Make the terminal parser report ESC CR as ``alt+enter`` (idempotent)."""
    original: Any = XTermParser._sequence_to_key_events
    if getattr(original, "_reports_alt_enter", False):
        return

    def sequence_to_key_events(self: XTermParser, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        if alt and sequence in _ENTER_CHARACTERS:
            return [events.Key(ALT_ENTER, None)]
        result: Iterable[events.Key] = original(self, sequence, alt)
        return result

    sequence_to_key_events._reports_alt_enter = True  # type: ignore[attr-defined]
    XTermParser._sequence_to_key_events = sequence_to_key_events  # type: ignore[method-assign]
