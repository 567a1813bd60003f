"""The pieces of the chat model: buffers of lines, and the record of what one event changed.

A `Buffer` is a room, a direct conversation or the server's own messages. It keeps at most `max_lines`
lines in a deque (the oldest go first) and the ids of the messages it shows, so a message that arrives
twice is shown once. No UI here: `chat_client.model.ChatModel` fills these, the renderers read them.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from chat_client.model.colours import NickColours
from chat_client.net.outbox import OutboxEntry
from shared import Member, Reaction, fold

#: Lines kept per buffer (the scrollback); the oldest go first.
DEFAULT_MAX_LINES = 2000
#: The key of the server buffer (notices, errors, room lists); no room or nick key can look like it.
SERVER_KEY = "*server*"


class BufferKind(enum.StrEnum):
    """What a buffer shows."""

    SERVER = "server"
    ROOM = "room"
    DIRECT = "direct"


class LineKind(enum.StrEnum):
    """How a line is shown."""

    MESSAGE = "message"
    ACTION = "action"
    NOTICE = "notice"
    ERROR = "error"
    FILE = "file"  # a file offer: `text` names the file and its size, `id` is what /get takes
    DIVIDER = "divider"  # a rule across the log with a label (where the history sent on joining ends)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a buffer. `ts` is seconds since the epoch; `id` the server's message id, if any.

    A message line also carries its conversation state (docs/protocol.md, section 6.3), updated in place
    (`Buffer.replace`) as edits, deletions and reactions arrive: `reply_to` (the id of the message it
    answers; `ChatModel.reply_quote` makes the "↳ alice: first words…" quote of it), `edited` (when it was
    last edited, seconds since the epoch), `deleted` (a tombstone: its `text` is empty), `reactions`
    (aggregated, with who reacted, in the order they came) and `rev` (the id of the latest event its state
    includes: an event or a history entry with a smaller one is older and is skipped).
    """

    ts: float
    kind: LineKind
    text: str
    nick: str | None = None
    id: int | None = None
    mention: bool = False
    own: bool = False
    reply_to: int | None = None
    edited: float | None = None
    deleted: bool = False
    reactions: tuple[Reaction, ...] = ()
    rev: int = 0


class UpdateKind(enum.StrEnum):
    """What changed a line in place."""

    EDITED = "edited"
    DELETED = "deleted"
    REACTED = "reacted"
    UNREACTED = "unreacted"
    #: A history page showed a newer state of a message already shown (changed while we were away).
    REFRESHED = "refreshed"


@dataclass(frozen=True, slots=True)
class Update:
    """A line of buffer `key` changed in place: `line` is its new state (the old one is gone from the
    buffer); `nick` made the change, `reaction` is the one added or taken off."""

    key: str
    line: Line
    kind: UpdateKind
    nick: str | None = None
    reaction: str | None = None


class ConnectionStatus(enum.StrEnum):
    """What the status line says about the connection."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages a resume skipped (`History.skipped`): `count` of them between ids `after` and `before`,
    fetched forward (oldest first) with `/more`."""

    after: int
    before: int
    #: 0: not known (a jump to a search hit left messages between it and the lines shown).
    count: int


@dataclass(slots=True)
class Buffer:
    """A room, a direct conversation, or the server's own messages."""

    key: str
    name: str
    kind: BufferKind
    max_lines: int = DEFAULT_MAX_LINES
    lines: deque[Line] = field(init=False)
    unread: int = 0
    mentioned: bool = False
    topic: str = ""
    members: dict[str, Member] = field(default_factory=dict)
    #: The room's modes in force: "topic_lock", "invite_only", "keyed".
    modes: set[str] = field(default_factory=set)
    #: The room's key, when the server showed it to us (we are an operator).
    key_secret: str | None = None
    joined: bool = False
    #: True when the server has messages older than the oldest line here.
    more_before: bool = False
    #: A request for older messages is on its way.
    fetching: bool = False
    #: Messages a resume skipped and not shown yet (`/more` fetches the next page of them).
    gap: Gap | None = None
    #: Nicks typing here (a `typing` start), each with when it stops counting (`ChatModel.clock` time).
    typing: dict[str, float] = field(default_factory=dict)
    #: A jump to a search hit is loading its history: (the hit's id, the oldest id shown before, if any),
    #: and how many of its two pages are still to come (chat_client.model.chat, `on_history`).
    context: tuple[int, int | None] | None = None
    context_pages: int = 0
    #: My messages to this buffer still waiting for the server's ack, oldest first.
    pending: list[OutboxEntry] = field(default_factory=list)
    #: The id of the newest message read here, as the nick's read marker says (chat_client.model.attention).
    read_up_to: int = 0
    #: The first line counted as unread (it arrived while another buffer was shown), until shown.
    first_unread: Line | None = None
    #: Where the reader left off: the first line that was unread when the buffer was last shown (the log
    #: puts a "new messages" divider before it), or None.
    marker: Line | None = None
    #: The "you joined" line: the first backfill of the room goes before it (then this is None).
    backfill_anchor: Line | None = None
    #: The colours of the members' nicks (no two members share one while the palette has free ones).
    colours: NickColours = field(default_factory=NickColours)
    _ids: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lines = deque(maxlen=self.max_lines)

    @property
    def oldest_id(self) -> int | None:
        """The smallest message id shown here."""
        return min(self._ids) if self._ids else None

    def has(self, message_id: int) -> bool:
        """True if the message with this id is already shown."""
        return message_id in self._ids

    def find(self, message_id: int) -> Line | None:
        """The line of message `message_id`, if shown (searched from the newest: recent ones change most)."""
        if message_id not in self._ids:
            return None
        return next((line for line in reversed(self.lines) if line.id == message_id), None)

    def replace(self, old: Line, new: Line) -> bool:
        """Put `new` in the place of line `old` (the same message in a new state); False if `old` is gone.

        The markers that point at `old` (unread, reader's place, backfill anchor) follow it to `new`.
        """
        for index in range(len(self.lines) - 1, -1, -1):
            if self.lines[index] is old:
                self.lines[index] = new
                if self.first_unread is old:
                    self.first_unread = new
                if self.marker is old:
                    self.marker = new
                if self.backfill_anchor is old:
                    self.backfill_anchor = new
                return True
        return False

    def append(self, line: Line) -> bool:
        """Add a line at the end; False (and nothing added) if its message is already here."""
        if line.id is not None:
            if line.id in self._ids:
                return False
            self._ids.add(line.id)
        if len(self.lines) == self.lines.maxlen:
            self._forget(self.lines.popleft())
        self.lines.append(line)
        return True

    def insert_before(self, anchor: Line, older: list[Line]) -> list[Line]:
        """Insert lines just before `anchor` (at the end if it is gone); return those added.

        The first backfill of a room goes before the "you joined" line this way, so the log runs in time
        order. The oldest lines go first when the buffer is full.
        """
        fresh = [line for line in older if line.id is None or line.id not in self._ids]
        position = next((i for i, line in enumerate(self.lines) if line is anchor), len(self.lines))
        for line in fresh:
            if line.id is not None:
                self._ids.add(line.id)
        merged = [*list(self.lines)[:position], *fresh, *list(self.lines)[position:]]
        for line in merged[: -self.max_lines]:
            self._forget(line)
        self.lines = deque(merged[-self.max_lines :], maxlen=self.max_lines)
        kept = {id(line) for line in self.lines}
        return [line for line in fresh if id(line) in kept]

    def _forget(self, line: Line) -> None:
        if line.id is not None:
            self._ids.discard(line.id)
        # A dropped marker moves to the oldest line left (the lines after it are still unread).
        if line is self.first_unread:
            self.first_unread = self.lines[0] if self.lines else None
        if line is self.marker:
            self.marker = self.lines[0] if self.lines else None

    def prepend(self, older: Iterable[Line]) -> int:
        """Add older lines at the start, as many as fit; return how many were added."""
        fresh = [line for line in older if line.id is None or line.id not in self._ids]
        room = self.max_lines - len(self.lines)
        if room <= 0:
            return 0
        kept = fresh[-room:]
        for line in reversed(kept):
            if line.id is not None:
                self._ids.add(line.id)
            self.lines.appendleft(line)
        return len(kept)

    @property
    def newest_id(self) -> int | None:
        """The largest message id shown here."""
        return max(self._ids) if self._ids else None

    def insert(self, lines: list[Line]) -> int:
        """Insert message lines (oldest first) where their ids belong: before the first line with a larger
        id (a gap being filled). If the buffer overflows, its oldest lines go. Return how many were added."""
        fresh = [line for line in lines if line.id is not None and line.id not in self._ids]
        if not fresh:
            return 0
        last = fresh[-1].id or 0
        current = list(self.lines)
        at = next(
            (i for i, line in enumerate(current) if line.id is not None and line.id > last), len(current)
        )
        current[at:at] = fresh
        self._ids.update(line.id for line in fresh if line.id is not None)
        for dropped in current[: max(0, len(current) - self.max_lines)]:
            if dropped.id is not None:
                self._ids.discard(dropped.id)
        self.lines = deque(current, maxlen=self.max_lines)
        return len(fresh)

    @property
    def full(self) -> bool:
        """True when no older line can be added."""
        return len(self.lines) >= self.max_lines


@dataclass(slots=True)
class Changes:
    """What one `apply()` changed, for the renderer."""

    #: Lines appended per buffer key, in order.
    lines: dict[str, list[Line]] = field(default_factory=dict)
    #: Buffers whose lines must be redrawn from scratch (older history was inserted).
    redraw: set[str] = field(default_factory=set)
    #: Lines inserted inside a buffer (a skipped gap being filled, `/more`), per key, in order: a renderer
    #: that redraws ignores them; one that can only print lines (`--plain`) prints them.
    inserted: dict[str, list[Line]] = field(default_factory=dict)
    #: The list of buffers, their unread counts or the current buffer changed.
    buffers: bool = False
    members: set[str] = field(default_factory=set)
    topic: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)
    status: bool = False
    #: New lines that call for attention, for notifications: those that mention me (or a keyword), and
    #: every message of a buffer whose notification level is `all` (direct messages by default); none of a
    #: `none` one.
    mentions: list[tuple[str, Line]] = field(default_factory=list)
    #: Errors to show to the user right away.
    alerts: list[str] = field(default_factory=list)
    #: File transfers (by number) whose progress or state changed.
    transfers: set[int] = field(default_factory=set)
    #: A page of search hits arrived (`ChatModel.search`).
    search: bool = False
    #: Buffers whose "… is typing" changed.
    typing: set[str] = field(default_factory=set)
    #: Lines changed in place (edited, deleted, reacted to), in order. Their buffers are in `redraw` too,
    #: so a renderer that redraws needs nothing more; one that can only print (`--plain`) prints these.
    updated: list[Update] = field(default_factory=list)

    def add(self, key: str, line: Line) -> None:
        """Record an appended line."""
        self.lines.setdefault(key, []).append(line)


def room_key(room: str) -> str:
    """The buffer key of a room."""
    return "#" + fold(room)


def peer_key(nick: str) -> str:
    """The buffer key of a direct conversation."""
    return "@" + fold(nick)


def merge(total: Changes, more: Changes) -> None:
    """Add `more` into `total`."""
    for key, lines in more.lines.items():
        total.lines.setdefault(key, []).extend(lines)
    total.redraw |= more.redraw
    for key, lines in more.inserted.items():
        total.inserted.setdefault(key, []).extend(lines)
    total.buffers = total.buffers or more.buffers
    total.members |= more.members
    total.topic |= more.topic
    total.pending |= more.pending
    total.status = total.status or more.status
    total.mentions.extend(more.mentions)
    total.alerts.extend(more.alerts)
    total.transfers |= more.transfers
    total.search = total.search or more.search
    total.typing |= more.typing
    total.updated.extend(more.updated)
