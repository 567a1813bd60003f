"""The formatting language (chat_client/model/formatting.py): what each mark does, and, property-tested on
hostile text, that what is shown is always the message minus the markers of what was recognised."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from chat_client.model.formatting import Mark, Span, parse, unmarked
from chat_client.tui.render import HIGHLIGHTED_LANGUAGES, MARK_STYLES, formatted, highlighted, lexer_for
from shared import visible

B, IT, C, L, K = Mark.BOLD, Mark.ITALIC, Mark.CODE, Mark.LINK, Mark.CODE | Mark.BLOCK
N = Mark.NONE

#: Pieces that make hostile and tricky messages: every marker, markup-looking text, URLs, fences,
#: controls and escape sequences, words, spaces and line breaks.
PIECES = [
    "*", "_", "`", "**", "__", "```", "```python\n", "```rust\n", "\n```\n", "\n```", "\n", " ", "a", "word",
    "snake_case", "2*3", "[bold]", "[/bold]", "[link=https://evil.example]", "[/link]", "[@click=app.quit]",
    "[/]", "https://", "http://x.io/a_b*c", "https://example.com/path(1).", "(", ")", "]", "'", ".", ",",
    "\x1b]2;PWNED\x07", "\x1b[5m", "\x9b31m", "\x07", "\t", "\u202e", "\u200b", "漢", "👋🏽", "\r",
]  # fmt: skip
hostile = st.one_of(st.lists(st.sampled_from(PIECES), max_size=30).map("".join), st.text(max_size=60))

#: What `parse` may drop: a run of emphasis or code markers, or fence lines with their line breaks.
DROPPABLE = re.compile(r"[*_`]+|(?:\n?```[A-Za-z0-9_+#.-]{0,32}[ \t]*\n?)+")


def shown(text: str) -> list[tuple[str, Mark]]:
    """The spans of `text` as (text, marks) pairs."""
    return [(span.text, span.marks) for span in parse(text)]


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("plain text", [("plain text", Mark.NONE)]),
        ("a *bold* move", [("a ", Mark.NONE), ("bold", B), (" move", Mark.NONE)]),
        ("**bold** too", [("bold", B), (" too", Mark.NONE)]),
        ("an _italic_ word", [("an ", Mark.NONE), ("italic", IT), (" word", Mark.NONE)]),
        ("*bold _both_*", [("bold ", B), ("both", B | IT)]),
        ("run `ls *.py` now", [("run ", Mark.NONE), ("ls *.py", C), (" now", Mark.NONE)]),
        ("``a`b``", [("a`b", C)]),
        ("see https://example.com/x.", [("see ", Mark.NONE), ("https://example.com/x", L), (".", Mark.NONE)]),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", [("https://en.wikipedia.org/wiki/Foo_(bar)", L)]),
        ("*https://a.io*", [("https://a.io", B | L)]),
    ],
)
def test_each_mark(text: str, spans: list[tuple[str, Mark]]) -> None:
    """Bold, italic, nested, code, and URLs with the sentence's punctuation left out."""
    assert shown(text) == spans


@pytest.mark.parametrize(
    "text",
    [
        "snake_case_name",
        "2*3*4",
        "* not bold *",
        "*unclosed",
        "*two\nlines*",
        "***three***",
        "a ` b",
        "[bold]x[/bold] [@click=app.quit]y[/]",
        "```python\nnever closed",
        "mail me: bob@example.com",
        "http:// alone",
    ],
)
def test_what_stays_as_typed(text: str) -> None:
    """Markers inside words, spaced, unclosed, across lines or too long, markup and unclosed fences: text."""
    assert unmarked(text) == text


def test_a_fenced_block_drops_its_fences_and_keeps_its_lines() -> None:
    """The fence lines go; the code's lines (untouched by inline marks) stay, with the text around them."""
    text = "look:\n```Python\nx = *a*  # _b_\ny = `c`\n```\ndone"
    assert shown(text) == [
        ("look:\n", Mark.NONE),
        ("x = *a*  # _b_\ny = `c`", K),
        ("\n", Mark.NONE),
        ("done", Mark.NONE),
    ]
    assert [span.language for span in parse(text)] == ["", "python", "", ""]
    assert shown("```\nonly code\n```") == [("only code", K)]


def test_a_url_cannot_carry_a_different_target() -> None:
    """A link's text is its target: brackets, quotes, spaces and controls end a URL."""
    for text in [
        "[link=https://evil.example]good[/link]",
        "https://a.io\x1b]8;;x",
        "'https://a.io'",
        "https://a.io b",
    ]:
        links = [span.text for span in parse(text) if span.marks & Mark.LINK]
        assert links == ["https://a.io" if "a.io" in text else "https://evil.example"], text


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_spans_are_the_message_minus_markers(text: str) -> None:
    """Each span's text is the message's text where the span says it starts; spans are in order and do not
    overlap; what no span covers is only markers (runs of ``* _ `` `` ``) and fence lines."""
    spans = parse(text)
    position = 0
    for span in spans:
        assert span.text, spans
        assert text[span.start : span.start + len(span.text)] == span.text
        assert span.start >= position
        gap = text[position : span.start]
        assert not gap or DROPPABLE.fullmatch(gap), (gap, spans)
        position = span.start + len(span.text)
    assert not text[position:] or DROPPABLE.fullmatch(text[position:]), (text[position:], spans)


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_links_are_plain_urls(text: str) -> None:
    """Every link is an http(s) URL of printable ASCII only (nothing a terminal would interpret)."""
    for span in parse(text):
        if span.marks & Mark.LINK:
            assert re.fullmatch(r"https?://[\x21-\x7e]+", span.text), span


@given(st.text(alphabet=st.characters(blacklist_characters="*_`h"), max_size=80))
def test_text_without_markers_is_one_span(text: str) -> None:
    """A message with nothing to format is one plain span (the fast path)."""
    assert parse(text) == ([Span(0, text)] if text else [])


# -- How the TUI draws it (chat_client/tui/render.py) ------------------------------------------------

#: What a terminal may receive around the text: SGR colours and styles, and OSC 8 hyperlinks (the target
#: captured; an empty target ends a link).
SGR = re.compile(r"\x1b\[[0-9;]*m")
OSC8 = re.compile(r"\x1b\]8;[^;\x1b\x07]*;([^\x1b\x07]*)\x1b\\")
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def terminal_output(text: Text) -> str:
    """What Rich writes to a colour terminal for `text` (no wrapping: one row per line)."""
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=80)
    console.print(text, soft_wrap=True, end="")
    output = console.file.getvalue()
    assert isinstance(output, str)
    return output


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_the_tui_shows_the_message_minus_markers_and_nothing_else(text: str) -> None:
    """The drawn text is the message minus the markers, made visible; the terminal gets only colours,
    styles and links whose target is the text they cover; no control character, no markup taken."""
    body = formatted(text)
    assert body.plain == visible(unmarked(text))
    output = terminal_output(body)
    targets = [target for target in OSC8.findall(output) if target]
    cleaned = OSC8.sub("", SGR.sub("", output))
    assert cleaned == body.plain
    assert not CONTROL.search(cleaned.replace("\n", ""))
    links = [span.text for span in parse(text) if span.marks & Mark.LINK]
    assert set(targets) <= set(links)


def test_a_code_block_is_highlighted_in_a_known_language() -> None:
    """```python colours its tokens; an unknown language is shown in the code style alone; both keep the
    code exactly."""
    code = "def f(x):\n    return [x]  # [bold]"
    python = formatted(f"```python\n{code}\n```")
    unknown = formatted(f"```klingon\n{code}\n```")
    assert python.plain == unknown.plain == code
    colours = {str(span.style) for span in python.spans}
    assert len(colours) > 2  # the block's style and several token colours
    assert {str(span.style) for span in unknown.spans} == {str(MARK_STYLES[Mark.CODE])}


def test_every_highlighted_language_has_a_lexer_that_keeps_the_text() -> None:
    """Each name in HIGHLIGHTED_LANGUAGES loads a lexer, and highlighting keeps the code as it is."""
    code = "a = 1\n\n  b = 'c' # d\n"
    for language in sorted(HIGHLIGHTED_LANGUAGES):
        text = highlighted(code, language)
        assert text.plain == code, language
        assert lexer_for(language) is not None, language


def test_a_link_targets_exactly_its_text() -> None:
    """A URL is drawn as itself and links to itself; markup that looks like a link is only text."""
    body = formatted("[link=https://evil.example]click[/link] see https://ok.example/a.")
    assert body.plain == "[link=https://evil.example]click[/link] see https://ok.example/a."
    output = terminal_output(body)
    assert [target for target in OSC8.findall(output) if target] == [
        "https://evil.example",
        "https://ok.example/a",
    ]
