"""Textual messages that carry network results to the screens (the worker never touches a widget)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # only annotations: the connect screen must not pay for the network modules
    from chat_client.net.discovery import DiscoveredServer
    from chat_client.net.events import Event


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
