"""A person's attention in the model: how far the nick has read each buffer (read markers), and what
should call for it (notification levels and keywords), as the server remembers them.

The server keeps, per nick, the id of the newest message read in each room and direct conversation
(docs/protocol.md, `mark_read`); it tells us at login (`welcome.read_markers`), in a join's backfill
(`history.read_up_to`) and after each move (`read_marker`). A buffer's `read_up_to` is that id: its lines
past it are its unread ones (the count in the buffer list, the mention mark, the "new messages" divider),
so they are right on every terminal and after a restart of the client. The UI tells the model when the
newest line of a buffer has been seen (`seen`), and sends the `mark_read` that returns.

The notification level of a buffer (`notify`: `all`, `mentions` or `none`; by default `mentions` for a
room and `all` for a direct conversation) says which of its lines raise a notification (the toast, the bell,
a desktop notification) and the `!` mark; the keywords make a line a mention as the nick does. Both come in
`welcome` and in `notify_settings` (docs/protocol.md), so every terminal of the person agrees.

Plain functions over `(model, ..., changes)`, called by `ChatModel.apply` (chat_client.model.chat) and by
the UIs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chat_client.model.buffers import Buffer, BufferKind, Changes, LineKind, peer_key, room_key
from shared import NotifyLevel, NotifySettings, ReadMarker, ReadPosition, Welcome

if TYPE_CHECKING:  # chat imports this module: ChatModel is only an annotation here
    from chat_client.model.chat import ChatModel

#: Lines that count as unread when they come after the marker (what someone else said, or a file offered).
UNREAD_KINDS = frozenset({LineKind.MESSAGE, LineKind.ACTION, LineKind.FILE})


#: A buffer's level when the person set none: every message of a conversation, mentions in a room.
ROOM_DEFAULT, DIRECT_DEFAULT = "mentions", "all"


def position_key(position: ReadPosition | ReadMarker | NotifyLevel) -> str | None:
    """The buffer key a marker belongs to."""
    if position.room is not None:
        return room_key(position.room)
    if position.peer is not None:
        return peer_key(position.peer)
    return None


def on_welcome(model: ChatModel, welcome: Welcome, changes: Changes) -> None:
    """The login's markers (each kept for its buffer, made later if it has none yet) and settings."""
    settings(model, welcome.notify_levels, welcome.keywords)
    for position in welcome.read_markers:
        key = position_key(position)
        if key is not None:
            move(model, key, position.id, changes)


def on_read_marker(model: ChatModel, event: ReadMarker, changes: Changes) -> None:
    """The server says where a marker stands now."""
    key = position_key(event)
    if key is not None:
        move(model, key, event.id, changes)


def move(model: ChatModel, key: str, read_up_to: int, changes: Changes) -> None:
    """Move buffer `key`'s marker forward to `read_up_to`, and count its unread lines again."""
    model.read_markers[key] = max(model.read_markers.get(key, 0), read_up_to)
    buffer = model.buffers.get(key)
    if buffer is None or read_up_to <= buffer.read_up_to:
        return
    buffer.read_up_to = read_up_to
    recount(model, buffer)
    changes.buffers = True


def adopt(model: ChatModel, buffer: Buffer) -> None:
    """A buffer was made: give it the marker the login told of, if any."""
    known = model.read_markers.get(buffer.key)
    if known is not None and known > buffer.read_up_to:
        buffer.read_up_to = known


def recount(model: ChatModel, buffer: Buffer) -> None:
    """Count the buffer's unread lines from its marker: those past it that someone else wrote."""
    unread = [
        line
        for line in buffer.lines
        if line.id is not None and line.id > buffer.read_up_to and not line.own and line.kind in UNREAD_KINDS
    ]
    if buffer.key == model.current:
        # On screen: nothing is counted, but the reader is shown where they left off.
        buffer.marker = unread[0] if unread else None
        buffer.unread, buffer.first_unread, buffer.mentioned = 0, None, False
        return
    buffer.unread = len(unread)
    buffer.first_unread = unread[0] if unread else None
    buffer.mentioned = level_of(model, buffer.key) != "none" and any(line.mention for line in unread)


def seen(model: ChatModel, key: str) -> int | None:
    """The newest line of buffer `key` has been seen: the id to send in `mark_read`, or None when the
    marker is there already (or the buffer holds no message)."""
    buffer = model.buffers.get(key)
    if buffer is None:
        return None
    newest = buffer.newest_id
    if newest is None or newest <= buffer.read_up_to:
        return None
    buffer.read_up_to = newest  # at once: the server's answer (`read_marker`) updates `read_markers`
    return newest


def all_seen(model: ChatModel, changes: Changes) -> list[tuple[Buffer, int]]:
    """Mark every buffer read (the "all read" key): the buffers and ids to send in `mark_read`."""
    marked = []
    for buffer in model.buffers.values():
        newest = seen(model, buffer.key)
        buffer.unread, buffer.first_unread, buffer.mentioned = 0, None, False
        if newest is not None:
            marked.append((buffer, newest))
    changes.buffers = True
    return marked


# -- Notification levels and keywords ----------------------------------------------------------------------


def on_notify_settings(model: ChatModel, event: NotifySettings, changes: Changes) -> None:
    """The nick's settings changed (an answer to `/notify` or `/keywords`): keep them, and say so."""
    settings(model, event.levels, event.keywords)
    model.add_line(changes, model.current, LineKind.NOTICE, describe_settings(model), count=False)


def settings(model: ChatModel, levels: tuple[NotifyLevel, ...], keywords: tuple[str, ...]) -> None:
    """Replace the notification levels and keywords."""
    model.notify_levels = {key: level.level for level in levels if (key := position_key(level)) is not None}
    model.set_keywords(keywords)


def level_of(model: ChatModel, key: str) -> str:
    """A buffer's notification level: the one the person set, or the default of its kind."""
    known = model.notify_levels.get(key)
    if known is not None:
        return known
    buffer = model.buffers.get(key)
    return DIRECT_DEFAULT if buffer is not None and buffer.kind is BufferKind.DIRECT else ROOM_DEFAULT


def describe_settings(model: ChatModel) -> str:
    """One line about the notification settings, for a notice."""
    current = model.current_buffer
    parts = []
    if current.kind is not BufferKind.SERVER:
        parts.append(f"notifications in {current.name}: {level_of(model, current.key)}")
    others = sorted(
        f"{_name(model, key)} {level}" for key, level in model.notify_levels.items() if key != current.key
    )
    if others:
        parts.append("elsewhere: " + ", ".join(others))
    parts.append("keywords: " + (", ".join(model.keywords) if model.keywords else "none"))
    return "; ".join(parts)


def _name(model: ChatModel, key: str) -> str:
    buffer = model.buffers.get(key)
    if buffer is not None:
        return buffer.name if buffer.kind is BufferKind.ROOM else f"@{buffer.name}"
    return key.lstrip("#")
