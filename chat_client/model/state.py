"""`ModelState`: the buffers of the chat model, the lines in them, unread counts and mentions.

The first layer of `ChatModel` (chat_client.model.chat): what the model holds and the one way a line gets into
a buffer (`_line`, which counts unread lines and spots mentions). The layers above turn events into lines:
`RoomEvents` (chat_client.model.room_events) and `MessageEvents` (chat_client.model.message_events). No UI
here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from chat_client.model.buffers import (
    DEFAULT_MAX_LINES,
    SERVER_KEY,
    Buffer,
    BufferKind,
    Changes,
    ConnectionStatus,
    Line,
    LineKind,
    peer_key,
    room_key,
)
from chat_client.net.progress import TransferInfo
from chat_client.net.trust import ServerIdentity
from shared import fold


class ModelState:
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
        self._told_disconnected: set[str] = set()
        #: The server's verified TLS key while connected with TLS (the status line says "encrypted").
        self.identity: ServerIdentity | None = None
        # Rooms the user asked to join: the first Joined for one of them switches to it.
        self._switch_on_join: set[str] = set()
        # Rooms whose next RoomState answers a /who, and is listed in the buffer.
        self._listing_members: set[str] = set()
        #: File transfers by number: the running ones and the last few that ended.
        self.transfers: dict[int, TransferInfo] = {}
        self._mention = self._mention_pattern(nick)
        # (room key, nick key) of members a kick or ban just put out: their `left` adds no line of its own.
        self._removed: set[tuple[str, str]] = set()

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
        self._switch_on_join.add(room_key(room))

    def expect_member_list(self, room: str) -> None:
        """The user asked /who: list the members when the room state arrives."""
        self._listing_members.add(room_key(room))

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
        self._line(
            changes, key or self.current, LineKind.ERROR if error else LineKind.NOTICE, text, count=False
        )
        return changes

    def _line(
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
        line = self._new_line(kind, text, nick=nick, ts=ts, message_id=message_id, own=own, direct=direct)
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

    def _new_line(
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
        """A line as `_line` would add it (a mention when it names me, or is a direct message to me)."""
        mention = not own and nick is not None and (direct or self.mentions_me(text))
        return Line(ts if ts is not None else self.clock(), kind, text, nick, message_id, mention, own)

    @staticmethod
    def _mention_pattern(nick: str) -> re.Pattern[str]:
        return re.compile(rf"(?<![\w.-]){re.escape(nick)}(?![\w-])", re.IGNORECASE)

    def mentions_me(self, text: str) -> bool:
        """True if `text` names my nick as a word."""
        return self._mention.search(text) is not None

    def _set_nick(self, nick: str) -> None:
        self.nick = nick
        self._mention = self._mention_pattern(nick)

    def _is_me(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)
