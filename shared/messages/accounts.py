"""The frames about who a user is: changing nick, registering a nick with a password, being away."""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.schema import Message, Sender, message, wire

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER


# -- Requests: client to server ----------------------------------------------------------------------------


@message(
    "nick",
    CLIENT,
    answers=("ok",),
    errors=(
        ErrorCode.NICK_TAKEN,
        ErrorCode.NICK_REGISTERED,
        ErrorCode.TOO_MANY_ATTEMPTS,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.FORBIDDEN,
        ErrorCode.RATE_LIMITED,
        ErrorCode.EXCESS_FLOOD,
    ),
)
class ChangeNick(Message):
    """Change this connection's nick; `password` is needed when the new nick is registered."""

    nick: str = wire(check.nick)
    password: str | None = wire(check.reason, default=None, secret=True)
    ref: int | None = wire(check.uint, default=None)


@message(
    "register",
    CLIENT,
    answers=("registration",),
    errors=(
        ErrorCode.NICK_REGISTERED,
        ErrorCode.TOO_MANY_ATTEMPTS,
        ErrorCode.FORBIDDEN,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.EXCESS_FLOOD,
    ),
)
class Register(Message):
    """Register this connection's nick with `password`, or change the password (`old_password` then)."""

    password: str = wire(check.reason, secret=True)
    old_password: str | None = wire(check.reason, default=None, secret=True)
    ref: int | None = wire(check.uint, default=None)


@message(
    "unregister",
    CLIENT,
    answers=("registration",),
    errors=(
        ErrorCode.NOT_REGISTERED,
        ErrorCode.NICK_REGISTERED,
        ErrorCode.TOO_MANY_ATTEMPTS,
        ErrorCode.FORBIDDEN,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.EXCESS_FLOOD,
    ),
)
class Unregister(Message):
    """Drop the registration of this connection's nick (its `password` proves ownership)."""

    password: str = wire(check.reason, secret=True)
    ref: int | None = wire(check.uint, default=None)


@message(
    "away",
    CLIENT,
    answers=("ok",),
    errors=(ErrorCode.RATE_LIMITED,),
)
class SetAway(Message):
    """Mark this user away with `message`, or back when `message` is None."""

    message: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


# -- Notifications: server to client -----------------------------------------------------------------------


@message("nick_changed", SERVER)
class NickChanged(Message):
    """`old` is now called `new` (sent to the user and to everyone sharing a room with them)."""

    old: str = wire(check.nick)
    new: str = wire(check.nick)
    ts: int = wire(check.uint)


@message("away_changed", SERVER)
class AwayChanged(Message):
    """`nick` is away with `message`, or back when `message` is None."""

    nick: str = wire(check.nick)
    ts: int = wire(check.uint)
    message: str | None = wire(check.reason, default=None)


@message("registration", SERVER)
class Registration(Message):
    """The answer to `Register` and `Unregister`: whether `nick` is now registered to this connection."""

    nick: str = wire(check.nick)
    registered: bool = wire(check.boolean)
    ref: int | None = wire(check.uint, default=None)
