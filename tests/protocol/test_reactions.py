"""What a reaction may be (docs/protocol.md, section 9, "Reactions"): one emoji or a short `:name:`, checked
like every other text; hostile input is property-tested."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import DEFAULT_LIMITS, RemoteProtocolError
from shared import schema as check
from shared.errors import ErrorCode
from shared.text import MAX_REACTION_BYTES, reaction_problem, visible

GOOD = [
    "👍",
    "👍🏽",
    "❤️",
    "☕",
    "🇫🇷",
    "1️⃣",
    "#⃣",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "👩🏽‍💻",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland: a tag sequence
    ":tada:",
    ":+1:",
    ":party_parrot:",
    ":" + "a" * 32 + ":",
]
BAD = [
    "",
    "a",
    "ok",
    "👍👍",
    "👍 ",
    " 👍",
    "🇫",
    "🏻",
    "\u200d👍",
    "👍\u200d",
    "👍\u200d\u200d👍",
    ":Tada:",
    "::",
    ":x:y:",
    ":" + "a" * 33 + ":",
    ":tada: ",
    ":ta da:",
    "\x1b[31m👍",
    "👍\x1b",
    "👍\u202e",
    "\u202e👍",
    "👍\n",
    "<b>👍</b>",
    "[red]👍[/red]",
    "🏴\U000e0067\U000e0062",  # a tag sequence without its end
    "1",
    "\u20e3",
]


@pytest.mark.parametrize("reaction", GOOD)
def test_emoji_and_names_are_reactions(reaction: str) -> None:
    assert reaction_problem(reaction) is None
    assert check.reaction(reaction, DEFAULT_LIMITS) == reaction


@pytest.mark.parametrize("reaction", BAD)
def test_everything_else_is_refused_with_invalid_reaction(reaction: str) -> None:
    assert reaction_problem(reaction) is not None
    with pytest.raises(RemoteProtocolError) as refused:
        check.reaction(reaction, DEFAULT_LIMITS)
    assert refused.value.code is ErrorCode.INVALID_REACTION


def test_a_reaction_that_is_not_a_string_is_invalid_field() -> None:
    for value in (1, b"\xf0\x9f\x91\x8d", None, ["👍"], True):
        with pytest.raises(RemoteProtocolError) as refused:
            check.reaction(value, DEFAULT_LIMITS)
        assert refused.value.code is ErrorCode.INVALID_FIELD


def _safe(reaction: str) -> bool:
    """What every accepted reaction must be: short, one token, nothing a terminal would act on or hide."""
    return (
        len(reaction.encode("utf-8", "surrogatepass")) <= MAX_REACTION_BYTES
        and visible(reaction) == reaction
        and not any(char.isspace() for char in reaction)
        and not any(unicodedata.category(char) in {"Cc", "Cs", "Co", "Cn"} for char in reaction)
        and all(char not in "[]<>" for char in reaction)
    )


# Text built from the parts reactions are made of and the characters that attack displays: emoji, joiners,
# selectors, skin tones, tags, regional indicators, keycaps, colons and letters, controls, bidi, spaces.
PARTS = st.sampled_from(
    [
        "👍",
        "❤",
        "🇫",
        "🇷",
        "\u200d",
        "\ufe0f",
        "\ufe0e",
        "🏽",
        "\U000e0067",
        "\U000e007f",
        "\u20e3",
        "1",
        "#",
        ":",
        "a",
        "Z",
        "_",
        " ",
        "\n",
        "\x1b",
        "\x00",
        "\x9b",
        "\u202e",
        "\u2066",
        "\u200b",
        "[",
        "<",
    ]
)
hostile = st.one_of(st.lists(PARTS, max_size=12).map("".join), st.text(max_size=20))


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_hostile_text_is_refused_or_safe(text: str) -> None:
    """Whatever the text, the check either refuses it with `invalid_reaction` (and nothing else) or accepts
    something safe to show as it is."""
    problem = reaction_problem(text)
    if problem is not None:
        with pytest.raises(RemoteProtocolError) as refused:
            check.reaction(text, DEFAULT_LIMITS)
        assert refused.value.code is ErrorCode.INVALID_REACTION
        return
    assert check.reaction(text, DEFAULT_LIMITS) == text
    assert _safe(text), repr(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(GOOD[:11]), min_size=2, max_size=4))
def test_two_emoji_side_by_side_are_not_one_reaction(emoji: list[str]) -> None:
    assert reaction_problem("".join(emoji)) is not None
