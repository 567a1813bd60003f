"""Helpers for driving the TUI with Pilot: an app connected to a live server, and waits on what it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from chat_client.tui.app import ChatApp
from chat_client.tui.screens.chat import ChatScreen
from chat_client.tui.widgets.chat_log import ChatLog
from chat_client.tui.widgets.panels import BufferList
from tests.waiting import DEADLINE, wait_until

from .helpers import LiveServer
from .test_library import FAST


def connected_app(server: LiveServer, config_dir: Path, nick: str = "alice", **settings: Any) -> ChatApp:
    """The TUI, connecting to `server` as `nick` at once, with the tests' short timeouts (`options=FAST`).

    `settings` go to `ChatApp` as they are, and may replace `options`.
    """
    settings.setdefault("options", FAST)
    return ChatApp(
        host=server.host, port=server.port, nick=nick, connect_now=True, config_dir=config_dir, **settings
    )


def log_text(app: ChatApp) -> str:
    """Everything the chat log shows (as rendered lines), joined by newlines."""
    if not isinstance(app.screen, ChatScreen):
        return ""
    return "\n".join(strip.text for strip in app.screen.query_one(ChatLog).rows())


def room_list_text(app: ChatApp) -> str:
    """The room list rows, joined by newlines."""
    rooms = app.screen.query_one(BufferList)
    return "\n".join(str(rooms.get_option_at_index(i).prompt) for i in range(rooms.option_count))


async def wait_for_text(app: ChatApp, pilot: Pilot[int], text: str, timeout: float = DEADLINE) -> None:
    """Wait until `text` appears in the chat log."""

    async def settle() -> None:
        await pilot.pause()

    await wait_until(lambda: text in log_text(app), timeout, what=f"{text!r} in the log")
    await settle()


async def wait_for_chat(app: ChatApp, pilot: Pilot[int]) -> ChatScreen:
    """Wait until the app is logged in and shows the chat screen."""
    await wait_until(lambda: isinstance(app.screen, ChatScreen), what="the chat screen")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    return screen


async def type_line(pilot: Pilot[int], line: str) -> None:
    """Type a line into the input key by key and press Enter."""
    await pilot.press(*line, "enter")
    await pilot.pause()


async def submit(pilot: Pilot[int], line: str) -> None:
    """Put a line in the input and press Enter (faster than typing it key by key)."""
    from chat_client.tui.widgets.chat_input import ChatInput

    chat_input = pilot.app.screen.query_one(ChatInput)
    chat_input.value = line
    chat_input.cursor_position = len(line)
    await pilot.press("enter")
    await pilot.pause()
