"""Keys as a plain terminal sends them, through Textual's own input parser (the one its drivers use)."""

from __future__ import annotations

from textual import events
from textual._xterm_parser import XTermParser

from chat_client.tui.keys import report_alt_enter


def keys_of(data: str) -> list[str]:
    """The key names Textual's parser makes of `data` read from a terminal in one read."""
    parser = XTermParser()
    tokens = [*parser.feed(data), *parser.feed("")]
    return [token.key for token in tokens if isinstance(token, events.Key)]


def test_esc_cr_is_alt_enter() -> None:
    """ESC CR (Alt+Enter in a plain terminal) is ``alt+enter``; CR stays ``enter``, ESC x ``alt+x``."""
    report_alt_enter()
    assert keys_of("ab\x1b\rc\r") == ["a", "b", "alt+enter", "c", "enter"]
    assert keys_of("\x1bx") == ["alt+x"]
    assert keys_of("\x1b") == ["escape"]


def test_report_alt_enter_twice_changes_nothing() -> None:
    """Calling it again (a second app in one process) keeps one wrapper."""
    report_alt_enter()
    first = XTermParser._sequence_to_key_events
    report_alt_enter()
    assert XTermParser._sequence_to_key_events is first
