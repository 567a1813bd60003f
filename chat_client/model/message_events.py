"""How messages, history, our own outbox and file transfers change the chat model.

Said and told messages, file offers and moderation records become lines of their buffer; history pages
are merged in (older pages prepended, the first backfill marked as old news); our outbox entries show as
pending and then as sent or refused; transfers add a line when they start and when they end. Plain
functions over `(model, event, changes)`, called by `ChatModel.apply` (chat_client.model.chat).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chat_client.model.buffers import Buffer, Changes, Gap, Line, LineKind, peer_key
from chat_client.model.moderation import describe
from chat_client.net.events import OutboxChanged
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
from shared import FileOffered, History, Moderated, Said, Told, fold

#: The label of the divider between the history sent on joining a room and the live lines after it.
BACKFILL_DIVIDER = "history above · live below"
#: A stored message a buffer shows: said in a room, told directly, a file offered in either, a moderation.
Item = Said | Told | FileOffered | Moderated

if TYPE_CHECKING:  # chat imports this module: ChatModel is only an annotation here
    from chat_client.model.chat import ChatModel


def on_said(model: ChatModel, event: Said, changes: Changes) -> None:
    key = model.room(event.room).key
    kind = LineKind.ACTION if event.action else LineKind.MESSAGE
    own = fold(event.nick) == fold(model.nick)
    model.add_line(
        changes, key, kind, event.text, nick=event.nick, ts=event.ts / 1000, message_id=event.id, own=own
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
    kind = LineKind.ACTION if event.action else LineKind.MESSAGE
    own = fold(event.nick) == fold(model.nick)
    model.add_line(
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


def on_history(model: ChatModel, event: History, changes: Changes) -> None:
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
        text = f"{left} more skipped messages: /more shows the next ones"
        model.add_line(changes, buffer.key, LineKind.NOTICE, text, count=False)
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
    return model.new_line(kind, text, nick=item.nick, ts=item.ts / 1000, message_id=item.id, own=own)


def _history_line(model: ChatModel, item: Item) -> Line:
    if isinstance(item, Moderated):
        return Line(item.ts / 1000, LineKind.NOTICE, describe(item), None, item.id)
    kind, text = _kind_and_text(item)
    own = fold(item.nick) == fold(model.nick)
    return Line(item.ts / 1000, kind, text, item.nick, item.id, False, own)


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
        model.add_line(changes, key, kind, entry.text, nick=model.nick, ts=ts, message_id=entry.id, own=True)
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
