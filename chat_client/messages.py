"""Textual messages that carry network results to the screens (the worker never touches a widget)."""

from __future__ import annotations

from textual.message import Message

from chat_client.discovery import DiscoveredServer
from chat_client.events import Event


class NetEvents(Message):
    """A batch of client events, in order (a burst is rendered in one go)."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.events = events


class LoginFailed(Message):
    """The first login failed; `reason` says why, in words for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class ServersHeard(Message):
    """The servers heard on the LAN changed (`problem` says why discovery is off, if it is)."""

    def __init__(self, servers: list[DiscoveredServer], problem: str | None = None) -> None:
        super().__init__()
        self.servers = servers
        self.problem = problem
