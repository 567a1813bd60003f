"""What the chat looks like, without any UI: buffers (rooms and conversations), lines, members, unread
counts, mentions and the connection status.

`ChatModel.apply(event)` folds one client event into the model and returns a `Changes` record saying
what to redraw, so the TUI and the plain line mode render the same state and the logic has plain unit
tests. Every buffer keeps at most `max_lines` lines (a deque), so memory stays bounded however busy the
room. Untrusted text is stored as received; it is made visible (`shared.text.visible`) when rendered.

`ChatModel` holds the buffers and the one way a line gets into one (`add_line`, which counts unread lines
and spots mentions); its `apply` is the one table that sends each event type to its handler. The handlers
are plain functions over `(model, event, changes)`: those of messages, history, the outbox and transfers
(the lines themselves) are at the end of this module, below the model they fill; `room_events` (rooms and
people) and `status_events` (the connection, errors, statistics) have modules of their own.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable

from chat_client.model import attention, room_events, status_events
from chat_client.model.buffers import (
    DEFAULT_MAX_LINES,
    SERVER_KEY,
    Buffer,
    BufferKind,
    Changes,
    ConnectionStatus,
    Gap,
    Line,
    LineKind,
    Update,
    UpdateKind,
    merge,
    peer_key,
    room_key,
)
from chat_client.model.moderation import describe
from chat_client.model.search import TYPING_SHOWN, SearchView
from chat_client.net.events import (
    Closed,
    Connected,
    Disconnected,
    Event,
    LagMeasured,
    OutboxChanged,
    Reconnecting,
)
from chat_client.net.outbox import DeliveryState, OutboxEntry
from chat_client.net.progress import (
    MAX_FINISHED_TRANSFERS,
    TransferInfo,
    TransferState,
    TransferUpdate,
    ended_line,
    offer_text,
    started_line,
)
from chat_client.net.trust import ServerIdentity
from shared import (
    AwayChanged,
    BanList,
    Deleted,
    Edited,
    Error,
    FileOffered,
    History,
    Joined,
    Left,
    Moderated,
    NickChanged,
    NotifySettings,
    Reacted,
    Reaction,
    ReadMarker,
    Registration,
    RoomList,
    RoomState,
    Said,
    SearchResults,
    SignedOff,
    StatsReport,
    Told,
    TopicChanged,
    Typing,
    Unreacted,
    fold,
)
from shared.messages import SessionInfo, Sessions

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
    "Update",
    "UpdateKind",
    "merge",
    "peer_key",
    "room_key",
]


#: The label of the divider between the history sent on joining a room and the live lines after it.
BACKFILL_DIVIDER = "history above · live below"
#: A stored message a buffer shows: said in a room, told directly, a file offered in either, a moderation.
Item = Said | Told | FileOffered | Moderated
#: What a deleted message shows in the place of its text (its text is gone: docs/protocol.md, 6.3).
DELETED_LABEL = "message deleted"
#: The mark of an edited message.
EDITED_MARK = "(edited)"
#: The longest quote of a replied-to message in a reply's "↳ alice: first words…" line, in characters.
QUOTE_CHARS = 48
#: An edit, a deletion or a reaction of a message (docs/protocol.md, section 6.3).
ConversationEvent = Edited | Deleted | Reacted | Unreacted


class ChatModel:
    """All buffers, the connection status and the current buffer; see the module docstring."""

    def __init__(
        self, nick: str, *, max_lines: int = DEFAULT_MAX_LINES, clock: Callable[[], float] = time.time
    ) -> None:
        self.nick = nick
        self.max_lines = max_lines
        self.clock = clock
        self.buffers: dict[str, Buffer] = {}
        #: The nick's read markers by buffer key, as the server last told them (chat_client.model.attention).
        self.read_markers: dict[str, int] = {}
        #: Notification levels that are not the default, by buffer key, and the keywords (`attention`).
        self.notify_levels: dict[str, str] = {}
        self.keywords: tuple[str, ...] = ()
        #: This session's id and every session of our nick (a registered nick may have several).
        self.session_id: int | None = None
        self.sessions: tuple[SessionInfo, ...] = ()
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
        #: The last search asked for (`/search`, the TUI's search panel) and the hits it got so far.
        self.search: SearchView | None = None

    # -- Applying events ---------------------------------------------------------------------------------

    def apply(self, event: Event) -> Changes:
        """Fold one client event into the model: the one table from event type to its handler."""
        changes = Changes()
        match event:
            case Said():
                on_said(self, event, changes)
            case Told():
                on_told(self, event, changes)
            case OutboxChanged():
                on_outbox(self, event, changes)
            case Edited() | Deleted() | Reacted() | Unreacted():
                on_conversation_event(self, event, changes)
            case History():
                on_history(self, event, changes)
            case FileOffered():
                on_file_offered(self, event, changes)
            case TransferUpdate():
                on_transfer(self, event, changes)
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
            case SearchResults():
                if self.search is not None:
                    self.search.take(event)
                    changes.search = True
            case Typing():
                on_typing(self, event, changes)
            case Sessions():
                status_events.on_sessions(self, event, changes)
            case ReadMarker():
                attention.on_read_marker(self, event, changes)
            case NotifySettings():
                attention.on_notify_settings(self, event, changes)
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
            attention.adopt(self, buffer)
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

    def expect_context(self, key: str, message_id: int) -> None:
        """The user jumps to message `message_id` in buffer `key` (a search hit): the two pages of history
        around it that are asked for next go where their ids belong (`on_history`)."""
        buffer = self.buffers[key]
        buffer.context = (message_id, buffer.oldest_id)
        buffer.context_pages = 2

    def typists(self, key: str) -> list[str]:
        """The nicks typing in buffer `key` now, in the order they started (expired ones are forgotten)."""
        buffer = self.buffers.get(key)
        if buffer is None:
            return []
        now = self.clock()
        for nick in [nick for nick, until in buffer.typing.items() if until <= now]:
            del buffer.typing[nick]
        return list(buffer.typing)

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
        state: Said | Told | None = None,
        reply_to: int | None = None,
    ) -> None:
        buffer = self.buffers[key]
        line = self.new_line(kind, text, nick=nick, ts=ts, message_id=message_id, own=own, direct=direct)
        if state is not None:
            line = with_state(line, state)
        elif reply_to is not None:
            line = dataclasses.replace(line, reply_to=reply_to)
        if not buffer.append(line):
            return
        changes.add(key, line)
        # The buffer's notification level says what calls for attention (chat_client.model.attention).
        level = attention.level_of(self, key)
        mention = line.mention and level != "none"
        every = (
            level == "all" and count and not own and message_id is not None and kind in attention.UNREAD_KINDS
        )
        if notify and (mention or every):
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
    def _mention_pattern(nick: str, keywords: tuple[str, ...] = ()) -> re.Pattern[str]:
        words = "|".join(re.escape(word) for word in (nick, *keywords))
        return re.compile(rf"(?<![\w.-])(?:{words})(?![\w-])", re.IGNORECASE)

    def mentions_me(self, text: str) -> bool:
        """True if `text` names my nick as a word."""
        return self._mention.search(text) is not None

    # -- Conversations: the API the views use (replies, edits, deletions, reactions) ----------------------

    def find_message(self, message_id: int, key: str | None = None) -> tuple[str, Line] | None:
        """The buffer key and line of message `message_id`: in buffer `key`, or (None) in the current buffer
        first and then any other; None if no buffer shows it."""
        keys = [key] if key is not None else [self.current, *(k for k in self.buffers if k != self.current)]
        for candidate in keys:
            buffer = self.buffers.get(candidate)
            line = buffer.find(message_id) if buffer is not None else None
            if line is not None:
                return candidate, line
        return None

    def reply_quote(self, key: str, line: Line, width: int = QUOTE_CHARS) -> str | None:
        """The one-line quote of the message `line` replies to: ``↳ alice: first words…``, ``↳ alice:
        message deleted``, or ``↳ #42`` when that message is not in the buffer (older than what is loaded);
        None for a line that is no reply. Untrusted text, as received: render it through `visible`."""
        if line.reply_to is None:
            return None
        found = self.find_message(line.reply_to, key)
        if found is None:
            return f"↳ #{line.reply_to}"
        parent = found[1]
        text = DELETED_LABEL if parent.deleted else " ".join(parent.text.split())
        if len(text) > width:
            text = text[: width - 1].rstrip() + "…"
        return f"↳ {parent.nick or '?'}: {text}"

    def replies_to(self, key: str, message_id: int) -> list[Line]:
        """The thread of a message: the lines of buffer `key` that reply to it, oldest first."""
        buffer = self.buffers.get(key)
        return [line for line in buffer.lines if line.reply_to == message_id] if buffer else []

    def last_own_message(self, key: str | None = None) -> Line | None:
        """My newest message in buffer `key` (the current one by default) that can still be edited: sent
        (it has an id), not deleted. What ``s/old/new/`` corrects, and what Up in an empty input selects."""
        buffer = self.buffers.get(key or self.current)
        if buffer is None:
            return None
        for line in reversed(buffer.lines):
            if line.own and line.id is not None and not line.deleted and line.kind in _EDITABLE:
                return line
        return None

    def set_nick(self, nick: str) -> None:
        self.nick = nick
        self._mention = self._mention_pattern(nick, self.keywords)

    def set_keywords(self, keywords: tuple[str, ...]) -> None:
        """Words that make a line a mention, as the nick does (docs/protocol.md, `keywords`)."""
        self.keywords = keywords
        self._mention = self._mention_pattern(self.nick, keywords)

    def is_me(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)


# -- How messages, history, our own outbox and file transfers change the model ----------------------------
# Said and told messages, file offers and moderation records become lines of their buffer; history pages
# are merged in (older pages prepended, the first backfill marked as old news); our outbox entries show as
# pending and then as sent or refused; transfers add a line when they start and when they end.


def on_typing(model: ChatModel, event: Typing, changes: Changes) -> None:
    """Someone started or stopped typing in a room we are in (never ourselves: the server does not echo)."""
    if event.nick is None or fold(event.nick) == fold(model.nick):
        return
    buffer = model.buffers.get(room_key(event.room))
    if buffer is None:
        return
    if event.active:
        buffer.typing.pop(event.nick, None)  # the newest start goes last
        buffer.typing[event.nick] = model.clock() + TYPING_SHOWN
    elif buffer.typing.pop(event.nick, None) is None:
        return
    changes.typing.add(buffer.key)


def _stopped_typing(model: ChatModel, key: str, nick: str, changes: Changes) -> None:
    """`nick`'s message arrived in buffer `key`: they are no longer typing it."""
    buffer = model.buffers.get(key)
    if buffer is not None and buffer.typing.pop(nick, None) is not None:
        changes.typing.add(key)


def on_said(model: ChatModel, event: Said, changes: Changes) -> None:
    key = model.room(event.room).key
    _stopped_typing(model, key, event.nick, changes)
    _add_message(model, changes, key, event)


def _add_message(model: ChatModel, changes: Changes, key: str, event: Said | Told) -> None:
    """A room's (`Said`) or a conversation's (`Told`) message, as a line of buffer `key`."""
    model.add_line(
        changes,
        key,
        LineKind.ACTION if event.action else LineKind.MESSAGE,
        event.text,
        nick=event.nick,
        ts=event.ts / 1000,
        message_id=event.id,
        own=fold(event.nick) == fold(model.nick),
        direct=isinstance(event, Told),
        state=event,
    )


def _told_key(model: ChatModel, event: Told | FileOffered) -> str:
    mine = fold(event.nick) == fold(model.nick)
    return model.conversation(event.to if mine and event.to is not None else event.nick).key


def on_told(model: ChatModel, event: Told, changes: Changes) -> None:
    existed = peer_key(event.nick) in model.buffers
    key = _told_key(model, event)
    if not existed:
        # A conversation may have history from earlier sessions: scrolling past its top asks.
        model.buffers[key].more_before = True
    _add_message(model, changes, key, event)
    if not existed:
        changes.buffers = True


def on_history(model: ChatModel, event: History, changes: Changes) -> None:
    """A history page: first the messages already shown are brought to the page's state (when newer:
    rule 1 of docs/protocol.md, section 6.3), then the new ones are added, then the page's events are
    applied (rule 2: each only when newer than the state shown)."""
    _refresh_shown(model, event, changes)
    _history_messages(model, event, changes)
    for item in event.events or ():
        on_conversation_event(model, item, changes)


def _history_messages(model: ChatModel, event: History, changes: Changes) -> None:
    if _context_page(model, event, changes):
        return
    if event.direct and event.peer is not None:
        # A page of one conversation (scrolled past its top): it says itself whether more is left.
        buffer = model.conversation(event.peer)
        buffer.fetching = False
        page: list[Item] = [item for item in event.messages if isinstance(item, Told | FileOffered)]
        _history_lines(model, buffer.key, page, more=event.more, changes=changes)
        changes.buffers = True
        return
    if event.direct:
        # Group by conversation first, so each buffer judges once whether this is its first backfill.
        by_peer: dict[str, list[Item]] = {}
        for item in event.messages:
            if isinstance(item, Told | FileOffered):
                by_peer.setdefault(_told_key(model, item), []).append(item)
        for key, items in by_peer.items():
            # Whether this conversation has older messages is unknown here (the page mixes them):
            # assume so, and let its first page back say.
            _history_lines(model, key, items, more=True, changes=changes)
        changes.buffers = True
        return
    if event.room is None:
        return
    buffer = model.room(event.room)
    buffer.fetching = False
    if _fill_gap(model, buffer, event, changes):
        return
    if event.skipped:
        newest = buffer.newest_id
        if newest is not None and event.messages:
            buffer.gap = Gap(after=newest, before=event.messages[0].id, count=event.skipped)
        text = f"{event.skipped} older messages were skipped while you were away"
        if buffer.gap is not None:
            text += ": /more shows them"
        model.add_line(changes, buffer.key, LineKind.NOTICE, text, count=False)
    _history_lines(model, buffer.key, list(event.messages), more=event.more, changes=changes)
    if event.read_up_to is not None:
        attention.move(model, buffer.key, event.read_up_to, changes)
    if buffer.read_up_to:
        attention.recount(model, buffer)  # the backfill's lines past the marker are unread


def _context_page(model: ChatModel, event: History, changes: Changes) -> bool:
    """A page of the history around a search hit being jumped to (`ChatModel.expect_context`): insert it
    where its ids belong. The second page (the messages after the hit) leaves a gap, shown with `/more`,
    when more messages lie between it and the lines shown before the jump. False if the page is not one."""
    if event.room is not None:
        key = room_key(event.room)
    elif event.direct and event.peer is not None:
        key = peer_key(event.peer)
    else:
        return False
    buffer = model.buffers.get(key)
    if buffer is None or buffer.context is None or buffer.context_pages <= 0:
        return False
    hit, oldest_before = buffer.context
    buffer.context_pages -= 1
    second = buffer.context_pages == 0
    if second:
        buffer.context = None
    buffer.fetching = False
    lines = [_history_line(model, item) for item in event.messages]
    if buffer.insert(lines):
        changes.redraw.add(key)
        changes.inserted.setdefault(key, []).extend(lines)
    if not second:
        if oldest_before is None or hit < oldest_before:
            buffer.more_before = event.more  # the page reaches back from the hit
        return True
    if event.more and oldest_before is not None and event.messages:
        text = "more messages lie between the search hit and the lines below"
        if buffer.kind is BufferKind.ROOM and buffer.gap is None:
            buffer.gap = Gap(event.messages[-1].id, oldest_before, 0)
            text += ": /more shows the next ones"
        model.add_line(changes, key, LineKind.NOTICE, text, count=False)
    changes.buffers = True
    return True


def _fill_gap(model: ChatModel, buffer: Buffer, event: History, changes: Changes) -> bool:
    """A page of the messages a resume skipped (`/more`): insert it where it belongs. False if the page
    is not one."""
    gap = buffer.gap
    if gap is None or not event.messages:
        return False
    if not all(gap.after < item.id < gap.before for item in event.messages):
        return False
    lines = [_history_line(model, item) for item in event.messages]
    if buffer.insert(lines):
        changes.redraw.add(buffer.key)
        changes.inserted.setdefault(buffer.key, []).extend(lines)
    left = max(gap.count - len(event.messages), 0)
    buffer.gap = Gap(event.messages[-1].id, gap.before, left) if event.more else None
    if buffer.gap is not None:
        text = f"{left} more skipped messages" if gap.count else "more messages here"
        model.add_line(
            changes, buffer.key, LineKind.NOTICE, f"{text}: /more shows the next ones", count=False
        )
    return True


def _history_lines(
    model: ChatModel, key: str, items: list[Item], *, more: bool | None, changes: Changes
) -> None:
    buffer = model.buffers[key]
    oldest = buffer.oldest_id
    if oldest is not None and items and all(item.id < oldest for item in items):
        lines = [_history_line(model, item) for item in items]
        if buffer.prepend(lines):
            changes.redraw.add(key)
        if more is not None:
            buffer.more_before = more and not buffer.full
        return
    if more is not None and oldest is None:
        buffer.more_before = more
    fresh_buffer = buffer.oldest_id is None  # no message yet (notices do not count)
    anchor, buffer.backfill_anchor = buffer.backfill_anchor, None
    if fresh_buffer and anchor is not None:
        _backfill_before(model, key, anchor, items, changes)
        return
    for item in items:
        if isinstance(item, Moderated):
            line = _history_line(model, item)
            model.add_line(changes, key, line.kind, line.text, ts=line.ts, message_id=item.id, count=False)
            continue
        own = fold(item.nick) == fold(model.nick)
        kind, text = _kind_and_text(item)
        direct = isinstance(item, Told) or (isinstance(item, FileOffered) and item.room is None)
        model.add_line(
            changes,
            key,
            kind,
            text,
            nick=item.nick,
            ts=item.ts / 1000,
            message_id=item.id,
            own=own,
            count=not fresh_buffer,
            direct=direct and not fresh_buffer,
            notify=not fresh_buffer,  # the first backfill is old news: highlight, do not notify
            state=item if isinstance(item, Said | Told) else None,
        )


def _backfill_before(model: ChatModel, key: str, anchor: Line, items: list[Item], changes: Changes) -> None:
    """The history sent on joining a room: in time order before the "you joined" line, then a divider
    between it and the live lines. Old news: highlighted where it names me, never counted or notified."""
    if not items:
        return
    lines = [_backfill_line(model, item) for item in items]
    lines.append(Line(anchor.ts, LineKind.DIVIDER, BACKFILL_DIVIDER))
    added = model.buffers[key].insert_before(anchor, lines)
    for line in added:
        changes.add(key, line)
    changes.redraw.add(key)


def _backfill_line(model: ChatModel, item: Item) -> Line:
    if isinstance(item, Moderated):
        return _history_line(model, item)
    kind, text = _kind_and_text(item)
    own = fold(item.nick) == fold(model.nick)
    line = model.new_line(kind, text, nick=item.nick, ts=item.ts / 1000, message_id=item.id, own=own)
    return with_state(line, item) if isinstance(item, Said | Told) else line


def _history_line(model: ChatModel, item: Item) -> Line:
    if isinstance(item, Moderated):
        return Line(item.ts / 1000, LineKind.NOTICE, describe(item), None, item.id)
    kind, text = _kind_and_text(item)
    own = fold(item.nick) == fold(model.nick)
    line = Line(item.ts / 1000, kind, text, item.nick, item.id, False, own)
    return with_state(line, item) if isinstance(item, Said | Told) else line


def _entry_key(model: ChatModel, entry: OutboxEntry) -> str:
    if entry.room is not None:
        return model.room(entry.room).key
    assert entry.peer is not None
    return model.conversation(entry.peer).key


def on_outbox(model: ChatModel, event: OutboxChanged, changes: Changes) -> None:
    entry = event.entry
    key = _entry_key(model, entry)
    buffer = model.buffers[key]
    buffer.pending = [p for p in buffer.pending if p.client_msg_id != entry.client_msg_id]
    changes.pending.add(key)
    if entry.state is DeliveryState.PENDING:
        buffer.pending.append(entry)
        changes.buffers = True  # a new conversation may have appeared
        return
    kind = LineKind.ACTION if entry.action else LineKind.MESSAGE
    if entry.state is DeliveryState.ACKNOWLEDGED:
        ts = entry.ts / 1000 if entry.ts is not None else None
        model.add_line(
            changes,
            key,
            kind,
            entry.text,
            nick=model.nick,
            ts=ts,
            message_id=entry.id,
            own=True,
            reply_to=entry.reply_to,
        )
        if entry.peer is not None and entry.away is not None:
            # The server said the recipient is away: say so where the message was sent.
            text = f"{entry.peer} is away: {entry.away}" if entry.away else f"{entry.peer} is away"
            model.add_line(changes, key, LineKind.NOTICE, text, count=False)
    else:
        reason = entry.error_message or entry.error_code or "refused"
        model.add_line(changes, key, LineKind.ERROR, f"not delivered ({reason}): {entry.text}", count=False)
        changes.alerts.append(f"message not delivered: {reason}")


def on_file_offered(model: ChatModel, event: FileOffered, changes: Changes) -> None:
    existed = event.room is not None or peer_key(event.nick) in model.buffers
    key = model.room(event.room).key if event.room is not None else _told_key(model, event)
    own = fold(event.nick) == fold(model.nick)
    text = offer_text(event)
    ts = event.ts / 1000
    direct = event.room is None
    model.add_line(
        changes,
        key,
        LineKind.FILE,
        text,
        nick=event.nick,
        ts=ts,
        message_id=event.id,
        own=own,
        direct=direct,
    )
    if not existed:
        changes.buffers = True


def _transfer_key(model: ChatModel, info: TransferInfo) -> str:
    if info.room is not None:
        return model.room(info.room).key
    if info.peer is not None:
        return model.conversation(info.peer).key
    return model.current


def on_transfer(model: ChatModel, event: TransferUpdate, changes: Changes) -> None:
    info = event.info
    first = info.number not in model.transfers
    model.transfers[info.number] = info
    changes.transfers.add(info.number)
    key = _transfer_key(model, info)
    if first:
        model.add_line(changes, key, LineKind.NOTICE, started_line(info), count=False)
    if info.finished:
        failed = info.state is TransferState.FAILED
        kind = LineKind.ERROR if failed else LineKind.NOTICE
        model.add_line(changes, key, kind, ended_line(info), count=False)
        if failed:
            changes.alerts.append(ended_line(info))
        finished = [n for n, t in model.transfers.items() if t.finished]
        for number in finished[: max(0, len(finished) - MAX_FINISHED_TRANSFERS)]:
            del model.transfers[number]


def _kind_and_text(item: Said | Told | FileOffered) -> tuple[LineKind, str]:
    """How a stored message is shown: a file offer, an action, or a message."""
    if isinstance(item, FileOffered):
        return LineKind.FILE, offer_text(item)
    return (LineKind.ACTION if item.action else LineKind.MESSAGE), item.text


# -- Conversations: the state of a message line, and the events that change it in place -------------------
# docs/protocol.md, section 6.3: a history entry replaces the line shown when its `rev` is at least the
# line's; an event applies when its id is greater than the line's `rev`, which then becomes the event's id.
# So any mix of live events and history pages, in any order, shows each message once and never older.

#: The kinds of line a message (not a notice, a file offer or a divider) shows as: what may be edited.
_EDITABLE = frozenset({LineKind.MESSAGE, LineKind.ACTION})


def with_state(line: Line, item: Said | Told) -> Line:
    """`line` (made from `item`) with the conversation state `item` carries: its `reply_to`, and in a
    history page its `edited`, `deleted`, `reactions` and `rev`."""
    if item.reply_to is None and item.rev is None and item.edited is None and not item.deleted:
        return line  # a plain message (every live one but replies): nothing to add
    return dataclasses.replace(
        line,
        text="" if item.deleted else line.text,
        reply_to=item.reply_to,
        edited=item.edited / 1000 if item.edited is not None else None,
        deleted=bool(item.deleted),
        reactions=tuple(item.reactions or ()),
        rev=item.rev or 0,
    )


def _refresh_shown(model: ChatModel, event: History, changes: Changes) -> None:
    """Bring the lines of a page's messages that are shown already to the page's state, when the page's is
    not older (rule 1): a message edited, deleted or reacted to while we were away, or scrolled back to."""
    for item in event.messages:
        if not isinstance(item, Said | Told) or (item.rev is None and item.reply_to is None):
            continue
        if isinstance(item, Said):
            key = room_key(item.room)
        else:  # the conversation's key, without making a buffer for it
            key = peer_key(item.to if model.is_me(item.nick) else item.nick)
        buffer = model.buffers.get(key)
        line = buffer.find(item.id) if buffer is not None else None
        if buffer is None or line is None or (item.rev or 0) < line.rev:
            continue
        fresh = with_state(dataclasses.replace(line, text=item.text), item)
        if fresh != line and buffer.replace(line, fresh):
            changes.updated.append(Update(key, fresh, UpdateKind.REFRESHED))
            changes.redraw.add(key)


def _event_key(model: ChatModel, event: ConversationEvent) -> str:
    """The buffer of an event's conversation: its room, or the other end of the direct conversation."""
    if event.room is not None:
        return room_key(event.room)
    other = event.to if model.is_me(event.nick) and event.to is not None else event.nick
    return peer_key(other)


def on_conversation_event(model: ChatModel, event: ConversationEvent, changes: Changes) -> None:
    """An edit, a deletion or a reaction: change its message's line in place, when shown and when the event
    is newer than the line's state (rule 2). A message not shown is left alone: the page that brings it
    shows its state with the event included."""
    key = _event_key(model, event)
    buffer = model.buffers.get(key)
    line = buffer.find(event.message_id) if buffer is not None else None
    if buffer is None or line is None or event.id <= line.rev:
        return
    reaction: str | None = None
    match event:
        case Edited():
            fresh = dataclasses.replace(line, text=event.text, edited=event.ts / 1000, rev=event.id)
            kind = UpdateKind.EDITED
        case Deleted():
            fresh = dataclasses.replace(line, text="", deleted=True, reactions=(), rev=event.id)
            kind = UpdateKind.DELETED
        case Reacted():
            reaction = event.reaction
            reactions = add_reaction(line.reactions, event.reaction, event.nick)
            fresh = dataclasses.replace(line, reactions=reactions, rev=event.id)
            kind = UpdateKind.REACTED
        case Unreacted():
            reaction = event.reaction
            reactions = remove_reaction(line.reactions, event.reaction, event.nick)
            fresh = dataclasses.replace(line, reactions=reactions, rev=event.id)
            kind = UpdateKind.UNREACTED
    if buffer.replace(line, fresh):
        changes.updated.append(Update(key, fresh, kind, event.nick, reaction))
        changes.redraw.add(key)


def add_reaction(reactions: tuple[Reaction, ...], reaction: str, nick: str) -> tuple[Reaction, ...]:
    """`reactions` with `nick` added to `reaction`'s list (a new reaction goes last); unchanged if there."""
    for index, present in enumerate(reactions):
        if present.reaction == reaction:
            if any(fold(n) == fold(nick) for n in present.nicks):
                return reactions
            grown = Reaction(reaction=reaction, nicks=(*present.nicks, nick))
            return (*reactions[:index], grown, *reactions[index + 1 :])
    return (*reactions, Reaction(reaction=reaction, nicks=(nick,)))


def remove_reaction(reactions: tuple[Reaction, ...], reaction: str, nick: str) -> tuple[Reaction, ...]:
    """`reactions` without `nick` on `reaction` (a reaction nobody has left goes)."""
    kept: list[Reaction] = []
    for present in reactions:
        if present.reaction == reaction:
            nicks = tuple(n for n in present.nicks if fold(n) != fold(nick))
            if nicks:
                kept.append(Reaction(reaction=reaction, nicks=nicks))
        else:
            kept.append(present)
    return tuple(kept)


def reactions_summary(line: Line) -> str:
    """A line's reactions as shown under it: ``👍 3  🎉 1`` ("" for none). Untrusted: reactions are checked
    by the protocol (one emoji or a ``:name:``), and still rendered through `visible`."""
    return "  ".join(f"{r.reaction} {len(r.nicks)}" for r in line.reactions)


def who_reacted(line: Line, reaction: str) -> tuple[str, ...]:
    """Who put `reaction` on a line, in the order they did."""
    return next((r.nicks for r in line.reactions if r.reaction == reaction), ())
