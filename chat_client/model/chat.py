"""What the chat looks like, without any UI: buffers (rooms and conversations), lines, members, unread
counts, mentions and the connection status.

`ChatModel.apply(event)` folds one client event into the model and returns a `Changes` record saying
what to redraw, so the TUI and the plain line mode render the same state and the logic has plain unit
tests. Every buffer keeps at most `max_lines` lines (a deque), so memory stays bounded however busy the
room. Untrusted text is stored as received; it is made visible (`shared.text.visible`) when rendered.

`ChatModel` holds the buffers and the one way a line gets into one (`add_line`, which counts unread lines
and spots mentions); its `apply` is the one table that sends each event type to its handler. The handlers
are plain functions over `(model, event, changes)`: `room_events` (rooms and people), `message_events`
(messages, history, the outbox and transfers) and `status_events` (the connection, errors, statistics).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from chat_client.model import message_events, room_events, status_events
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
from chat_client.net.events import (
    Closed,
    Connected,
    Disconnected,
    Event,
    LagMeasured,
    OutboxChanged,
    Reconnecting,
)
from chat_client.net.progress import TransferInfo, TransferUpdate
from chat_client.net.trust import ServerIdentity
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
    fold,
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


class ChatModel:
    """All buffers, the connection status and the current buffer; see the module docstring."""

    def __init__(
        self, nick: str, *, max_lines: int = DEFAULT_MAX_LINES, clock: Callable[[], float] = time.time
    ) -> None:
        self.nick = nick
        self.max_lines = max_lines
        self.clock = clock
        self.buffers: dict[str, Buffer] = {}
        self.server_buffer = self._buffer(SERVER_KEY, "server", BufferKind.SERVER)
        self.current = SERVER_KEY
        self.status = ConnectionStatus.CONNECTING
        self.server_name = ""
        self.lag: float | None = None
        #: When the next reconnect attempt starts (on `clock`), while reconnecting.
        self.reconnect_at: float | None = None
        self.status_reason = ""
        #: My own away message while I am away (the status line shows it), None while I am not.
        self.away: str | None = None
        # The buffers that were told "disconnected": each is told "reconnected" when the connection is back.
        self.told_disconnected: set[str] = set()
        #: The server's verified TLS key while connected with TLS (the status line says "encrypted").
        self.identity: ServerIdentity | None = None
        # Rooms the user asked to join: the first Joined for one of them switches to it.
        self.switch_on_join: set[str] = set()
        # Rooms whose next RoomState answers a /who, and is listed in the buffer.
        self.listing_members: set[str] = set()
        #: File transfers by number: the running ones and the last few that ended.
        self.transfers: dict[int, TransferInfo] = {}
        self._mention = self._mention_pattern(nick)
        # (room key, nick key) of members a kick or ban just put out: their `left` adds no line of its own.
        self.removed: set[tuple[str, str]] = set()

    # -- Applying events ---------------------------------------------------------------------------------

    def apply(self, event: Event) -> Changes:
        """Fold one client event into the model: the one table from event type to its handler."""
        changes = Changes()
        match event:
            case Said():
                message_events.on_said(self, event, changes)
            case Told():
                message_events.on_told(self, event, changes)
            case OutboxChanged():
                message_events.on_outbox(self, event, changes)
            case History():
                message_events.on_history(self, event, changes)
            case FileOffered():
                message_events.on_file_offered(self, event, changes)
            case TransferUpdate():
                message_events.on_transfer(self, event, changes)
            case Joined():
                room_events.on_joined(self, event, changes)
            case Left():
                room_events.on_left(self, event, changes)
            case SignedOff():
                room_events.on_signed_off(self, event, changes)
            case NickChanged():
                room_events.on_nick_changed(self, event, changes)
            case TopicChanged():
                room_events.on_topic(self, event, changes)
            case AwayChanged():
                room_events.on_away(self, event, changes)
            case RoomState():
                room_events.on_room_state(self, event, changes)
            case RoomList():
                room_events.on_room_list(self, event, changes)
            case Moderated():
                room_events.on_moderated(self, event, changes)
            case BanList():
                room_events.on_ban_list(self, event, changes)
            case Registration():
                room_events.on_registration(self, event, changes)
            case Connected():
                status_events.on_connected(self, event, changes)
            case Disconnected():
                status_events.on_disconnected(self, event, changes)
            case Reconnecting():
                status_events.on_reconnecting(self, event, changes)
            case LagMeasured():
                status_events.on_lag(self, event, changes)
            case Closed():
                status_events.on_closed(self, event, changes)
            case Error():
                status_events.on_error(self, event, changes)
            case StatsReport():
                status_events.on_stats_report(self, event, changes)
        return changes

    def apply_all(self, events: Iterable[Event]) -> Changes:
        """Fold several events, merging what changed."""
        total = Changes()
        for event in events:
            merge(total, self.apply(event))
        return total

    # -- Buffers -----------------------------------------------------------------------------------------

    def _buffer(self, key: str, name: str, kind: BufferKind) -> Buffer:
        buffer = self.buffers.get(key)
        if buffer is None:
            buffer = Buffer(key, name, kind, max_lines=self.max_lines)
            self.buffers[key] = buffer
        return buffer

    def room(self, name: str) -> Buffer:
        """The buffer of room `name`, created if needed."""
        return self._buffer(room_key(name), name, BufferKind.ROOM)

    def conversation(self, nick: str) -> Buffer:
        """The buffer of the direct conversation with `nick`, created if needed."""
        return self._buffer(peer_key(nick), nick, BufferKind.DIRECT)

    @property
    def current_buffer(self) -> Buffer:
        """The buffer on screen."""
        return self.buffers[self.current]

    def ordered(self) -> list[Buffer]:
        """Buffers in the order the room list shows them: server, rooms, then conversations."""
        rank = {BufferKind.SERVER: 0, BufferKind.ROOM: 1, BufferKind.DIRECT: 2}
        return sorted(self.buffers.values(), key=lambda b: (rank[b.kind], fold(b.name)))

    def switch(self, key: str) -> bool:
        """Show buffer `key` and mark it read (its first unread line becomes the place where the reader
        left off: `Buffer.marker`); False if there is no such buffer."""
        if key not in self.buffers:
            return False
        self.current = key
        buffer = self.buffers[key]
        buffer.marker, buffer.first_unread = buffer.first_unread, None
        buffer.unread = 0
        buffer.mentioned = False
        return True

    def close_buffer(self, key: str) -> None:
        """Remove a buffer (never the server buffer) and show another one."""
        if key == SERVER_KEY or key not in self.buffers:
            return
        del self.buffers[key]
        if self.current == key:
            rooms = [b.key for b in self.ordered() if b.kind is BufferKind.ROOM]
            self.switch(rooms[0] if rooms else SERVER_KEY)

    def expect_join(self, room: str) -> None:
        """The user asked to join `room`: switch to it when the server confirms."""
        self.switch_on_join.add(room_key(room))

    def expect_member_list(self, room: str) -> None:
        """The user asked /who: list the members when the room state arrives."""
        self.listing_members.add(room_key(room))

    def nicks(self) -> list[str]:
        """Every nick known from the rooms and conversations (for completion), most relevant first."""
        seen: dict[str, str] = {}
        for buffer in [self.current_buffer, *self.buffers.values()]:
            for member in buffer.members.values():
                seen.setdefault(fold(member.nick), member.nick)
            if buffer.kind is BufferKind.DIRECT:
                seen.setdefault(fold(buffer.name), buffer.name)
        seen.pop(fold(self.nick), None)
        return list(seen.values())

    def room_names(self) -> list[str]:
        """The rooms with a buffer."""
        return [b.name for b in self.ordered() if b.kind is BufferKind.ROOM]

    # -- Lines -------------------------------------------------------------------------------------------

    def notice(self, text: str, key: str | None = None, *, error: bool = False) -> Changes:
        """Add a line of our own (help, a local error) to buffer `key` (the current one by default)."""
        changes = Changes()
        self.add_line(
            changes, key or self.current, LineKind.ERROR if error else LineKind.NOTICE, text, count=False
        )
        return changes

    def add_line(
        self,
        changes: Changes,
        key: str,
        kind: LineKind,
        text: str,
        *,
        nick: str | None = None,
        ts: float | None = None,
        message_id: int | None = None,
        own: bool = False,
        count: bool = True,
        direct: bool = False,
        notify: bool = True,
    ) -> None:
        buffer = self.buffers[key]
        line = self.new_line(kind, text, nick=nick, ts=ts, message_id=message_id, own=own, direct=direct)
        mention = line.mention
        if not buffer.append(line):
            return
        changes.add(key, line)
        if mention and notify:
            changes.mentions.append((key, line))
        if count and key != self.current and not own:
            if not buffer.unread:
                buffer.first_unread = line
            buffer.unread += 1
            buffer.mentioned = buffer.mentioned or mention
            changes.buffers = True

    def new_line(
        self,
        kind: LineKind,
        text: str,
        *,
        nick: str | None = None,
        ts: float | None = None,
        message_id: int | None = None,
        own: bool = False,
        direct: bool = False,
    ) -> Line:
        """A line as `add_line` would add it (a mention when it names me, or is a direct message to me)."""
        mention = not own and nick is not None and (direct or self.mentions_me(text))
        return Line(ts if ts is not None else self.clock(), kind, text, nick, message_id, mention, own)

    @staticmethod
    def _mention_pattern(nick: str) -> re.Pattern[str]:
        return re.compile(rf"(?<![\w.-]){re.escape(nick)}(?![\w-])", re.IGNORECASE)

    def mentions_me(self, text: str) -> bool:
        """True if `text` names my nick as a word."""
        return self._mention.search(text) is not None

    def set_nick(self, nick: str) -> None:
        self.nick = nick
        self._mention = self._mention_pattern(nick)

    def is_me(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)
