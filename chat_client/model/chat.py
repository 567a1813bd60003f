"""What the chat looks like, without any UI: buffers (rooms and conversations), lines, members, unread
counts, mentions and the connection status.

`ChatModel.apply(event)` folds one client event into the model and returns a `Changes` record saying
what to redraw, so the TUI and the plain line mode render the same state and the logic has plain unit
tests. Every buffer keeps at most `max_lines` lines (a deque), so memory stays bounded however busy the
room. Untrusted text is stored as received; it is made visible (`shared.text.visible`) when rendered.

`ChatModel` is built in layers, each owning one thing: `ModelState` (chat_client.model.state) the buffers
and how a line gets into one; `RoomEvents` (chat_client.model.room_events) the events about rooms and people;
`MessageEvents` (chat_client.model.message_events) messages, history, the outbox and transfers; this module
the connection status, errors, and the table that sends each event to its handler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chat_client.model.admincommands import stats_lines
from chat_client.model.buffers import (
    DEFAULT_MAX_LINES,
    SERVER_KEY,
    Buffer,
    BufferKind,
    Changes,
    ConnectionStatus,
    Line,
    LineKind,
    merge,
    peer_key,
    room_key,
)
from chat_client.model.message_events import MessageEvents
from chat_client.model.room_events import RoomEvents
from chat_client.net.errors import ClientError
from chat_client.net.events import (
    Closed,
    Connected,
    Disconnected,
    Event,
    LagMeasured,
    OutboxChanged,
    Reconnecting,
)
from chat_client.net.progress import TransferUpdate
from chat_client.net.reasons import describe_failure
from shared import (
    AwayChanged,
    BanList,
    Error,
    FileOffered,
    History,
    Joined,
    Left,
    Moderated,
    NickChanged,
    Registration,
    RoomList,
    RoomState,
    Said,
    SignedOff,
    StatsReport,
    Told,
    TopicChanged,
)

# The buffer types are part of the model's interface: importers take them from here.
__all__ = [
    "DEFAULT_MAX_LINES",
    "SERVER_KEY",
    "Buffer",
    "BufferKind",
    "Changes",
    "ChatModel",
    "ConnectionStatus",
    "Line",
    "LineKind",
    "merge",
    "peer_key",
    "room_key",
]


class ChatModel(RoomEvents, MessageEvents):
    """All buffers and the connection status; see the module docstring."""

    # -- Applying events ---------------------------------------------------------------------------------

    def apply(self, event: Event) -> Changes:
        """Fold one client event into the model."""
        changes = Changes()
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, changes)
        return changes

    def apply_all(self, events: Iterable[Event]) -> Changes:
        """Fold several events, merging what changed."""
        total = Changes()
        for event in events:
            merge(total, self.apply(event))
        return total

    # -- The connection ----------------------------------------------------------------------------------

    def _on_connected(self, event: Connected, changes: Changes) -> None:
        welcome = event.welcome
        self._set_nick(welcome.nick)
        self.status = ConnectionStatus.CONNECTED
        self.server_name = welcome.server
        self.reconnect_at = None
        self.status_reason = ""
        self.identity = event.identity
        self.away = None  # a new connection starts not away
        changes.status = True
        # Every buffer that was told "disconnected" is told "reconnected"; the server buffer always hears.
        verb = "reconnected to" if event.resumed else "connected to"
        told, self._told_disconnected = self._told_disconnected, set()
        text = f"{verb} {welcome.server} as {welcome.nick}"
        for key in [SERVER_KEY, *(k for k in told if k != SERVER_KEY and k in self.buffers)]:
            self._line(changes, key, LineKind.NOTICE, text, count=False)
        changes.members |= told
        if event.identity is not None and (not event.resumed or event.identity.pinned_now):
            self._line(changes, SERVER_KEY, LineKind.NOTICE, event.identity.describe(), count=False)
        if welcome.motd and not event.resumed:
            self._line(changes, SERVER_KEY, LineKind.NOTICE, welcome.motd, count=False)

    def _on_disconnected(self, event: Disconnected, changes: Changes) -> None:
        self.status = ConnectionStatus.RECONNECTING if event.will_retry else ConnectionStatus.OFFLINE
        first, *more = event.reason.splitlines() or [""]
        self.status_reason = first
        changes.status = True
        # Every room and conversation says so (and "reconnected" when it is back: `_on_connected`). A long
        # explanation (a changed server key) is several lines, each shown as one, where the user looks.
        for key in self.buffers:
            where_looking = key in (SERVER_KEY, self.current)
            for text in [f"disconnected: {first}", *(more if where_looking else [])]:
                self._line(changes, key, LineKind.ERROR, text, count=False)
            self._told_disconnected.add(key)
        changes.members |= set(self.buffers)  # the member lists grey out while offline
        for buffer in self.buffers.values():
            buffer.fetching = False
            buffer.backfill_anchor = None  # a later history page is news, not the join's backfill

    def _on_reconnecting(self, event: Reconnecting, changes: Changes) -> None:
        self.status = ConnectionStatus.RECONNECTING
        self.reconnect_at = self.clock() + event.delay
        self.status_reason = event.reason
        changes.status = True

    def _on_lag(self, event: LagMeasured, changes: Changes) -> None:
        self.lag = event.seconds
        changes.status = True

    def _on_closed(self, event: Closed, changes: Changes) -> None:
        self.status = ConnectionStatus.OFFLINE
        self.reconnect_at = None
        changes.status = True
        changes.members |= set(self.buffers)  # greyed out: nothing will update them now
        if event.error is not None:
            # The library's own errors are sentences; anything else (a bug) is not shown as Python's text.
            error = event.error
            why = str(error) if isinstance(error, ClientError) else describe_failure(error)
            self.status_reason = why
            self._line(changes, SERVER_KEY, LineKind.ERROR, f"connection closed: {why}", count=False)
            changes.alerts.append(f"connection closed: {why}")

    def _on_stats_report(self, event: StatsReport, changes: Changes) -> None:
        for text in stats_lines(event):
            self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_error(self, event: Error, changes: Changes) -> None:
        text = f"{event.code}: {event.message}" if event.message else event.code
        self._line(changes, self.current, LineKind.ERROR, text, count=False)
        changes.alerts.append(text)


_HANDLERS: dict[type, Callable[[ChatModel, object, Changes], None]] = {
    Connected: ChatModel._on_connected,  # type: ignore[dict-item]
    Disconnected: ChatModel._on_disconnected,  # type: ignore[dict-item]
    Reconnecting: ChatModel._on_reconnecting,  # type: ignore[dict-item]
    LagMeasured: ChatModel._on_lag,  # type: ignore[dict-item]
    Closed: ChatModel._on_closed,  # type: ignore[dict-item]
    OutboxChanged: ChatModel._on_outbox,  # type: ignore[dict-item]
    Said: ChatModel._on_said,  # type: ignore[dict-item]
    Told: ChatModel._on_told,  # type: ignore[dict-item]
    History: ChatModel._on_history,  # type: ignore[dict-item]
    Joined: ChatModel._on_joined,  # type: ignore[dict-item]
    Left: ChatModel._on_left,  # type: ignore[dict-item]
    SignedOff: ChatModel._on_signed_off,  # type: ignore[dict-item]
    NickChanged: ChatModel._on_nick_changed,  # type: ignore[dict-item]
    TopicChanged: ChatModel._on_topic,  # type: ignore[dict-item]
    AwayChanged: ChatModel._on_away,  # type: ignore[dict-item]
    RoomState: ChatModel._on_room_state,  # type: ignore[dict-item]
    RoomList: ChatModel._on_room_list,  # type: ignore[dict-item]
    Moderated: ChatModel._on_moderated,  # type: ignore[dict-item]
    BanList: ChatModel._on_ban_list,  # type: ignore[dict-item]
    Error: ChatModel._on_error,  # type: ignore[dict-item]
    FileOffered: ChatModel._on_file_offered,  # type: ignore[dict-item]
    TransferUpdate: ChatModel._on_transfer,  # type: ignore[dict-item]
    Registration: ChatModel._on_registration,  # type: ignore[dict-item]
    StatsReport: ChatModel._on_stats_report,  # type: ignore[dict-item]
}
