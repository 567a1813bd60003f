"""Command palette entries (Ctrl+P): every slash command, every room and conversation, the bell toggle.

Hits are built from `Content` objects, never markup strings, because room names come from the server.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from chat_client.model.chat import BufferKind
from chat_client.model.commands import COMMANDS
from chat_client.tui.render import safe


class ChatCommands(Provider):
    """Offers the chat commands and the buffers of the chat screen."""

    def _entries(self) -> list[tuple[str, Callable[[], object], str]]:
        from chat_client.tui.screens.chat import ChatScreen

        screen = self.screen
        if not isinstance(screen, ChatScreen):
            return []
        entries: list[tuple[str, Callable[[], object], str]] = []
        sign = {BufferKind.SERVER: "*", BufferKind.ROOM: "#", BufferKind.DIRECT: "@"}
        for buffer in screen.model.ordered():
            label = f"Go to {sign[buffer.kind]}{safe(buffer.name)}"
            entries.append((label, partial(screen.switch_to, buffer.key), "show this room or conversation"))
        for command in COMMANDS:
            takes_argument = " " in command.usage
            text = f"/{command.name} " if takes_argument else f"/{command.name}"
            entries.append((command.usage, partial(screen.prefill, text), command.summary))
        entries.append(
            ("Toggle mention bell", screen.action_toggle_bell, "ring the terminal bell on mentions")
        )
        return entries

    async def discover(self) -> Hits:
        """What the palette shows before anything is typed."""
        for text, callback, help_text in self._entries():
            yield DiscoveryHit(Content(text), callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Entries matching `query`."""
        matcher = self.matcher(query)
        for text, callback, help_text in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, Content(text), callback, help=help_text)
