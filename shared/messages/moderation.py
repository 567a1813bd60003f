"""The frames of moderation: the requests of room operators and server admins, and what they did.

Every request names its room and is refused with `not_operator` unless the sender may moderate it. What an
operator did is announced to the room as `Moderated` and stored in history like a message.
"""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.schema import Message, Sender, message, record, wire

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER


#: The values of `Moderated.action`.
MODERATION_ACTIONS = (
    "kick",
    "ban",
    "ban_address",
    "unban",
    "unban_address",
    "mute",
    "unmute",
    "op",
    "deop",
    "invite",
    "lock_topic",
    "unlock_topic",
    "invite_only",
    "open",
    "set_key",
    "clear_key",
    "delete",
)


# -- Requests: client to server (room operators and server admins only) ------------------------------------


@message(
    "kick",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_NICK,
        ErrorCode.FORBIDDEN,
    ),
)
class Kick(Message):
    """Put `nick` out of `room` (they may join again)."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    reason: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "ban",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_NICK,
        ErrorCode.FORBIDDEN,
        ErrorCode.TOO_LONG,
    ),
)
class Ban(Message):
    """Ban `nick` from `room` (or, with `by_address`, the address `nick` is connected from), and kick them.

    `duration`: seconds until the ban lapses by itself; absent means until `unban`.
    """

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    by_address: bool = wire(check.boolean, default=False)
    duration: int | None = wire(check.uint, default=None)
    reason: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "unban",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_NICK,
    ),
)
class Unban(Message):
    """Lift the ban of `nick`, or of `address` (as `ban_list` shows it): exactly one of the two."""

    room: str = wire(check.room)
    nick: str | None = wire(check.nick, default=None)
    address: str | None = wire(check.token, default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "list_bans",
    CLIENT,
    answers=("ban_list",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.RATE_LIMITED,
    ),
)
class ListBans(Message):
    """Ask for a room's bans (answered by `BanList`)."""

    room: str = wire(check.room)
    ref: int | None = wire(check.uint, default=None)


@message(
    "mute",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.FORBIDDEN,
        ErrorCode.TOO_LONG,
    ),
)
class Mute(Message):
    """Stop `nick` from speaking in `room`, for `duration` seconds or until `unmute`."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    duration: int | None = wire(check.uint, default=None)
    reason: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "unmute",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_NICK,
    ),
)
class Unmute(Message):
    """Let `nick` speak in `room` again."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ref: int | None = wire(check.uint, default=None)


@message(
    "op",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_NICK,
        ErrorCode.TOO_LONG,
    ),
)
class Op(Message):
    """Make `nick` an operator of `room`."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ref: int | None = wire(check.uint, default=None)


@message(
    "deop",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_NICK,
        ErrorCode.FORBIDDEN,
    ),
)
class Deop(Message):
    """Take `nick`'s operator rights in `room` away."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ref: int | None = wire(check.uint, default=None)


@message(
    "mode",
    CLIENT,
    answers=("room_state",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
    ),
)
class SetMode(Message):
    """Change a room's modes; an absent field is left as it is. `key` "" removes the key."""

    room: str = wire(check.room)
    topic_lock: bool | None = wire(check.boolean, default=None)
    invite_only: bool | None = wire(check.boolean, default=None)
    key: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message(
    "invite",
    CLIENT,
    answers=("ack",),
    errors=(
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NOT_OPERATOR,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NO_SUCH_NICK,
        ErrorCode.ALREADY_IN_ROOM,
        ErrorCode.TOO_LONG,
    ),
)
class Invite(Message):
    """Let `nick` (who is online) into `room` past invite-only and the key; a ban still keeps them out."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ref: int | None = wire(check.uint, default=None)


#: Every moderation request (for dispatch and for the client library's `moderate`).
ModerationRequest = Kick | Ban | Unban | ListBans | Mute | Unmute | Op | Deop | SetMode | Invite
MODERATION_REQUESTS = (Kick, Ban, Unban, ListBans, Mute, Unmute, Op, Deop, SetMode, Invite)


# -- Records used inside notifications ---------------------------------------------------------------------


@record
class BanEntry(Message):
    """One ban, as listed in `BanList`: of a nick, or (with `address`) of the address taken from `nick`."""

    nick: str = wire(check.nick)
    by: str = wire(check.nick)
    ts: int = wire(check.uint)
    address: str | None = wire(check.token, default=None)
    until: int | None = wire(check.uint, default=None)
    reason: str | None = wire(check.reason, default=None)


# -- Notifications: server to client -----------------------------------------------------------------------


@message("moderated", SERVER)
class Moderated(Message):
    """Operator `nick` did `action` in `room` (to `target`): announced to the room and stored in history.

    `action` is one of `MODERATION_ACTIONS`. `until`: when a timed ban or mute lapses (ms since the epoch).
    """

    id: int = wire(check.uint)
    room: str = wire(check.room)
    nick: str = wire(check.nick)
    action: str = wire(check.token)
    ts: int = wire(check.uint)
    target: str | None = wire(check.nick, default=None)
    reason: str | None = wire(check.reason, default=None)
    until: int | None = wire(check.uint, default=None)


@message("ban_list", SERVER)
class BanList(Message):
    """The answer to `ListBans`: the room's bans in force, oldest first (`more`: not all fit one frame)."""

    room: str = wire(check.room)
    bans: tuple[BanEntry, ...] = wire(check.list_of(check.nested(BanEntry)), default=())
    more: bool = wire(check.boolean, default=False)
    ref: int | None = wire(check.uint, default=None)
