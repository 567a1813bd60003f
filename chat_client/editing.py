"""Input-line helpers with no UI: Tab completion and Up/Down history.

`complete()` completes the word before the cursor: a command name after a leading ``/``, a room name
after ``/join``, ``/leave`` or ``/who``, and a nick anywhere else (with ``": "`` added at the start of
the line, the chat convention for addressing someone). Pressing Tab again cycles through the other
candidates. Matching ignores case, the completed word takes the candidate's own spelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared import fold

from .commands import ALIASES, COMMAND_NAMES

#: Lines of input history kept.
DEFAULT_HISTORY_SIZE = 500
_ROOM_COMMANDS = frozenset({"join", "leave", "who", "j", "part"})
_NICK_COMMANDS = frozenset({"msg", "query", "tell"})


@dataclass(frozen=True, slots=True)
class Completion:
    """A completed line, the cursor after it, and what Tab cycles through next."""

    value: str
    cursor: int
    #: The line as typed before the first Tab, and which candidate is shown: for cycling.
    original: str
    original_cursor: int
    candidates: tuple[str, ...]
    index: int


def complete(
    value: str,
    cursor: int,
    *,
    nicks: Sequence[str],
    rooms: Sequence[str],
    previous: Completion | None = None,
) -> Completion | None:
    """Complete the word before `cursor`, or cycle to the next candidate; None if nothing matches."""
    if previous is not None and previous.value == value and previous.cursor == cursor:
        index = (previous.index + 1) % len(previous.candidates)
        return _apply(previous.original, previous.original_cursor, previous.candidates, index)
    candidates = _candidates(value, cursor, nicks, rooms)
    if not candidates:
        return None
    return _apply(value, cursor, tuple(candidates), 0)


def _word_start(value: str, cursor: int) -> int:
    start = cursor
    while start > 0 and not value[start - 1].isspace():
        start -= 1
    return start


def _candidates(value: str, cursor: int, nicks: Sequence[str], rooms: Sequence[str]) -> list[str]:
    start = _word_start(value, cursor)
    word = value[start:cursor]
    key = fold(word)
    if start == 0 and word.startswith("/"):
        names = sorted(set(COMMAND_NAMES) | set(ALIASES))
        return ["/" + name for name in names if name.startswith(word[1:].lower())]
    first = value.split(maxsplit=1)[0].lstrip("/").lower() if value.startswith("/") else ""
    pool: Sequence[str]
    if first in _ROOM_COMMANDS and value[:start].count(" ") == 1:
        key = fold(word.lstrip("#"))
        pool = rooms
    elif first in _NICK_COMMANDS and value[:start].count(" ") == 1:
        pool = nicks
    else:
        pool = nicks
    return [name for name in pool if fold(name).startswith(key)]


def _apply(value: str, cursor: int, candidates: tuple[str, ...], index: int) -> Completion:
    start = _word_start(value, cursor)
    choice = candidates[index]
    if choice.startswith("/"):
        suffix = " "
    elif start == 0:
        suffix = ": "  # addressing someone at the start of a line
    else:
        suffix = " "
    rest = value[cursor:]
    if rest.startswith(" "):
        suffix = ""
    new_value = value[:start] + choice + suffix + rest
    return Completion(new_value, start + len(choice) + len(suffix), value, cursor, candidates, index)


class InputHistory:
    """Lines sent from the input, browsed with Up and Down; the line being typed is kept as a draft."""

    def __init__(self, size: int = DEFAULT_HISTORY_SIZE) -> None:
        self._lines: list[str] = []
        self._size = size
        self._position: int | None = None  # None: editing the draft
        self._draft = ""

    def add(self, line: str) -> None:
        """Remember a sent line (not twice in a row), and go back to an empty draft."""
        if line and (not self._lines or self._lines[-1] != line):
            self._lines.append(line)
            del self._lines[: -self._size]
        self._position = None
        self._draft = ""

    def previous(self, current: str) -> str | None:
        """The older line (Up), or None at the oldest."""
        if not self._lines:
            return None
        if self._position is None:
            self._draft = current
            self._position = len(self._lines)
        if self._position == 0:
            return None
        self._position -= 1
        return self._lines[self._position]

    def next(self) -> str | None:
        """The newer line (Down), the draft after the newest, or None when already at the draft."""
        if self._position is None:
            return None
        self._position += 1
        if self._position >= len(self._lines):
            self._position = None
            return self._draft
        return self._lines[self._position]
