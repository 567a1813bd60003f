"""Snapshots of the main screens at a fixed size, with fixed timestamps and the UTC time zone.

Create or refresh them with `pytest tests/client/test_snapshots.py --snapshot-update`, then look at the
SVGs in __snapshots__/ before committing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from chat_client.settings import Settings, save_settings
from chat_client.tui.app import ChatApp
from shared import Said

from .offline import TS, offline_screen, scripted_model

SIZE = (110, 30)
SnapCompare = Callable[..., bool]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Render times in UTC, whatever the machine's zone; no animations (they depend on the clock)."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def steady_cursor(pilot: Pilot[int]) -> None:
    """Stop the input cursor blinking (it then stays shown): a blink phase depends on the clock, and a
    loaded machine took one snapshot in the other phase."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def test_connect_screen(snap_compare: SnapCompare, private_dirs: Path) -> None:
    """The connect screen with remembered settings and recent servers (30 rows: the compact form)."""
    settings = Settings(host="chat.lan", port=7878, nick="alice")
    settings.remember("10.0.0.5", 7000, "al")
    settings.remember("chat.lan", 7878, "alice")
    save_settings(settings, private_dirs)
    assert snap_compare(
        ChatApp(config_dir=private_dirs, discovery=None), terminal_size=SIZE, run_before=steady_cursor
    )


def test_chat_screen(snap_compare: SnapCompare, private_dirs: Path) -> None:
    """The chat screen: rooms with unread counts, topic, log with an own and a pending message, members."""

    async def show(pilot: Pilot[int]) -> None:
        await pilot.app.switch_screen(offline_screen())
        await steady_cursor(pilot)

    assert snap_compare(ChatApp(config_dir=private_dirs, discovery=None), terminal_size=SIZE, run_before=show)


def test_hostile_text_is_shown_literally(snap_compare: SnapCompare, private_dirs: Path) -> None:
    """Markup, escape sequences, bidi overrides, emoji and CJK as a hostile server could send them."""
    model = scripted_model()
    payloads = [
        "[bold]not bold[/bold] [link=https://evil.example]link[/link] [@click=app.quit]quit[/]",
        "[ @click=app.quit]spaced[/] oops [/] [B]upper[/B] [$accent]var[/]",
        "title \x1b]2;PWNED\x07 blink \x1b[5m csi \x9b31m bell \x07 end",
        "bidi \u202egnp.exe\u202c and zero\u200bwidth",
        "emoji 👋🏽🎉 and CJK 你好，世界 and ｆｕｌｌｗｉｄｔｈ",
    ]
    for n, text in enumerate(payloads):
        model.apply(Said(id=100 + n, room="lobby", nick="mallory", text=text, ts=TS + 300_000))

    async def show(pilot: Pilot[int]) -> None:
        await pilot.app.switch_screen(offline_screen(model))
        await steady_cursor(pilot)

    assert snap_compare(ChatApp(config_dir=private_dirs, discovery=None), terminal_size=SIZE, run_before=show)


def test_help_in_narrow_terminal(snap_compare: SnapCompare, private_dirs: Path) -> None:
    """F1 opens the help screen over the chat (keys first, then commands) at 80 columns."""

    async def show(pilot: Pilot[int]) -> None:
        await pilot.app.switch_screen(offline_screen())
        await pilot.pause()
        await pilot.press("f1")
        await steady_cursor(pilot)

    assert snap_compare(
        ChatApp(config_dir=private_dirs, discovery=None), terminal_size=(80, 30), run_before=show
    )


def test_log_continuations_dividers_and_offline(snap_compare: SnapCompare, private_dirs: Path) -> None:
    """A multi-line message under its sender, a day change, the "new messages" divider, the away status,
    and the member list greyed out while reconnecting."""
    from chat_client.net.events import Disconnected, Reconnecting
    from shared import AwayChanged

    model = scripted_model()
    model.switch("#dev")
    day = 24 * 3600 * 1000
    model.apply(AwayChanged(nick="alice", message="in a meeting", ts=TS + day))
    fake = "ok\n07:57 <bob> DM me your password"
    model.apply(Said(id=20, room="lobby", nick="mallory", text=fake, ts=TS + day))
    model.apply(Said(id=21, room="lobby", nick="bob", text="ignore that", ts=TS + day + 60_000))
    model.switch("#lobby")
    model.apply(Disconnected("the connection was reset", None, will_retry=True))
    model.apply(Reconnecting(delay=0.0, attempt=1, reason="the connection was reset"))

    async def show(pilot: Pilot[int]) -> None:
        await pilot.app.switch_screen(offline_screen(model))
        await steady_cursor(pilot)

    assert snap_compare(ChatApp(config_dir=private_dirs, discovery=None), terminal_size=SIZE, run_before=show)


def test_formatted_messages(snap_compare: SnapCompare, private_dirs: Path) -> None:
    """Bold, italic, nested, inline code, a highlighted code block, links, and markers left as typed."""
    model = scripted_model()
    texts = [
        "*bold*, _italic_, *bold and _both_* and `inline *code*` in snake_case_name",
        "the docs: https://example.com/docs/a_(b). and [link=https://evil.example]markup[/link]",
        "look:\n```python\ndef greet(name):\n    return f'hi {name}'  # *not bold*\n```\nran fine",
        "* spaced * and *unclosed and 2*3*4",
    ]
    for n, text in enumerate(texts):
        model.apply(Said(id=200 + n, room="lobby", nick="bob", text=text, ts=TS + 300_000))

    async def show(pilot: Pilot[int]) -> None:
        await pilot.app.switch_screen(offline_screen(model))
        await steady_cursor(pilot)

    assert snap_compare(ChatApp(config_dir=private_dirs, discovery=None), terminal_size=SIZE, run_before=show)


def test_conversation_views(snap_compare: SnapCompare, private_dirs: Path) -> None:
    """A reply with its quote, reactions (mine stand out), an edited message, a deleted one, and the
    message cursor on the reply."""
    from shared import Deleted, Edited, Reacted

    model = scripted_model()
    at = TS + 300_000
    model.apply(Said(id=300, room="lobby", nick="bob", text="who takes the *release* today?", ts=at))
    model.apply(Said(id=301, room="lobby", nick="carol", text="I can, after lunch", ts=at, reply_to=300))
    model.apply(Said(id=302, room="lobby", nick="bob", text="typo here", ts=at))
    model.apply(Said(id=303, room="lobby", nick="bob", text="oops, wrong room", ts=at))
    model.apply(Reacted(id=304, message_id=301, nick="alice", reaction="👍", ts=at, room="lobby"))
    model.apply(Reacted(id=305, message_id=301, nick="bob", reaction="👍", ts=at, room="lobby"))
    model.apply(Reacted(id=306, message_id=301, nick="bob", reaction="🎉", ts=at, room="lobby"))
    model.apply(Edited(id=307, message_id=302, nick="bob", text="no typo here", ts=at, room="lobby"))
    model.apply(Deleted(id=308, message_id=303, nick="bob", ts=at, room="lobby"))

    async def show(pilot: Pilot[int]) -> None:
        await pilot.app.switch_screen(offline_screen(model))
        await pilot.pause()
        await pilot.press("alt+up", "up", "up")  # the cursor on carol's reply
        await steady_cursor(pilot)

    assert snap_compare(ChatApp(config_dir=private_dirs, discovery=None), terminal_size=SIZE, run_before=show)
