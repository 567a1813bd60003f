"""The mpchat wire protocol, sans-I/O: framing, message types, validation and errors.

Nothing in this package opens a socket, starts a thread or waits: it turns bytes into typed messages and
messages into bytes, so the threaded server, the asyncio client and the tests all drive the same code.

Every message class (`shared.messages`) can be imported from here too: `from shared import Say`. The public
names are imported when first used (`shared.lazy`), so a program that needs only a small part (the client's
connect screen uses `shared.text` and `shared.limits`) does not build every message class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

if TYPE_CHECKING:  # the real imports, for type checkers and readers; at run time see `shared.lazy`
    from .codec import FrameReassembler as FrameReassembler
    from .codec import decode_body as decode_body
    from .codec import encode as encode
    from .codec import encode_body as encode_body
    from .codec import frame as frame
    from .connection import EndOfStream as EndOfStream
    from .connection import ProtocolConnection as ProtocolConnection
    from .connection import Role as Role
    from .connection import State as State
    from .errors import ErrorCode as ErrorCode
    from .errors import LocalProtocolError as LocalProtocolError
    from .errors import ProtocolError as ProtocolError
    from .errors import RemoteProtocolError as RemoteProtocolError
    from .limits import DEFAULT_LIMITS as DEFAULT_LIMITS
    from .limits import Limits as Limits
    from .messages import *  # noqa: F403  (every message class: the list is `shared.messages.__all__`)
    from .schema import SENT_BY_CLIENT as SENT_BY_CLIENT
    from .schema import SENT_BY_SERVER as SENT_BY_SERVER
    from .schema import Message as Message
    from .schema import check_outgoing as check_outgoing
    from .text import fold as fold
    from .text import nick_problem as nick_problem
    from .text import room_problem as room_problem
    from .text import text_problem as text_problem
    from .text import visible as visible

#: The module of each public name that is not a message (the messages are all in `shared.messages`).
_HOMES = {
    **dict.fromkeys(("FrameReassembler", "decode_body", "encode", "encode_body", "frame"), "codec"),
    **dict.fromkeys(("EndOfStream", "ProtocolConnection", "Role", "State"), "connection"),
    **dict.fromkeys(("ErrorCode", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"), "errors"),
    **dict.fromkeys(("DEFAULT_LIMITS", "Limits"), "limits"),
    **dict.fromkeys(("SENT_BY_CLIENT", "SENT_BY_SERVER", "Message", "check_outgoing"), "schema"),
    **dict.fromkeys(("fold", "nick_problem", "room_problem", "text_problem", "visible"), "text"),
}

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error, not `Any`
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES, fallback="messages")
