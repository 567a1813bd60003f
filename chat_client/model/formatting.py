"""The message formatting language: message text parsed into spans with marks, by our own code.

A message is shown as it was typed, with a few marks that change how parts of it look, never what they say:

* ``*bold*`` and ``_italic_`` (or ``**bold**`` and ``__italic__``, as Markdown hands type them): the
  marker must touch the text it encloses (``* not bold *``), must not sit inside a word
  (``snake_case_name`` and ``2*3*4`` stay as typed), and both ends must be on one line. They nest
  (``*bold _and italic_*``), each at most once.
* `` `code` ``: a run of backticks, then the code, then a run of as many backticks, on one line
  (````` ``a`b`` ````` is the code ``a`b``). Nothing inside code is formatted.
* A fenced code block: a line that is three backticks and an optional language name (```` ```python ````),
  the code's lines, and a line that is three backticks. The fence lines are not shown; the code is
  (highlighted when the language is one the client knows). A fence that is never closed is ordinary text.
* URLs (``http://`` and ``https://``, made of the characters a URL may hold unescaped, without the
  punctuation that ends a sentence) are marked as links: shown as the URL itself, so a link can never show
  one address and lead to another.

Everything else is text, taken literally: ``[bold]``, ``[link=...]``, HTML and escape sequences are just
characters here, and this module never produces markup for anyone to parse. What is dropped is exactly the
markers of the spans it recognises: every `Span` records where its text starts in the message, and the
text of the spans is the message with those markers (and fence lines) taken out, nothing else changed. A
marker that opens nothing (unbalanced, nested twice, inside a word) stays as typed.

This module is UI-free: `chat_client.tui.render` turns the spans into styled text (and the plain line mode
prints the raw text).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["Mark", "Span", "maybe_formatted", "parse", "unmarked"]


class Mark(enum.Flag):
    """How a span looks (any combination)."""

    NONE = 0
    BOLD = enum.auto()
    ITALIC = enum.auto()
    CODE = enum.auto()
    #: A fenced code block's lines (its language is `Span.language`).
    BLOCK = enum.auto()
    #: A URL: the span's text is the address.
    LINK = enum.auto()


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of a message's text, with its marks and where it starts in the message."""

    start: int
    text: str
    marks: Mark = Mark.NONE
    #: The language named on a code block's opening fence (lower case), or "".
    language: str = ""


#: What may start something formatted; a text with none of it is one plain span (the common case, decided
#: with one search), and the parser jumps from one to the next rather than looking at every character.
_MAYBE_FORMATTED = re.compile(r"[*_`]|https?://")
#: What an emphasis looks at while it searches for its closing marker: the end of its line included.
_MAYBE_CLOSING = re.compile(r"[*_`\n]|https?://")
_FENCE_OPEN = re.compile(r"```([A-Za-z0-9_+#.-]{0,32})[ \t]*")
_FENCE_CLOSE = re.compile(r"```[ \t]*")
#: A URL: the scheme, an optional IPv6 address in brackets, then the characters RFC 3986 lets a URL hold
#: unescaped except brackets (ASCII only: no controls, no spaces), so a link's target is exactly the text
#: shown and can carry nothing to the terminal; ``[link=https://x]`` ends at the ``]``.
_URL = re.compile(r"https?://(?:\[[0-9A-Fa-f:.]+\])?[A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]*")
#: Trailing characters that end the sentence around a URL rather than the URL itself.
_URL_TRAILING = ".,;:!?'*_)"
_EMPHASIS = {"*": Mark.BOLD, "_": Mark.ITALIC}


def maybe_formatted(text: str) -> bool:
    """False when `text` has nothing that could be formatted (then `parse` gives one plain span)."""
    return _MAYBE_FORMATTED.search(text) is not None


def parse(text: str) -> list[Span]:
    """The spans of `text`, in order (see the module docstring). Adjacent spans never share marks."""
    if not _MAYBE_FORMATTED.search(text):
        return [Span(0, text)] if text else []
    out: list[Span] = []
    for start, end, language in _blocks(text):
        if language is None:
            _inline(text, start, end, Mark.NONE, out)
        elif end > start:
            out.append(Span(start, text[start:end], Mark.CODE | Mark.BLOCK, language))
    return _merged(out)


def unmarked(text: str) -> str:
    """The text as it is shown: `text` without the markers of what `parse` recognised."""
    return "".join(span.text for span in parse(text))


# -- Blocks: fenced code and the text around it -------------------------------------------------------


def _blocks(text: str) -> list[tuple[int, int, str | None]]:
    """`text` cut into ranges: ``(start, end, None)`` for text, ``(start, end, language)`` for a code
    block's lines (``language`` "" when none is named). The fence lines are in no range, nor is the line
    break after each (or, for a closing fence that ends the message, the one before it)."""
    if "```" not in text:
        return [(0, len(text), None)]
    starts = [0]
    starts.extend(index + 1 for index, char in enumerate(text) if char == "\n")
    ends = [start - 1 for start in starts[1:]] + [len(text)]
    ranges: list[tuple[int, int, str | None]] = []
    plain_from = 0
    line = 0
    while line < len(starts):
        opening = _FENCE_OPEN.fullmatch(text, starts[line], ends[line])
        close = None
        if opening is not None:
            close = next(
                (
                    later
                    for later in range(line + 2, len(starts))
                    if _FENCE_CLOSE.fullmatch(text, starts[later], ends[later])
                ),
                None,
            )
        if opening is None or close is None:
            line += 1
            continue
        if starts[line] > plain_from:
            ranges.append((plain_from, starts[line], None))
        ranges.append((starts[line + 1], ends[close - 1], opening.group(1).lower()))
        if close + 1 < len(starts):  # text follows: the block's last line break stays, the fence goes
            ranges.append((ends[close - 1], ends[close - 1] + 1, None))
            plain_from = starts[close + 1]
        else:  # the fence ends the message, and takes the block's last line break with it
            plain_from = len(text)
        line = close + 1
    if plain_from < len(text):
        ranges.append((plain_from, len(text), None))
    return ranges


# -- Inline: code, links, emphasis --------------------------------------------------------------------


def _inline(text: str, start: int, end: int, marks: Mark, out: list[Span]) -> None:
    """Parse `text[start:end]` (which holds no block) with `marks` already applied, appending spans."""
    plain_from = start
    index = start
    while (candidate := _MAYBE_FORMATTED.search(text, index, end)) is not None:
        index = candidate.start()
        char = text[index]
        found = _code_at(text, index, end) if char == "`" else None
        if found is not None:
            code_start, code_end, after = found
            _flush(text, plain_from, index, marks, out)
            out.append(Span(code_start, text[code_start:code_end], marks | Mark.CODE))
            plain_from = index = after
            continue
        link_end = _link_at(text, index, end) if char == "h" else None
        if link_end is not None:
            _flush(text, plain_from, index, marks, out)
            out.append(Span(index, text[index:link_end], marks | Mark.LINK))
            plain_from = index = link_end
            continue
        mark = _EMPHASIS.get(char)
        closed = _closing(text, index, end) if mark is not None and not marks & mark else None
        if mark is not None and closed is not None:
            width, close = closed
            _flush(text, plain_from, index, marks, out)
            _inline(text, index + width, close, marks | mark, out)
            plain_from = index = close + width
            continue
        index += 1
    _flush(text, plain_from, end, marks, out)


def _flush(text: str, start: int, end: int, marks: Mark, out: list[Span]) -> None:
    if end > start:
        out.append(Span(start, text[start:end], marks))


def _run(text: str, index: int, end: int, char: str) -> int:
    """The index after the run of `char` that starts at `index`."""
    while index < end and text[index] == char:
        index += 1
    return index


def _code_at(text: str, index: int, end: int) -> tuple[int, int, int] | None:
    """Inline code opening at `index`: ``(code start, code end, index after the closing run)``, or None.

    The opening run of backticks is closed by the next run of exactly as many, on the same line."""
    if index > 0 and text[index - 1] == "`":
        return None  # inside a longer run that did not open anything
    opened = _run(text, index, end, "`")
    width = opened - index
    line_end = text.find("\n", opened, end)
    line_end = end if line_end < 0 else line_end
    search = opened
    while True:
        close = text.find("`" * width, search, line_end)
        if close < 0:
            return None
        after = _run(text, close, line_end, "`")
        if after - close == width and close > opened:
            return (opened, close, after)
        search = after


def _link_at(text: str, index: int, end: int) -> int | None:
    """The end of a URL starting at `index`, or None (a URL starts a word: not inside one)."""
    if index > 0 and (text[index - 1].isalnum() or text[index - 1] in "/_"):
        return None
    match = _URL.match(text, index, end)
    if match is None:
        return None
    url_end = match.end()
    while url_end > index and text[url_end - 1] in _URL_TRAILING:
        # A closing parenthesis belongs to the URL when the URL opened it (Wikipedia's "Foo_(bar)").
        if text[url_end - 1] == ")" and text.count("(", index, url_end) >= text.count(")", index, url_end):
            break
        url_end -= 1
    scheme_end = text.index("://", index) + 3
    return url_end if url_end > scheme_end else None


def _closing(text: str, index: int, end: int) -> tuple[int, int] | None:
    """Where the emphasis marker at `index` closes on its line, as ``(marker width, closing index)``, or
    None if it opens nothing.

    A marker is a run of one or two ``*`` (or ``_``). It opens when it does not follow a word character
    and the character after it is not a space. It closes at the first later run of the same character and
    width that follows a non-space and is not followed by a word character; code and URLs on the way are
    skipped whole (a marker inside them is theirs)."""
    marker = text[index]
    after_run = _run(text, index, end, marker)
    width = after_run - index
    before = text[index - 1] if index > 0 else " "
    if width > 2 or before.isalnum() or before == marker or after_run >= end or text[after_run].isspace():
        return None
    position = after_run
    while (candidate := _MAYBE_CLOSING.search(text, position, end)) is not None:
        position = candidate.start()
        char = text[position]
        if char == "\n":
            return None
        if char == "`" and (found := _code_at(text, position, end)) is not None:
            position = found[2]
            continue
        if char == "h" and (link_end := _link_at(text, position, end)) is not None:
            position = link_end
            continue
        if char != marker:
            position += 1
            continue
        run_end = _run(text, position, end, marker)
        if (
            run_end - position == width
            and position > after_run
            and not text[position - 1].isspace()
            and (run_end >= end or not text[run_end].isalnum())
        ):
            return (width, position)
        position = run_end
    return None


def _merged(spans: list[Span]) -> list[Span]:
    """Join neighbours with the same marks that are contiguous in the message (fewer, longer spans)."""
    out: list[Span] = []
    for span in spans:
        last = out[-1] if out else None
        if (
            last is not None
            and last.marks == span.marks
            and last.language == span.language
            and not span.marks & (Mark.LINK | Mark.CODE)
            and last.start + len(last.text) == span.start
        ):
            out[-1] = Span(last.start, last.text + span.text, last.marks)
        else:
            out.append(span)
    return out
