"""The frames about a person's attention: how far they have read each room and each direct conversation,
and what should call for it (notification levels and keywords).

A read marker belongs to a nick, not to a connection: the server stores it for a registered nick (so it
survives a restart of the client or the server) and keeps it for the connection's life for an unregistered
one. It only moves forward. `welcome.read_markers` gives the nick's markers at login, a join's `history`
its room's (`read_up_to`), and `read_marker` each change.
"""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.schema import Message, Sender, message, record, wire

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER


@record
class ReadPosition(Message):
    """How far a nick has read one conversation: a room (`room`) or its direct messages with `peer`."""

    room: str | None = wire(check.room, default=None)
    peer: str | None = wire(check.nick, default=None)
    #: The id of the newest message read (every message with this id or a lower one is read).
    id: int = wire(check.uint, default=0)


#: How much of a conversation calls for attention: every message, messages that mention the nick (or one of
#: its keywords), or nothing.
NOTIFY_LEVELS = ("all", "mentions", "none")


@record
class NotifyLevel(Message):
    """The notification level of one conversation: a room (`room`) or the direct messages with `peer`."""

    room: str | None = wire(check.room, default=None)
    peer: str | None = wire(check.nick, default=None)
    level: str = wire(check.choice(*NOTIFY_LEVELS), default="mentions")


# -- Requests: client to server ----------------------------------------------------------------------------


@message(
    "mark_read",
    CLIENT,
    answers=("read_marker",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.INVALID_FIELD,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class MarkRead(Message):
    """Mark a room (`room`) or the direct messages with `peer` read up to message `id`.

    Exactly one of `room` and `peer`. A marker never moves back: a lower `id` than the stored one leaves it
    where it is, and the answer says where that is.
    """

    room: str | None = wire(check.room, default=None)
    peer: str | None = wire(check.nick, default=None)
    id: int = wire(check.uint)
    ref: int | None = wire(check.uint, default=None)


@message(
    "notify",
    CLIENT,
    answers=("notify_settings",),
    errors=(
        ErrorCode.INVALID_FIELD,
        ErrorCode.TOO_LONG,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class SetNotify(Message):
    """Set the notification level of a room (`room`) or of the direct messages with `peer` (exactly one).

    `level` absent: back to the default (`mentions` for a room, `all` for direct messages).
    """

    room: str | None = wire(check.room, default=None)
    peer: str | None = wire(check.nick, default=None)
    level: str | None = wire(check.choice(*NOTIFY_LEVELS), default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "keywords",
    CLIENT,
    answers=("notify_settings",),
    errors=(
        ErrorCode.INVALID_FIELD,
        ErrorCode.TOO_LONG,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class SetKeywords(Message):
    """Replace the nick's keywords: words that highlight a message as a mention of the nick does."""

    keywords: tuple[str, ...] = wire(check.list_of(check.keyword))
    ref: int | None = wire(check.uint, default=None)


# -- Notifications: server to client -----------------------------------------------------------------------


@message("read_marker", SERVER)
class ReadMarker(Message):
    """Where the nick's marker of a room (`room`) or of its direct messages with `peer` now stands: the
    answer to `mark_read`, with its `ref`."""

    room: str | None = wire(check.room, default=None)
    peer: str | None = wire(check.nick, default=None)
    id: int = wire(check.uint)
    ref: int | None = wire(check.uint, default=None)


@message("notify_settings", SERVER)
class NotifySettings(Message):
    """The nick's notification settings, whole: the answer to `notify` and `keywords`.

    `levels` lists the conversations whose level is not the default; `keywords` the nick's keywords.
    """

    levels: tuple[NotifyLevel, ...] = wire(check.list_of(check.nested(NotifyLevel)), default=())
    keywords: tuple[str, ...] = wire(check.list_of(check.keyword), default=())
    ref: int | None = wire(check.uint, default=None)
