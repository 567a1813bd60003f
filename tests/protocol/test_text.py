"""Names and text: what is allowed, when two names are the same, and how text is made safe to show."""

from __future__ import annotations

import pytest

from shared import fold, nick_problem, room_problem, text_problem, visible


@pytest.mark.parametrize("nick", ["alice", "Zoë", "日本語", "नमस्ते", "a.b-c_d", "x" * 32, "e\u0301"])
def test_valid_nicks(nick: str) -> None:
    """Letters, digits and marks of any script, and _ - ., up to 32 characters."""
    assert nick_problem(nick, 32) is None


@pytest.mark.parametrize(
    "nick",
    [
        "",
        "x" * 33,
        "has space",
        "tab\there",
        "bell\x07",
        "esc\x1b",
        "c1\x85",
        "rtl\u202eoverride",
        "zero\u200bwidth",
        "soft\u00adhyphen",
        "\u0301leading-mark",
        "at@sign",
        "[bold]",
        "emoji😀",
        "bom\ufeff",
    ],
)
def test_invalid_nicks(nick: str) -> None:
    """Controls, bidi and zero-width characters, spaces, symbols and markup characters are refused."""
    assert nick_problem(nick, 32) is not None


def test_rooms_also_allow_plus() -> None:
    """Room names follow the nick rules and may also use '+'."""
    assert room_problem("c++", 64) is None
    assert nick_problem("c++", 32) is not None
    assert room_problem("x" * 65, 64) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Alice", "alice"),
        ("ZOË", "zoë"),
        ("Zoe\u0308", "Zoë"),
        ("Straße", "STRASSE"),
        ("ﬁsh", "fish"),
        ("Ｂｏｂ", "bob"),
    ],
)
def test_fold_makes_lookalike_spellings_one_name(a: str, b: str) -> None:
    """Case, composed/decomposed accents and compatibility forms fold to the same key."""
    assert fold(a) == fold(b)


def test_fold_keeps_different_names_apart() -> None:
    """Different names keep different keys."""
    assert fold("alice") != fold("alicia")


def test_text_rules() -> None:
    """Newline and tab are allowed in text, other controls are not; the size is in UTF-8 bytes."""
    assert text_problem("line one\nline two\tend", 100) is None
    assert text_problem("", 100) == ("text is empty", False)
    assert text_problem("x\x00", 100) is not None
    assert text_problem("€" * 34, 100) is not None  # 102 bytes
    assert text_problem("€" * 33, 100) is None  # 99 bytes
    assert text_problem("a\nb", 100, multiline=False) is not None


def test_visible_makes_every_control_visible() -> None:
    """ESC, BEL, C1, bidi overrides and zero-width characters never survive visible()."""
    hostile = "a\x1b]2;pwned\x07b\x1b[2Jc\x9bd\u202ee\u200bf\x7fg\x00"
    shown = visible(hostile)
    assert shown == "a\u241b]2;pwned\u2407b\u241b[2Jc\ufffdd\ufffde\ufffdf\u2421g\u2400"
    assert [char for char in shown if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F] == []


def test_visible_keeps_ordinary_text_and_newlines() -> None:
    """Plain text, emoji, CJK and newlines pass through unchanged; tabs become spaces."""
    assert visible("héllo 世界 😀\nnext") == "héllo 世界 😀\nnext"
    assert visible("a\tb") == "a b"
    assert visible("a\nb", keep_newlines=False) == "a\u2424b"


def test_visible_keeps_the_joiners_of_emoji_and_scripts() -> None:
    """ZWJ emoji sequences (a family, a rainbow flag), flags and Persian ZWNJ reach the terminal unchanged."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    rainbow = "\U0001f3f3\ufe0f\u200d\U0001f308"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ after the prefix
    flag = "\U0001f1eb\U0001f1f7"
    for text in (family, rainbow, persian, flag):
        assert visible(text) == text


def test_visible_still_shows_bidi_marks_and_isolates() -> None:
    """The bidi marks, embeddings, overrides and isolates, and the zero-width space, stay visible."""
    for char in "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c\ufeff":
        assert visible(f"a{char}b") == "a\ufffdb", f"U+{ord(char):04X}"
