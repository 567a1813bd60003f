"""Error codes and the two protocol exception classes.

Every error that crosses the wire carries one of the stable, machine-readable codes below, so that clients,
scripts and tests can act on the code and never on the wording of the message.

Two exception classes, one translation point (as h11 does it):

* `RemoteProtocolError`: the *peer* broke the protocol. Its `code` is what we send back in an `error` frame;
  its `fatal` flag says whether the connection must then be closed.
* `LocalProtocolError`: *we* misused the API (sent a request before `hello`, built an invalid message).
  That is a bug in the caller, never something a peer can cause.

Any other exception escaping the `shared` package is a bug in the package.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The stable error codes of the protocol (see docs/protocol.md, "Errors")."""

    # Fatal: the connection is closed after the error frame.
    BAD_FRAME = "bad_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    BAD_HELLO = "bad_hello"
    UNSUPPORTED_VERSION = "unsupported_version"
    HELLO_TIMEOUT = "hello_timeout"
    PING_TIMEOUT = "ping_timeout"
    SENDQ_EXCEEDED = "sendq_exceeded"
    EXCESS_FLOOD = "excess_flood"
    SERVER_FULL = "server_full"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SERVER_SHUTDOWN = "server_shutdown"
    BAD_PASSWORD = "bad_password"
    SESSION_REPLACED = "session_replaced"
    # Not fatal: the request is refused, the connection stays open.
    INVALID_FIELD = "invalid_field"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LONG = "too_long"
    INVALID_NICK = "invalid_nick"
    INVALID_ROOM = "invalid_room"
    INVALID_TEXT = "invalid_text"
    NICK_TAKEN = "nick_taken"
    TOO_MANY_SESSIONS = "too_many_sessions"
    ALREADY_LOGGED_IN = "already_logged_in"
    NOT_IN_ROOM = "not_in_room"
    ALREADY_IN_ROOM = "already_in_room"
    NO_SUCH_NICK = "no_such_nick"
    NO_SUCH_ROOM = "no_such_room"
    TOO_MANY_ROOMS = "too_many_rooms"
    RATE_LIMITED = "rate_limited"
    HISTORY_UNAVAILABLE = "history_unavailable"
    FORBIDDEN = "forbidden"
    NICK_REGISTERED = "nick_registered"
    NOT_REGISTERED = "not_registered"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    NOT_OPERATOR = "not_operator"
    NOT_ADMIN = "not_admin"
    BANNED = "banned"
    BAD_KEY = "bad_key"
    INVITE_ONLY = "invite_only"
    MUTED = "muted"
    INTERNAL_ERROR = "internal_error"
    CLIENT_MSG_ID_REUSED = "client_msg_id_reused"
    # File transfer (not fatal): see docs/protocol.md, "File transfer".
    FILE_TOO_LARGE = "file_too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    NO_SUCH_FILE = "no_such_file"
    BAD_OFFSET = "bad_offset"
    TOO_MANY_TRANSFERS = "too_many_transfers"
    # Conversations (not fatal): replies, edits, deletions and reactions (docs/protocol.md, section 6.3).
    NO_SUCH_MESSAGE = "no_such_message"
    INVALID_REACTION = "invalid_reaction"
    EDIT_WINDOW_CLOSED = "edit_window_closed"
    TOO_MANY_REACTIONS = "too_many_reactions"
    NO_SUCH_REACTION = "no_such_reaction"

    @property
    def fatal(self) -> bool:
        """True if a peer must close the connection after sending or receiving this code."""
        return self in _FATAL_CODES


_FATAL_CODES = frozenset(
    {
        ErrorCode.BAD_FRAME,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.BAD_HELLO,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.HELLO_TIMEOUT,
        ErrorCode.PING_TIMEOUT,
        ErrorCode.SENDQ_EXCEEDED,
        ErrorCode.EXCESS_FLOOD,
        ErrorCode.SERVER_FULL,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.SERVER_SHUTDOWN,
        ErrorCode.BAD_PASSWORD,
        ErrorCode.SESSION_REPLACED,
    }
)


class ProtocolError(Exception):
    """Base class of both protocol errors: a stable `code`, a human `message` and a `fatal` flag."""

    def __init__(self, code: ErrorCode, message: str, *, fatal: bool | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fatal = code.fatal if fatal is None else fatal
        #: The `ref` of the request this error answers, when the request carried one.
        self.ref: int | None = None


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; `code` is the reply to send it."""


class LocalProtocolError(ProtocolError):
    """This side misused the protocol API (a bug in the caller, not in the peer)."""
