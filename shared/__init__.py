"""The mpchat wire protocol, sans-I/O: framing, message types, validation and errors.

Nothing in this package opens a socket, starts a thread or waits: it turns bytes into typed messages and
messages into bytes, so the threaded server, the asyncio client and the tests all drive the same code.

The public names below are imported when first used (`__getattr__`), so a program that needs only a small
part (the client's connect screen uses `shared.text` and `shared.limits`) does not build every message class.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real imports, for type checkers and IDEs; at run time see __getattr__ below
    from .codec import decode_body, encode, encode_body
    from .connection import ConnectionClosed, ProtocolConnection, Role, State
    from .errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
    from .framing import FrameReassembler, frame
    from .limits import DEFAULT_LIMITS, Limits
    from .messages import (
        MODERATION_ACTIONS,
        MODERATION_REQUESTS,
        PROTOCOL_NAME,
        PROTOCOL_VERSION,
        Ack,
        AwayChanged,
        Ban,
        BanEntry,
        BanList,
        CancelFile,
        ChangeNick,
        Deop,
        Error,
        FetchHistory,
        Figure,
        FileChunk,
        FileData,
        FileDone,
        FileOffered,
        FilePolicy,
        FileProgress,
        GetFile,
        GetStats,
        Hello,
        History,
        Invite,
        Join,
        Joined,
        Kick,
        Leave,
        Left,
        ListBans,
        ListRooms,
        Member,
        Moderated,
        ModerationRequest,
        Mute,
        NickChanged,
        OfferFile,
        Op,
        Ping,
        Pong,
        Quit,
        Register,
        Registration,
        RoomList,
        RoomState,
        RoomSummary,
        Said,
        Say,
        SetAway,
        SetMode,
        SetTopic,
        SignedOff,
        StatsReport,
        Tell,
        Told,
        TopicChanged,
        Unban,
        Unmute,
        Unregister,
        Welcome,
        Who,
    )
    from .schema import SENT_BY_CLIENT, SENT_BY_SERVER, Message, check_outgoing
    from .text import fold, nick_problem, room_problem, text_problem, visible

__all__ = [
    "DEFAULT_LIMITS",
    "MODERATION_ACTIONS",
    "MODERATION_REQUESTS",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "SENT_BY_CLIENT",
    "SENT_BY_SERVER",
    "Ack",
    "AwayChanged",
    "Ban",
    "BanEntry",
    "BanList",
    "CancelFile",
    "ChangeNick",
    "ConnectionClosed",
    "Deop",
    "Error",
    "ErrorCode",
    "FetchHistory",
    "Figure",
    "FileChunk",
    "FileData",
    "FileDone",
    "FileOffered",
    "FilePolicy",
    "FileProgress",
    "FrameReassembler",
    "GetFile",
    "GetStats",
    "Hello",
    "History",
    "Invite",
    "Join",
    "Joined",
    "Kick",
    "Leave",
    "Left",
    "Limits",
    "ListBans",
    "ListRooms",
    "LocalProtocolError",
    "Member",
    "Message",
    "Moderated",
    "ModerationRequest",
    "Mute",
    "NickChanged",
    "OfferFile",
    "Op",
    "Ping",
    "Pong",
    "ProtocolConnection",
    "ProtocolError",
    "Quit",
    "Register",
    "Registration",
    "RemoteProtocolError",
    "Role",
    "RoomList",
    "RoomState",
    "RoomSummary",
    "Said",
    "Say",
    "SetAway",
    "SetMode",
    "SetTopic",
    "SignedOff",
    "State",
    "StatsReport",
    "Tell",
    "Told",
    "TopicChanged",
    "Unban",
    "Unmute",
    "Unregister",
    "Welcome",
    "Who",
    "check_outgoing",
    "decode_body",
    "encode",
    "encode_body",
    "fold",
    "frame",
    "nick_problem",
    "room_problem",
    "text_problem",
    "visible",
]

#: The module of each public name that is not a message type (those are all in `shared.messages`).
#: Imported on first use (PEP 562): a program that needs only `shared.text` or `shared.limits` (the
#: client's connect screen) does not pay for building every message class.
_HOMES = {
    **dict.fromkeys(("decode_body", "encode", "encode_body"), "codec"),
    **dict.fromkeys(("ConnectionClosed", "ProtocolConnection", "Role", "State"), "connection"),
    **dict.fromkeys(("ErrorCode", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"), "errors"),
    **dict.fromkeys(("FrameReassembler", "frame"), "framing"),
    **dict.fromkeys(("DEFAULT_LIMITS", "Limits"), "limits"),
    **dict.fromkeys(("SENT_BY_CLIENT", "SENT_BY_SERVER", "Message", "check_outgoing"), "schema"),
    **dict.fromkeys(("fold", "nick_problem", "room_problem", "text_problem", "visible"), "text"),
}


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used, then keep the name here."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_HOMES.get(name, 'messages')}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported public ones included."""
    return sorted({*globals(), *__all__})
