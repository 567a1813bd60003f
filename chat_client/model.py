"""What the chat looks like, without any UI: buffers (rooms and conversations), lines, members, unread
counts, mentions and the connection status.

`ChatModel.apply(event)` folds one client event into the model and returns a `Changes` record saying
what to redraw, so the TUI and the plain line mode render the same state and the logic has plain unit
tests. Every buffer keeps at most `max_lines` lines (a deque), so memory stays bounded however busy the
room. Untrusted text is stored as received; it is made visible (`shared.text.visible`) when rendered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from shared import (
    AwayChanged,
    BanList,
    Error,
    FileOffered,
    History,
    Joined,
    Left,
    Member,
    Moderated,
    NickChanged,
    Registration,
    RoomList,
    RoomState,
    Said,
    SignedOff,
    Told,
    TopicChanged,
    fold,
)

from .buffers import (
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
from .events import Closed, Connected, Disconnected, Event, LagMeasured, OutboxChanged, Reconnecting
from .moderation import REMOVALS, describe, describe_ban
from .outbox import DeliveryState, OutboxEntry
from .progress import (
    MAX_FINISHED_TRANSFERS,
    TransferInfo,
    TransferState,
    TransferUpdate,
    ended_line,
    offer_text,
    started_line,
)
from .trust import ServerIdentity

#: A stored message a buffer shows: said in a room, told directly, a file offered in either, a moderation.
Item = Said | Told | FileOffered | Moderated

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
    """All buffers and the connection status; see the module docstring."""

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
        """Show buffer `key` and mark it read; False if there is no such buffer."""
        if key not in self.buffers:
            return False
        self.current = key
        buffer = self.buffers[key]
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

    # -- Local lines -------------------------------------------------------------------------------------

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
        mention = not own and nick is not None and (direct or self.mentions_me(text))
        line = Line(ts if ts is not None else self.clock(), kind, text, nick, message_id, mention, own)
        if not buffer.append(line):
            return
        changes.add(key, line)
        if mention and notify:
            changes.mentions.append((key, line))
        if count and key != self.current and not own:
            buffer.unread += 1
            buffer.mentioned = buffer.mentioned or mention
            changes.buffers = True

    @staticmethod
    def _mention_pattern(nick: str) -> re.Pattern[str]:
        return re.compile(rf"(?<![\w.-]){re.escape(nick)}(?![\w-])", re.IGNORECASE)

    def mentions_me(self, text: str) -> bool:
        """True if `text` names my nick as a word."""
        return self._mention.search(text) is not None

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

    def _set_nick(self, nick: str) -> None:
        self.nick = nick
        self._mention = self._mention_pattern(nick)

    def _on_connected(self, event: Connected, changes: Changes) -> None:
        welcome = event.welcome
        self._set_nick(welcome.nick)
        self.status = ConnectionStatus.CONNECTED
        self.server_name = welcome.server
        self.reconnect_at = None
        self.status_reason = ""
        self.identity = event.identity
        changes.status = True
        verb = "reconnected to" if event.resumed else "connected to"
        self._line(
            changes, SERVER_KEY, LineKind.NOTICE, f"{verb} {welcome.server} as {welcome.nick}", count=False
        )
        if event.identity is not None and (not event.resumed or event.identity.pinned_now):
            self._line(changes, SERVER_KEY, LineKind.NOTICE, event.identity.describe(), count=False)
        if welcome.motd and not event.resumed:
            self._line(changes, SERVER_KEY, LineKind.NOTICE, welcome.motd, count=False)

    def _on_disconnected(self, event: Disconnected, changes: Changes) -> None:
        self.status = ConnectionStatus.RECONNECTING if event.will_retry else ConnectionStatus.OFFLINE
        first, *more = event.reason.splitlines() or [""]
        self.status_reason = first
        changes.status = True
        # A long explanation (a changed server key) is several lines, each shown as one.
        for key in {SERVER_KEY, self.current}:
            for text in [f"disconnected: {first}", *more]:
                self._line(changes, key, LineKind.ERROR, text, count=False)
        for buffer in self.buffers.values():
            buffer.fetching = False

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
        if event.error is not None:
            self._line(changes, SERVER_KEY, LineKind.ERROR, f"connection closed: {event.error}", count=False)
            changes.alerts.append(f"connection closed: {event.error}")

    def _entry_key(self, entry: OutboxEntry) -> str:
        if entry.room is not None:
            return self.room(entry.room).key
        assert entry.peer is not None
        return self.conversation(entry.peer).key

    def _on_outbox(self, event: OutboxChanged, changes: Changes) -> None:
        entry = event.entry
        key = self._entry_key(entry)
        buffer = self.buffers[key]
        buffer.pending = [p for p in buffer.pending if p.client_msg_id != entry.client_msg_id]
        changes.pending.add(key)
        if entry.state is DeliveryState.PENDING:
            buffer.pending.append(entry)
            changes.buffers = True  # a new conversation may have appeared
            return
        kind = LineKind.ACTION if entry.action else LineKind.MESSAGE
        if entry.state is DeliveryState.ACKNOWLEDGED:
            ts = entry.ts / 1000 if entry.ts is not None else None
            self._line(changes, key, kind, entry.text, nick=self.nick, ts=ts, message_id=entry.id, own=True)
        else:
            reason = entry.error_message or entry.error_code or "refused"
            self._line(changes, key, LineKind.ERROR, f"not delivered ({reason}): {entry.text}", count=False)
            changes.alerts.append(f"message not delivered: {reason}")

    def _on_said(self, event: Said, changes: Changes) -> None:
        key = self.room(event.room).key
        kind = LineKind.ACTION if event.action else LineKind.MESSAGE
        own = fold(event.nick) == fold(self.nick)
        self._line(
            changes, key, kind, event.text, nick=event.nick, ts=event.ts / 1000, message_id=event.id, own=own
        )

    def _told_key(self, event: Told | FileOffered) -> str:
        mine = fold(event.nick) == fold(self.nick)
        return self.conversation(event.to if mine and event.to is not None else event.nick).key

    def _on_told(self, event: Told, changes: Changes) -> None:
        existed = peer_key(event.nick) in self.buffers
        key = self._told_key(event)
        if not existed:
            # A conversation may have history from earlier sessions: scrolling past its top asks.
            self.buffers[key].more_before = True
        kind = LineKind.ACTION if event.action else LineKind.MESSAGE
        own = fold(event.nick) == fold(self.nick)
        self._line(
            changes,
            key,
            kind,
            event.text,
            nick=event.nick,
            ts=event.ts / 1000,
            message_id=event.id,
            own=own,
            direct=True,
        )
        if not existed:
            changes.buffers = True

    def _on_history(self, event: History, changes: Changes) -> None:
        if event.direct and event.peer is not None:
            # A page of one conversation (scrolled past its top): it says itself whether more is left.
            buffer = self.conversation(event.peer)
            buffer.fetching = False
            page: list[Item] = [item for item in event.messages if isinstance(item, Told | FileOffered)]
            self._history_lines(buffer.key, page, more=event.more, changes=changes)
            changes.buffers = True
            return
        if event.direct:
            # Group by conversation first, so each buffer judges once whether this is its first backfill.
            by_peer: dict[str, list[Item]] = {}
            for item in event.messages:
                if isinstance(item, Told | FileOffered):
                    by_peer.setdefault(self._told_key(item), []).append(item)
            for key, items in by_peer.items():
                # Whether this conversation has older messages is unknown here (the page mixes them):
                # assume so, and let its first page back say.
                self._history_lines(key, items, more=True, changes=changes)
            changes.buffers = True
            return
        if event.room is None:
            return
        buffer = self.room(event.room)
        buffer.fetching = False
        if event.skipped:
            text = f"{event.skipped} older messages were skipped while you were away"
            self._line(changes, buffer.key, LineKind.NOTICE, text, count=False)
        self._history_lines(buffer.key, list(event.messages), more=event.more, changes=changes)

    def _history_lines(self, key: str, items: list[Item], *, more: bool | None, changes: Changes) -> None:
        buffer = self.buffers[key]
        oldest = buffer.oldest_id
        if oldest is not None and items and all(item.id < oldest for item in items):
            lines = [self._history_line(item) for item in items]
            if buffer.prepend(lines):
                changes.redraw.add(key)
            if more is not None:
                buffer.more_before = more and not buffer.full
            return
        if more is not None and oldest is None:
            buffer.more_before = more
        fresh_buffer = buffer.oldest_id is None  # no message yet (notices do not count)
        for item in items:
            if isinstance(item, Moderated):
                line = self._history_line(item)
                self._line(changes, key, line.kind, line.text, ts=line.ts, message_id=item.id, count=False)
                continue
            own = fold(item.nick) == fold(self.nick)
            kind, text = _kind_and_text(item)
            direct = isinstance(item, Told) or (isinstance(item, FileOffered) and item.room is None)
            self._line(
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
            )

    def _history_line(self, item: Item) -> Line:
        if isinstance(item, Moderated):
            return Line(item.ts / 1000, LineKind.NOTICE, describe(item), None, item.id)
        kind, text = _kind_and_text(item)
        own = fold(item.nick) == fold(self.nick)
        return Line(item.ts / 1000, kind, text, item.nick, item.id, False, own)

    def _is_me(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)

    def _on_joined(self, event: Joined, changes: Changes) -> None:
        buffer = self.room(event.room)
        buffer.members[fold(event.nick)] = Member(nick=event.nick, op=event.op)
        changes.members.add(buffer.key)
        if self._is_me(event.nick):
            was_joined, buffer.joined = buffer.joined, True
            changes.buffers = True
            if buffer.key in self._switch_on_join or self.current == SERVER_KEY:
                self._switch_on_join.discard(buffer.key)
                self.switch(buffer.key)
            if not was_joined:
                self._line(changes, buffer.key, LineKind.NOTICE, f"you joined {event.room}", count=False)
            return
        self._line(
            changes, buffer.key, LineKind.NOTICE, f"{event.nick} joined", ts=event.ts / 1000, count=False
        )

    def _on_left(self, event: Left, changes: Changes) -> None:
        key = room_key(event.room)
        buffer = self.buffers.get(key)
        if buffer is None:
            return
        reason = f" ({event.reason})" if event.reason else ""
        if self._is_me(event.nick):
            self.close_buffer(key)
            changes.buffers = True
            text = f"you left {event.room}{reason}"
            if (key, fold(event.nick)) in self._removed:
                # Put out by an operator: say so where the user is looking, not only in the server buffer.
                self._removed.discard((key, fold(event.nick)))
                self._line(changes, self.current, LineKind.ERROR, text, count=False)
                changes.alerts.append(text)
                return
            self._line(changes, SERVER_KEY, LineKind.NOTICE, text, count=False)
            return
        buffer.members.pop(fold(event.nick), None)
        changes.members.add(key)
        if (key, fold(event.nick)) in self._removed:
            self._removed.discard((key, fold(event.nick)))
            return  # the kick or ban said it already
        self._line(
            changes, key, LineKind.NOTICE, f"{event.nick} left{reason}", ts=event.ts / 1000, count=False
        )

    def _on_signed_off(self, event: SignedOff, changes: Changes) -> None:
        reason = f" ({event.reason})" if event.reason else ""
        for buffer in list(self.buffers.values()):
            if buffer.members.pop(fold(event.nick), None) is not None:
                changes.members.add(buffer.key)
                text = f"{event.nick} quit{reason}"
                self._line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)

    def _on_nick_changed(self, event: NickChanged, changes: Changes) -> None:
        if self._is_me(event.old):
            self._set_nick(event.new)
            changes.status = True
            self._line(changes, SERVER_KEY, LineKind.NOTICE, f"you are now known as {event.new}", count=False)
        text = f"{event.old} is now known as {event.new}"
        for buffer in list(self.buffers.values()):
            member = buffer.members.pop(fold(event.old), None)
            if member is not None:
                buffer.members[fold(event.new)] = Member(nick=event.new, away=member.away, op=member.op)
                changes.members.add(buffer.key)
                self._line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)
        old_key = peer_key(event.old)
        if old_key in self.buffers and fold(event.old) != fold(event.new):
            conversation = self.buffers.pop(old_key)
            conversation.key, conversation.name = peer_key(event.new), event.new
            self.buffers[conversation.key] = conversation
            if self.current == old_key:
                self.current = conversation.key
            changes.buffers = True
            self._line(changes, conversation.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)

    def _on_topic(self, event: TopicChanged, changes: Changes) -> None:
        buffer = self.room(event.room)
        buffer.topic = event.topic
        changes.topic.add(buffer.key)
        text = (
            f"{event.nick} set the topic: {event.topic}" if event.topic else f"{event.nick} cleared the topic"
        )
        self._line(changes, buffer.key, LineKind.NOTICE, text, ts=event.ts / 1000, count=False)

    def _on_away(self, event: AwayChanged, changes: Changes) -> None:
        for buffer in self.buffers.values():
            key = fold(event.nick)
            if key in buffer.members:
                member = buffer.members[key]
                buffer.members[key] = Member(nick=member.nick, away=event.message, op=member.op)
                changes.members.add(buffer.key)
        if self._is_me(event.nick):
            text = f"you are away: {event.message}" if event.message else "you are back"
            self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_room_state(self, event: RoomState, changes: Changes) -> None:
        buffer = self.room(event.room)
        buffer.topic = event.topic
        buffer.members = {fold(m.nick): m for m in event.members}
        modes = {"topic_lock": event.topic_lock, "invite_only": event.invite_only, "keyed": event.keyed}
        buffer.modes = {name for name, on in modes.items() if on}
        buffer.key_secret = event.key
        changes.members.add(buffer.key)
        changes.topic.add(buffer.key)
        if buffer.key in self._listing_members:
            self._listing_members.discard(buffer.key)
            names = ", ".join(
                ("@" if m.op else "") + m.nick + (" (away)" if m.away else "") for m in event.members
            )
            self._line(changes, self.current, LineKind.NOTICE, f"in {event.room}: {names}", count=False)

    def _on_moderated(self, event: Moderated, changes: Changes) -> None:
        key = room_key(event.room)
        buffer = self.buffers.get(key)
        target = fold(event.target or "")
        if (
            event.action == "invite"
            and self._is_me(event.target or "")
            and (buffer is None or not buffer.joined)
        ):
            text = f"{event.nick} invited you to {event.room}: /join {event.room}"
            self._line(
                changes, self.current, LineKind.NOTICE, text, nick=event.nick, ts=event.ts / 1000, direct=True
            )
            return
        if buffer is None:
            return
        member = buffer.members.get(target)
        if event.action in ("op", "deop") and member is not None:
            buffer.members[target] = Member(nick=member.nick, away=member.away, op=event.action == "op")
            changes.members.add(key)
        if event.action in REMOVALS and member is not None:
            self._removed.add((key, target))
        mode = _MODE_ACTIONS.get(event.action)
        if mode is not None:
            name, on = mode
            if on:
                buffer.modes.add(name)
            else:
                buffer.modes.discard(name)
            changes.topic.add(key)
        self._line(
            changes,
            key,
            LineKind.NOTICE,
            describe(event),
            ts=event.ts / 1000,
            message_id=event.id,
            count=False,
        )

    def _on_ban_list(self, event: BanList, changes: Changes) -> None:
        lines = [f"bans in {event.room}:" if event.bans else f"no bans in {event.room}"]
        lines += ["  " + describe_ban(ban) for ban in event.bans]
        if event.more:
            lines.append("  (more than fit in one reply)")
        for text in lines:
            self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_room_list(self, event: RoomList, changes: Changes) -> None:
        if not event.rooms:
            self._line(changes, self.current, LineKind.NOTICE, "no rooms on this server", count=False)
        for summary in event.rooms:
            topic = f": {summary.topic}" if summary.topic else ""
            text = f"{summary.name} ({summary.members}){topic}"
            self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_file_offered(self, event: FileOffered, changes: Changes) -> None:
        existed = event.room is not None or peer_key(event.nick) in self.buffers
        key = self.room(event.room).key if event.room is not None else self._told_key(event)
        own = fold(event.nick) == fold(self.nick)
        text = offer_text(event)
        ts = event.ts / 1000
        direct = event.room is None
        self._line(
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

    def _transfer_key(self, info: TransferInfo) -> str:
        if info.room is not None:
            return self.room(info.room).key
        if info.peer is not None:
            return self.conversation(info.peer).key
        return self.current

    def _on_transfer(self, event: TransferUpdate, changes: Changes) -> None:
        info = event.info
        first = info.number not in self.transfers
        self.transfers[info.number] = info
        changes.transfers.add(info.number)
        key = self._transfer_key(info)
        if first:
            self._line(changes, key, LineKind.NOTICE, started_line(info), count=False)
        if info.finished:
            failed = info.state is TransferState.FAILED
            kind = LineKind.ERROR if failed else LineKind.NOTICE
            self._line(changes, key, kind, ended_line(info), count=False)
            if failed:
                changes.alerts.append(ended_line(info))
            finished = [n for n, t in self.transfers.items() if t.finished]
            for number in finished[: max(0, len(finished) - MAX_FINISHED_TRANSFERS)]:
                del self.transfers[number]

    def _on_registration(self, event: Registration, changes: Changes) -> None:
        if event.registered:
            text = f"{event.nick} is registered: nobody can use it without your password"
        else:
            text = f"{event.nick} is no longer registered: anyone may use it when you are away"
        self._line(changes, self.current, LineKind.NOTICE, text, count=False)

    def _on_error(self, event: Error, changes: Changes) -> None:
        text = f"{event.code}: {event.message}" if event.message else event.code
        self._line(changes, self.current, LineKind.ERROR, text, count=False)
        changes.alerts.append(text)


#: Moderation actions that change a room's modes: action -> (mode, on).
_MODE_ACTIONS = {
    "lock_topic": ("topic_lock", True),
    "unlock_topic": ("topic_lock", False),
    "invite_only": ("invite_only", True),
    "open": ("invite_only", False),
    "set_key": ("keyed", True),
    "clear_key": ("keyed", False),
}

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
}


def _kind_and_text(item: Said | Told | FileOffered) -> tuple[LineKind, str]:
    """How a stored message is shown: a file offer, an action, or a message."""
    if isinstance(item, FileOffered):
        return LineKind.FILE, offer_text(item)
    return (LineKind.ACTION if item.action else LineKind.MESSAGE), item.text
