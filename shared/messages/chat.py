"""The frames that carry conversation: messages to a room or to one nick, and the stored history.

`Say` and `Tell` are stored by the server (answered by `Ack`) and delivered as `Said` and `Told`; `History`
hands stored messages back: the backfill after a join, a resume, or the answer to `FetchHistory`.
"""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.schema import Message, Sender, message, wire

from .conversation import Deleted, Edited, Reacted, Reaction, Unreacted
from .files import FileOffered
from .moderation import Moderated

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER


# -- Requests: client to server ----------------------------------------------------------------------------


@message(
    "say",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.MUTED,
        ErrorCode.CLIENT_MSG_ID_REUSED,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_MESSAGE,
    ),
)
class Say(Message):
    """Send `text` to a room. `action` marks a /me action; `client_msg_id` makes a resend idempotent;
    `reply_to` makes it a reply to message `reply_to` of the same room."""

    room: str = wire(check.room)
    text: str = wire(check.text)
    action: bool = wire(check.boolean, default=False)
    client_msg_id: str | None = wire(check.token, default=None)
    ref: int | None = wire(check.uint, default=None)
    reply_to: int | None = wire(check.uint, default=None)


@message(
    "tell",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NO_SUCH_NICK,
        ErrorCode.CLIENT_MSG_ID_REUSED,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_MESSAGE,
    ),
)
class Tell(Message):
    """Send a direct message to one nick (`reply_to`: a message of the same conversation)."""

    to: str = wire(check.nick)
    text: str = wire(check.text)
    action: bool = wire(check.boolean, default=False)
    client_msg_id: str | None = wire(check.token, default=None)
    ref: int | None = wire(check.uint, default=None)
    reply_to: int | None = wire(check.uint, default=None)


@message(
    "fetch_history",
    CLIENT,
    answers=("history",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.HISTORY_UNAVAILABLE,
    ),
)
class FetchHistory(Message):
    """Ask for stored messages of a room, or of direct messages (all, or with one `peer`).

    Exactly one of `room` and `direct` is given. The range: ids below `before` and above `after` (either
    bound may be left out). At most `limit` messages of it come back, always oldest first in the reply: the
    newest of the range (paging back), or with `forward` the oldest of the range (paging forward through a
    gap). `History.more` then says whether the range goes on beyond the page in that direction.
    """

    room: str | None = wire(check.room, default=None)
    direct: bool = wire(check.boolean, default=False)
    peer: str | None = wire(check.nick, default=None)
    before: int | None = wire(check.uint, default=None)
    after: int | None = wire(check.uint, default=None)
    limit: int | None = wire(check.uint, default=None)
    forward: bool | None = wire(check.boolean, default=None)  # None (left out) means false
    ref: int | None = wire(check.uint, default=None)


# -- Notifications: server to client -----------------------------------------------------------------------


@message("said", SERVER)
class Said(Message):
    """A message in a room. `id` and `ts` are the server's; `nick` is the sender as the server knows it."""

    id: int = wire(check.uint)
    room: str = wire(check.room)
    nick: str = wire(check.nick)
    text: str = wire(check.text)
    ts: int = wire(check.uint)
    action: bool = wire(check.boolean, default=False)
    reply_to: int | None = wire(check.uint, default=None)
    #: The message's current state, in history pages (a live message is new: none of these): when it was
    #: last edited, whether it was deleted (its `text` is then `DELETED_TEXT`), its reactions, and `rev`,
    #: the id of the latest event (edit, deletion, reaction) this state includes.
    edited: int | None = wire(check.uint, default=None)
    deleted: bool | None = wire(check.boolean, default=None)  # None (left out) means false
    reactions: tuple[Reaction, ...] | None = wire(check.list_of(check.nested(Reaction)), default=None)
    rev: int | None = wire(check.uint, default=None)


@message("told", SERVER)
class Told(Message):
    """A direct message from `nick` to `to` (the sender gets an `Ack`, as for `Say`)."""

    id: int = wire(check.uint)
    nick: str = wire(check.nick)
    to: str = wire(check.nick)
    text: str = wire(check.text)
    ts: int = wire(check.uint)
    action: bool = wire(check.boolean, default=False)
    reply_to: int | None = wire(check.uint, default=None)
    #: The message's current state, in history pages (a live message is new: none of these): when it was
    #: last edited, whether it was deleted (its `text` is then `DELETED_TEXT`), its reactions, and `rev`,
    #: the id of the latest event (edit, deletion, reaction) this state includes.
    edited: int | None = wire(check.uint, default=None)
    deleted: bool | None = wire(check.boolean, default=None)  # None (left out) means false
    reactions: tuple[Reaction, ...] | None = wire(check.list_of(check.nested(Reaction)), default=None)
    rev: int | None = wire(check.uint, default=None)


@message("history", SERVER)
class History(Message):
    """Stored messages, oldest first: the backfill after a join, a resume, or the answer to `FetchHistory`.

    `peer`: with `direct`, the conversation the page belongs to, when the request named one.
    `more`: the requested range holds more messages beyond this page in the direction asked for: older
    than the first one given (page back with `before` = its id), or, for a `forward` page, newer than the
    last one given (page on with `after` = its id). A join's backfill is a page back with no lower bound.
    `skipped`: on a resume (a page back bounded by `after`), how many messages of the gap were left out
    because it was larger than the server's bound or one frame; the messages given are the newest ones.
    """

    room: str | None = wire(check.room, default=None)
    direct: bool = wire(check.boolean, default=False)
    peer: str | None = wire(check.nick, default=None)
    messages: tuple[Said | Told | FileOffered | Moderated, ...] = wire(
        check.list_of(check.one_of(Said, Told, FileOffered, Moderated)), default=()
    )
    more: bool = wire(check.boolean, default=False)
    skipped: int = wire(check.uint, default=0)
    ref: int | None = wire(check.uint, default=None)
    #: The edits, deletions and reactions whose own id is in the page's span, in id order (docs/protocol.md,
    #: section 6.3): they count towards `limit`, `more` and `skipped` like messages. None (left out): none.
    events: tuple[Edited | Deleted | Reacted | Unreacted, ...] | None = wire(
        check.list_of(check.one_of(Edited, Deleted, Reacted, Unreacted)), default=None
    )
    #: In a join's backfill: the id up to which the nick has read the room (absent: no marker).
    read_up_to: int | None = wire(check.uint, default=None)
