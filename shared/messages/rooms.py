"""The frames about rooms: join and leave them, their topics, members and list, and who comes and goes."""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.schema import Message, Sender, message, record, wire

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER


# -- Requests: client to server ----------------------------------------------------------------------------


@message(
    "join",
    CLIENT,
    answers=("room_state", "history"),
    errors=(
        ErrorCode.TOO_MANY_ROOMS,
        ErrorCode.BANNED,
        ErrorCode.INVITE_ONLY,
        ErrorCode.BAD_KEY,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.EXCESS_FLOOD,
    ),
)
class Join(Message):
    """Join (creating it if new) a room. `after`: resume after this id; `backfill`: how many to replay."""

    room: str = wire(check.room)
    after: int | None = wire(check.uint, default=None)
    backfill: int | None = wire(check.uint, default=None)
    key: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "leave",
    CLIENT,
    answers=("ok",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.RATE_LIMITED,
    ),
)
class Leave(Message):
    """Leave a room."""

    room: str = wire(check.room)
    reason: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "topic",
    CLIENT,
    answers=("ok",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class SetTopic(Message):
    """Set a room's topic (an empty string clears it)."""

    room: str = wire(check.room)
    topic: str = wire(check.topic)
    ref: int | None = wire(check.uint, default=None)


@message(
    "list_rooms",
    CLIENT,
    answers=("room_list",),
    errors=(ErrorCode.RATE_LIMITED,),
)
class ListRooms(Message):
    """Ask for the room list (answered by `RoomList`)."""

    ref: int | None = wire(check.uint, default=None)


@message(
    "who",
    CLIENT,
    answers=("room_state",),
    errors=(
        ErrorCode.NO_SUCH_ROOM,
        ErrorCode.FORBIDDEN,
        ErrorCode.RATE_LIMITED,
    ),
)
class Who(Message):
    """Ask for a room's topic and members (answered by `RoomState`)."""

    room: str = wire(check.room)
    ref: int | None = wire(check.uint, default=None)


# -- Records used inside notifications ---------------------------------------------------------------------


@record
class Member(Message):
    """One member of a room, as listed in `RoomState`; `op` marks a room operator."""

    nick: str = wire(check.nick)
    away: str | None = wire(check.reason, default=None)
    op: bool = wire(check.boolean, default=False)


@record
class RoomSummary(Message):
    """One room, as listed in `RoomList`."""

    name: str = wire(check.room)
    topic: str = wire(check.topic, default="")
    members: int = wire(check.uint, default=0)


# -- Notifications: server to client -----------------------------------------------------------------------


@message("joined", SERVER)
class Joined(Message):
    """`nick` joined `room` (sent to every member, the joiner included); `op` if they joined as operator."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ts: int = wire(check.uint)
    op: bool = wire(check.boolean, default=False)


@message("left", SERVER)
class Left(Message):
    """`nick` left `room` (sent to every member, the leaver included)."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ts: int = wire(check.uint)
    reason: str | None = wire(check.reason, default=None)


@message("signed_off", SERVER)
class SignedOff(Message):
    """`nick` disconnected (sent once to everyone who shared a room with them)."""

    nick: str = wire(check.nick)
    ts: int = wire(check.uint)
    reason: str | None = wire(check.reason, default=None)


@message("topic_changed", SERVER)
class TopicChanged(Message):
    """`nick` set `room`'s topic."""

    room: str = wire(check.room)
    topic: str = wire(check.topic)
    nick: str = wire(check.nick)
    ts: int = wire(check.uint)


@message("room_list", SERVER)
class RoomList(Message):
    """The answer to `ListRooms`."""

    rooms: tuple[RoomSummary, ...] = wire(check.list_of(check.nested(RoomSummary)))
    ref: int | None = wire(check.uint, default=None)


@message("room_state", SERVER)
class RoomState(Message):
    """A room's topic, members and modes: sent after `Joined` to the joiner, and as the answer to `Who`.

    `keyed`: joining needs a key; `key` is the key itself, sent to the room's operators only.
    """

    room: str = wire(check.room)
    topic: str = wire(check.topic, default="")
    members: tuple[Member, ...] = wire(check.list_of(check.nested(Member)), default=())
    topic_lock: bool = wire(check.boolean, default=False)
    invite_only: bool = wire(check.boolean, default=False)
    keyed: bool = wire(check.boolean, default=False)
    key: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)
