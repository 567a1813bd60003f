"""The frames of conversations: edits, deletions and reactions of stored messages, and the events they make.

A client asks with `Edit`, `Delete`, `React` and `Unreact`, naming a message (a `said` or `told`) by its id.
Each change is an *event* of the conversation's ordered stream: the server stores it with an id of its own
(the same sequence as messages), then announces it to the room (or to both ends of a direct conversation)
as `Edited`, `Deleted`, `Reacted` or `Unreacted`, and answers the requester with an `ack` carrying the
event's id. Events come back in history pages (`History.events`) and on resume, exactly once and in order.
A message in a history page shows its current state (`Said.edited`, `deleted`, `reactions`, `rev`);
docs/protocol.md, section 6.3, says how a client combines the two without showing a stale message.
"""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.schema import Message, Sender, message, record, wire

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER

#: The `text` a deleted message carries in history pages: its text is erased, and `text` is required.
DELETED_TEXT = "message deleted"


@record
class Reaction(Message):
    """One reaction of a message, aggregated: the reaction and who reacted with it, in the order they did."""

    reaction: str = wire(check.reaction)
    nicks: tuple[str, ...] = wire(check.list_of(check.nick))


# -- Requests: client to server ----------------------------------------------------------------------------


@message(
    "edit",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NO_SUCH_MESSAGE,
        ErrorCode.FORBIDDEN,
        ErrorCode.EDIT_WINDOW_CLOSED,
        ErrorCode.MUTED,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class Edit(Message):
    """Replace the text of one's own message `id` with `text`."""

    id: int = wire(check.uint)
    text: str = wire(check.text)
    ref: int | None = wire(check.uint, default=None)


@message(
    "delete",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NO_SUCH_MESSAGE,
        ErrorCode.FORBIDDEN,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class Delete(Message):
    """Delete message `id`: one's own, or (a room operator) anyone's in the room. `reason` goes with an
    operator's deletion into its `moderated` entry."""

    id: int = wire(check.uint)
    reason: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "react",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NO_SUCH_MESSAGE,
        ErrorCode.TOO_MANY_REACTIONS,
        ErrorCode.MUTED,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class React(Message):
    """Add `reaction` (one emoji or a ``:name:``) to message `id`."""

    id: int = wire(check.uint)
    reaction: str = wire(check.reaction)
    ref: int | None = wire(check.uint, default=None)


@message(
    "unreact",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NO_SUCH_MESSAGE,
        ErrorCode.NO_SUCH_REACTION,
        ErrorCode.MUTED,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class Unreact(Message):
    """Take one's `reaction` off message `id`."""

    id: int = wire(check.uint)
    reaction: str = wire(check.reaction)
    ref: int | None = wire(check.uint, default=None)


# -- Notifications: server to client (the events) ----------------------------------------------------------
#
# Every event names the message it changes (`message_id`), who made the change (`nick`) and its
# conversation: `room`, or for a direct conversation `to`, the other end as seen from `nick` (as in `told`).


@message("edited", SERVER)
class Edited(Message):
    """Message `message_id` now reads `text` (edited at `ts` by its author `nick`)."""

    id: int = wire(check.uint)
    message_id: int = wire(check.uint)
    nick: str = wire(check.nick)
    text: str = wire(check.text)
    ts: int = wire(check.uint)
    room: str | None = wire(check.room, default=None)
    to: str | None = wire(check.nick, default=None)


@message("deleted", SERVER)
class Deleted(Message):
    """Message `message_id` was deleted at `ts` by `nick` (its author, or an operator of the room)."""

    id: int = wire(check.uint)
    message_id: int = wire(check.uint)
    nick: str = wire(check.nick)
    ts: int = wire(check.uint)
    room: str | None = wire(check.room, default=None)
    to: str | None = wire(check.nick, default=None)


@message("reacted", SERVER)
class Reacted(Message):
    """`nick` added `reaction` to message `message_id`."""

    id: int = wire(check.uint)
    message_id: int = wire(check.uint)
    nick: str = wire(check.nick)
    reaction: str = wire(check.reaction)
    ts: int = wire(check.uint)
    room: str | None = wire(check.room, default=None)
    to: str | None = wire(check.nick, default=None)


@message("unreacted", SERVER)
class Unreacted(Message):
    """`nick` took `reaction` off message `message_id`."""

    id: int = wire(check.uint)
    message_id: int = wire(check.uint)
    nick: str = wire(check.nick)
    reaction: str = wire(check.reaction)
    ts: int = wire(check.uint)
    room: str | None = wire(check.room, default=None)
    to: str | None = wire(check.nick, default=None)


#: The four events, as `History.events` may hold them.
ConversationEvent = Edited | Deleted | Reacted | Unreacted
