"""How one log line is laid out: no row after a line's first can pass for another message, the rows fit the
width with wide and joined characters, and no text is lost."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from chat_client.model.chat import Line, LineKind
from chat_client.tui.render import indent_of, render_parts, row_count, wrap_rows
from shared import visible
from shared.text import CONTINUATION

#: What starts a line of the log: a time, then a nick in <>, an action's *, or a notice's -!-.
PREFIX = re.compile(r"\s*\d\d:\d\d\s*(<|\*|-!-|▤)")
#: Characters a hostile message builds fake lines from, and wide, joined and right-to-left ones.
ALPHABET = st.sampled_from(
    [
        *"0123456789:<>*- abcxyz!\n\t│é\u0301\u0645\u06cc漢字🎉👨👩",
        *"\u200d\u200c\u202e\u2066\ufe0f\U0001f1eb\U0001f1f7",
        CONTINUATION,
    ]
)
NICKS = st.text(alphabet=st.sampled_from(list("abcdefghijXYZ_-.0123456789漢")), min_size=1, max_size=32)
TS = 1_763_750_000.0


def rows_of(text: str, nick: str, width: int, kind: LineKind = LineKind.MESSAGE) -> list[str]:
    return [row.plain for row in wrap_rows(render_parts(Line(TS, kind, text, nick)), width)]


@settings(max_examples=400, deadline=None)
@given(
    text=st.text(alphabet=ALPHABET, min_size=1, max_size=300),
    nick=NICKS,
    width=st.integers(min_value=10, max_value=160),
    kind=st.sampled_from([LineKind.MESSAGE, LineKind.ACTION, LineKind.NOTICE, LineKind.ERROR]),
)
def test_no_continuation_row_looks_like_a_message(text: str, nick: str, width: int, kind: LineKind) -> None:
    """Whatever newlines, spaces and fake prefixes a message holds, every row after its first is indented
    (never at the left edge, so never ``07:57 <alice>``), fits the width, and the text is all there."""
    rendered = render_parts(Line(TS, kind, text, nick))
    rows = wrap_rows(rendered, width)
    assert len(rows) == row_count(rendered, width)
    head = rendered.head.cell_len
    indent = indent_of(head, width)
    for row in rows[1:]:
        assert row.plain[:indent].strip() in ("", CONTINUATION)
        assert not PREFIX.match(row.plain[:indent] + "x")  # the indent alone can start no prefix
        assert row.plain.startswith(" ")
        assert row.cell_len <= width
    if head < width:
        assert rows[0].cell_len <= width
    assert rows[0].plain.startswith(rendered.head.plain)
    # Nothing lost: the rows without their head and indents hold the whole (visible) text.
    body = rows[0].plain[len(rendered.head.plain) :] + "".join(row.plain[indent:] for row in rows[1:])
    assert "".join(body.split()) == "".join(rendered.body.plain.split())


def test_the_impersonation_from_the_issue_is_visibly_a_continuation() -> None:
    """``ok\\n07:57 <alice> please DM me your password`` shows alice's "line" indented under bob's text,
    behind the continuation mark."""
    rows = rows_of("ok\n07:57 <alice> please DM me your password", "bob", 80)
    assert rows[0].endswith("<bob> ok")
    assert rows[1] == " " * 10 + CONTINUATION + " 07:57 <alice> please DM me your password"
    assert rows[1].index("07:57") == rows[0].index("ok")  # under the text


def test_spaces_cannot_push_a_fake_line_to_the_left_edge() -> None:
    """Padding a message with spaces up to the width wraps it, but the wrapped row is indented too."""
    rows = rows_of("ok" + " " * 200 + "07:57 <alice> hi", "bob", 60)
    assert all(row.startswith(" " * 12) for row in rows[1:])
    assert any("07:57 <alice> hi" in row for row in rows[1:])


def test_wide_and_joined_characters_wrap_at_the_right_column() -> None:
    """CJK (two cells), ZWJ families (one glyph of two cells) and Persian with ZWNJ fill rows to the width,
    never past it, and keep their joiners."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    text = "漢字" * 30 + " " + (family + " ") * 10 + persian
    rows = wrap_rows(render_parts(Line(TS, LineKind.MESSAGE, text, "bob")), 41)
    # 12 cells of head (or indent) + 14 two-cell characters = 40: the 41st cell cannot hold half of one.
    assert [row.cell_len for row in rows[:3]] == [40, 40, 40]
    assert all(row.cell_len <= 41 for row in rows)
    shown = "".join(row.plain for row in rows)
    assert family in shown
    assert persian in shown
    assert "\ufffd" not in shown
    assert cell_len(family) == 2


def test_dangerous_controls_stay_visible_in_a_line() -> None:
    """Bidi overrides and isolates, ESC and C1 controls become visible symbols in the log."""
    rows = rows_of("a\u202eb\u2066c\x1b[2Jd\x9be", "bob", 80)
    assert rows == [rows[0]]
    assert rows[0].endswith("a\ufffdb\ufffdc\u241b[2Jd\ufffde")
    assert visible("\u202e") == "\ufffd"


def test_joiners_rich_keeps_whole_are_still_cut_to_the_width() -> None:
    """Rich takes ``"\\u200d\\u200d000"`` for one three-cell grapheme and will not cut it: with two cells
    left after the head, the row is cut between code points rather than run past the width (found by the
    property test above)."""
    rendered = render_parts(Line(TS, LineKind.MESSAGE, "\u200d\u200d000", "00000000"))
    rows = wrap_rows(rendered, 19)
    assert len(rows) == row_count(rendered, 19) == 2
    assert all(row.cell_len <= 19 for row in rows)
    assert "".join(row.plain for row in rows).replace(" ", "").endswith("\u200d\u200d000")
