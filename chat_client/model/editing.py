"""Input-line helpers with no UI: Tab completion, Up/Down history, and what a line weighs.

`complete()` completes the word before the cursor: a command name after a leading ``/``, a room name
after ``/join``, ``/leave`` or ``/who``, and a nick anywhere else (with ``": "`` added at the start of
the line, the chat convention for addressing someone), and a file or folder after ``/send`` (a folder
gets its ``/``, so Tab again goes inside it). Pressing Tab again cycles through the other candidates.
Matching ignores case for names, the completed word takes the candidate's own spelling.

`sent_text()` says which text a line sends (the message itself, without a command), so the input can count
its bytes as the server does: UTF-8 bytes, against the `max_text` the server announced in `welcome`.
`split_block()` and `normalise_paste()` serve the input's multi-line message (docs/client.md, "Paste").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from chat_client.model.commands import (
    ALIASES,
    COMMAND_NAMES,
    CommandError,
    MeCommand,
    MsgCommand,
    SayCommand,
    parse,
)
from chat_client.model.modcommands import NICK_FIRST
from shared import fold

#: Lines of input history kept.
DEFAULT_HISTORY_SIZE = 500
_ROOM_COMMANDS = frozenset({"join", "leave", "who", "j", "part"})
_NICK_COMMANDS = frozenset({"msg", "query", "tell"}) | NICK_FIRST
_PATH_PREFIX = "/send "
#: Folder entries looked at when completing a path (a huge folder must not stall the input line).
MAX_PATH_ENTRIES = 5000


def normalise_paste(text: str) -> str:
    """Pasted text as it will be sent: CR LF and lone CR become LF, trailing line breaks are dropped (a
    paste never sends by itself)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def split_block(text: str) -> tuple[str, str]:
    """Split a message into its complete lines (each ending in a newline) and its last line."""
    head, newline, last = text.rpartition("\n")
    return head + newline, last


def sent_text(line: str) -> str | None:
    """The message text `line` sends (a message, `/me` or `/msg` text), or None for other commands."""
    if not line.startswith("/"):
        return line
    try:
        command = parse(line)
    except CommandError:
        return None
    match command:
        case SayCommand(text=text) | MeCommand(text=text) | MsgCommand(text=str() as text):
            return text
    return None


def text_bytes(line: str) -> int:
    """How many bytes of the server's `max_text` the line uses (0 for commands that send no text)."""
    text = sent_text(line)
    return 0 if text is None else len(text.encode("utf-8", "surrogatepass"))


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
    if value.startswith(_PATH_PREFIX) and cursor >= len(_PATH_PREFIX):
        return _complete_path(value, cursor, previous)
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


def _complete_path(value: str, cursor: int, previous: Completion | None) -> Completion | None:
    """Complete the path after ``/send`` (the whole rest of the line up to the cursor is the path)."""
    if previous is not None and previous.value == value and previous.cursor == cursor:
        index = (previous.index + 1) % len(previous.candidates)
        value, cursor, candidates = previous.original, previous.original_cursor, previous.candidates
    else:
        candidates = tuple(path_candidates(value[len(_PATH_PREFIX) : cursor]))
        index = 0
        if not candidates:
            return None
    choice = candidates[index]
    new_value = _PATH_PREFIX + choice + value[cursor:]
    return Completion(new_value, len(_PATH_PREFIX) + len(choice), value, cursor, candidates, index)


def path_candidates(typed: str) -> list[str]:
    """Files and folders whose path starts with `typed` (``~`` allowed), folders ending in ``/``.

    Hidden entries are offered only when the typed name starts with a dot.
    """
    head, _, prefix = typed.rpartition("/")
    folder = os.path.expanduser(head + "/" if head or typed.startswith("/") else ".")
    found: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_PATH_ENTRIES:
                    break
                if not entry.name.startswith(prefix) or (entry.name.startswith(".") and prefix[:1] != "."):
                    continue
                try:
                    is_folder = entry.is_dir()
                except OSError:
                    is_folder = False
                base = head + "/" if head or typed.startswith("/") else ""
                found.append(base + entry.name + ("/" if is_folder else ""))
    except OSError:
        return []
    return sorted(found)


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
