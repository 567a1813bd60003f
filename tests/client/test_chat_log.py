"""The lazy chat log draws exactly the rows of its layout (`wrap_rows`), and keeps its line cap."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import RichLog

from chat_client.model.chat import Line, LineKind
from chat_client.tui.render import day_label, render_parts, wrap_rows
from chat_client.tui.widgets.chat_log import PRUNE_SLACK, ChatLog

TS = 1_763_750_000.0

#: Lines of every shape: short, wide characters, exactly the width and one past it, long (wrapped),
#: several lines, hostile, an action, a notice, a mention, our own.
SAMPLES = [
    Line(TS, LineKind.MESSAGE, "hello", "alice", 1, False, False),
    Line(TS, LineKind.MESSAGE, "漢字とかな、絵文字 🎉🎉 mixed widths", "bob", 2, False, True),
    Line(TS, LineKind.MESSAGE, "x" * 41, "carol", 3, False, False),  # 6 + 8 + 41 = 55 cells: just fits
    Line(TS, LineKind.MESSAGE, "x" * 42, "carol", 4, False, False),  # one cell past the width: wraps
    Line(TS, LineKind.MESSAGE, "word " * 40, "dave", 5, True, False),
    Line(TS, LineKind.MESSAGE, "first line\nsecond line\n\nfourth", "erin", 6, False, False),
    Line(TS, LineKind.MESSAGE, "\x1b]2;pwn\x07 [@click=app.quit]x[/] \u202eevil", "[b]eve", 7, False, False),
    Line(TS, LineKind.MESSAGE, "\nstarts and ends with a newline\n", "gina", 9, False, False),
    Line(
        TS,
        LineKind.MESSAGE,
        "averyveryveryverylongwordwithoutanyspaceatallthatmustbefoldedsomewhere",
        "h",
        10,
        False,
        False,
    ),
    Line(TS, LineKind.ACTION, "waves", "frank", 8, False, False),
    Line(TS, LineKind.NOTICE, "bob joined #lobby", None, None, False, False),
    Line(TS, LineKind.ERROR, "not in room", None, None, False, False),
]
WIDTH = 55


def drawn(strips: list[Strip]) -> list[list[tuple[str, Style]]]:
    """Each strip as (text, style) pairs, as drawn: no style and the null style draw the same, and an empty
    segment draws nothing."""
    return [
        [(segment.text, segment.style or Style()) for segment in strip if segment.text] for strip in strips
    ]


class TwoLogs(App[None]):
    """A ChatLog next to a plain RichLog of the same width."""

    CSS = "ChatLog, RichLog { width: 55; height: 30; scrollbar-size: 0 0; }"

    def compose(self) -> ComposeResult:
        yield ChatLog(id="fast")
        reference = RichLog(wrap=False, min_width=1, markup=False, id="rich")
        reference.can_focus = False  # as the chat log: no focus tint on the reference either
        yield reference


async def test_fast_lines_match_their_layout() -> None:
    """Strip for strip, the lazy log draws what RichLog draws of the rows `wrap_rows` lays out."""
    app = TwoLogs()
    async with app.run_test(size=(120, 70)) as pilot:
        await pilot.pause()
        fast = app.query_one("#fast", ChatLog)
        rich = app.query_one("#rich", RichLog)
        assert fast.scrollable_content_region.width == WIDTH
        fast.add(SAMPLES)
        for line in SAMPLES:
            for row in wrap_rows(render_parts(line), WIDTH):
                rich.write(row)
        await pilot.pause()
        assert len(fast.rows()) > len(SAMPLES)  # the long and multi-line samples wrapped
        day, *rows = fast.rows()  # the samples are of another day than today: the log says which first
        assert day.text == day_label(TS)
        assert drawn(rows) == drawn(rich.lines)
        assert fast.virtual_size.height == rich.virtual_size.height + 1
        # And on screen: every visible row of the log, as the compositor asks for it.
        assert drawn([fast.render_line(y) for y in range(1, 10)]) == drawn(
            [rich.render_line(y) for y in range(9)]
        )


async def test_fast_path_keeps_the_line_cap() -> None:
    """Past `max_lines` (and the pruning slack) the oldest lines go."""
    app = TwoLogs()
    async with app.run_test(size=(120, 70)) as pilot:
        await pilot.pause()
        fast = app.query_one("#fast", ChatLog)
        fast.max_lines = 50
        fast.append_texts([Text(f"line {n}") for n in range(50 + PRUNE_SLACK)])
        assert len(fast.rows()) == 50 + PRUNE_SLACK
        fast.append_texts([Text("one more")])
        await pilot.pause()
        assert [strip.text for strip in fast.rows()] == [f"line {n}" for n in range(PRUNE_SLACK + 1, 250)] + [
            "one more"
        ]
        assert fast.virtual_size.height == 50
        fast.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        assert fast.render_line(0).text.rstrip() == f"line {PRUNE_SLACK + 1}"


async def test_a_new_day_gets_a_line_of_its_own() -> None:
    """Between the last line of one day and the first of the next, the log says which day it is now."""
    day = 24 * 3600.0
    app = TwoLogs()
    async with app.run_test(size=(120, 70)) as pilot:
        await pilot.pause()
        fast = app.query_one("#fast", ChatLog)
        fast.add(
            [
                Line(TS, LineKind.MESSAGE, "late", "alice", 1),
                Line(TS + 60, LineKind.MESSAGE, "later", "bob", 2),
            ]
        )
        fast.add([Line(TS + day, LineKind.MESSAGE, "next morning", "alice", 3)])
        fast.add([Line(TS + day - 5, LineKind.NOTICE, "a notice with a lagging clock")])
        texts = [strip.text.rstrip() for strip in fast.rows()]
        assert [text for text in texts if text.startswith("—")] == [day_label(TS), day_label(TS + day)]
        assert (
            texts.index(day_label(TS + day)) == texts.index(next(t for t in texts if "next morning" in t)) - 1
        )
