"""How a message's conversation state is laid out: a reply's quote above it, its reactions below it,
``(edited)`` and ``message deleted``; none of these rows can pass for another message, nor can the
message's text pass for them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chat_client.model.chat import Line, LineKind
from chat_client.tui.render import (
    REACTIONS_MARK,
    REPLY_MARK,
    indent_of,
    reactions_by_whom,
    render_parts,
    row_count,
    wrap_rows,
)
from shared import Reaction
from shared.text import CONTINUATION

from .test_render import ALPHABET, NICKS, PREFIX, TS

REACTIONS = st.lists(
    st.builds(
        Reaction,
        reaction=st.sampled_from(["👍", "🎉", "❤️", ":ship_it:", "👨\u200d👩\u200d👧"]),
        nicks=st.lists(NICKS, min_size=1, max_size=4, unique=True).map(tuple),
    ),
    max_size=12,
    unique_by=lambda reaction: reaction.reaction,
).map(tuple)


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(alphabet=ALPHABET, min_size=1, max_size=200),
    quote=st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=80).map(lambda q: f"↳ bob: {q}")),
    reactions=REACTIONS,
    edited=st.booleans(),
    deleted=st.booleans(),
    nick=NICKS,
    width=st.integers(min_value=10, max_value=160),
)
def test_state_rows_are_marked_and_cannot_be_faked(
    text: str,
    quote: str | None,
    reactions: tuple[Reaction, ...],
    edited: bool,
    deleted: bool,
    nick: str,
    width: int,
) -> None:
    """The quote is the first row, behind ↳; the reactions the last, behind ╰; both in the continuation
    column, where a message's own rows have only ┆ or a space; no row but the message's first starts a
    line."""
    line = Line(
        TS,
        LineKind.MESSAGE,
        text,
        nick,
        id=7,
        reply_to=3 if quote else None,
        edited=TS if edited else None,
        deleted=deleted,
        reactions=reactions,
    )
    rendered = render_parts(line, quote=quote)
    rows = wrap_rows(rendered, width)
    assert len(rows) == row_count(rendered, width)
    indent = indent_of(rendered.head.cell_len, width)
    marks = [row.plain[indent - 2 : indent].strip() for row in rows]
    first = 1 if quote is not None else 0
    last = len(rows) - 1 if reactions else len(rows)
    if quote is not None:
        assert marks[0] == REPLY_MARK
    if reactions:
        assert marks[-1] == REACTIONS_MARK
    assert rows[first].plain.startswith(rendered.head.plain)
    for number, row in enumerate(rows):
        assert row.cell_len <= width or (number == first and rendered.head.cell_len >= width)
        if number != first:
            assert row.plain.startswith(" ") or width < 3
            assert not PREFIX.match(row.plain[:indent] + "x")
        if first < number < last:
            assert marks[number] in ("", CONTINUATION)
    body = rendered.body.plain
    if deleted:
        assert body == "message deleted"
    elif edited:
        assert body.endswith(" (edited)")


def test_who_reacted() -> None:
    """w shows each reaction with who made it, in order."""
    reactions = (Reaction(reaction="👍", nicks=("alice", "bob")), Reaction(reaction="🎉", nicks=("carol",)))
    line = Line(TS, LineKind.MESSAGE, "hi", "bob", id=1, reactions=reactions)
    assert reactions_by_whom(line) == "👍 alice, bob; 🎉 carol"
