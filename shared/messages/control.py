"""The frames of the connection itself: log in, answers that acknowledge or refuse, liveness, log out.

`Hello` opens every connection and `Welcome` (or a fatal `Error`) answers it; `Error` and `Ack` answer any
request by its `ref`; `Ping` and `Pong` go both ways; `Quit` ends the session.
"""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.limits import Limits
from shared.schema import Message, Sender, message, record, wire

from .attention import NotifyLevel, ReadPosition
from .files import FilePolicy
from .sessions import SessionInfo

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER
BOTH = Sender.BOTH


#: The value of `Hello.proto`: it tells a chat server from a stray HTTP, TLS or other client at once.
PROTOCOL_NAME = "mpchat"
#: The protocol version this package speaks.
PROTOCOL_VERSION = 1


# -- Requests: client to server ----------------------------------------------------------------------------


@message(
    "hello",
    CLIENT,
    answers=("welcome",),
    errors=(
        ErrorCode.BAD_HELLO,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.BAD_PASSWORD,
        ErrorCode.TOO_MANY_ATTEMPTS,
        ErrorCode.NICK_REGISTERED,
        ErrorCode.NICK_TAKEN,
        ErrorCode.TOO_MANY_SESSIONS,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.SERVER_FULL,
        ErrorCode.RATE_LIMITED,
        ErrorCode.TOO_MANY_ROOMS,
        ErrorCode.ALREADY_LOGGED_IN,
    ),
)
class Hello(Message):
    """Log in: the first frame of every connection. `rooms` None means "put me in the default room"."""

    proto: str = wire(check.token)
    version: int = wire(check.uint)
    nick: str = wire(check.nick)
    client: str | None = wire(check.reason, default=None)
    rooms: tuple[str, ...] | None = wire(check.list_of(check.room), default=None)
    password: str | None = wire(check.reason, default=None, secret=True)
    nick_password: str | None = wire(check.reason, default=None, secret=True)
    ref: int | None = wire(check.uint, default=None)
    #: The `resume_token` of the session this login continues: it replaces that session's connection.
    resume_token: str | None = wire(check.token, default=None, secret=True)
    #: Resume at login: room -> the last message id seen there; each is joined as by `join {after}`.
    after: dict[str, int] | None = wire(check.room_ids, default=None)
    #: Resume the direct messages at login: the last direct-message id seen.
    direct_after: int | None = wire(check.uint, default=None)


@message("quit", CLIENT, answers=())
class Quit(Message):
    """Log out; the server announces `reason` and closes the connection."""

    reason: str | None = wire(check.reason, default=None)


# -- Both directions ---------------------------------------------------------------------------------------


@message("ping", BOTH, answers=("pong",))
class Ping(Message):
    """Are you there? The peer answers with a `Pong` carrying the same `token` (and `ref`)."""

    token: int | None = wire(check.uint, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("pong", BOTH, answers=())
class Pong(Message):
    """The answer to a `Ping`."""

    token: int | None = wire(check.uint, default=None)
    ref: int | None = wire(check.uint, default=None)


# -- Records used inside notifications ---------------------------------------------------------------------


@record
class RateBucket(Message):
    """One rate limit, a token bucket: it holds up to `burst` tokens and refills completely, continuously,
    in `refill_ms` milliseconds (`burst` * 1000 / `refill_ms` tokens per second). A request that finds too
    few tokens waits for them (requests, text bytes) or is refused with `rate_limited` (joins, nicks)."""

    burst: int = wire(check.uint)
    refill_ms: int = wire(check.uint)

    @property
    def per_second(self) -> float:
        """The tokens gained per second."""
        return self.burst * 1000 / self.refill_ms if self.refill_ms else float("inf")


#: The documented defaults of the rate limits (docs/protocol.md, `welcome`; the server's DEFAULT_RATE_*):
#: 10 requests, then 2 per second; 32 KiB of message text, then 8 KiB per second; 10 joins, then one every
#: 5 s; 5 nick changes or (un)registrations, then one every 20 s; 5 searches, then one every 2 s.
DEFAULT_REQUEST_BUCKET = RateBucket(burst=10, refill_ms=5_000)
DEFAULT_TEXT_BYTES_BUCKET = RateBucket(burst=32 * 1024, refill_ms=4_000)
DEFAULT_JOIN_BUCKET = RateBucket(burst=10, refill_ms=50_000)
DEFAULT_NICK_BUCKET = RateBucket(burst=5, refill_ms=100_000)
#: 5 searches, then one every 2 s.
DEFAULT_SEARCH_BUCKET = RateBucket(burst=5, refill_ms=10_000)
#: 10 edits or deletions, then one every 2 s; 20 reactions, then one a second.
DEFAULT_EDIT_BUCKET = RateBucket(burst=10, refill_ms=20_000)
DEFAULT_REACTION_BUCKET = RateBucket(burst=20, refill_ms=20_000)


@record
class RateLimits(Message):
    """The rate limits a server enforces per connection, announced in `Welcome.rates` (each bucket absent
    from the map takes its documented default)."""

    #: Every request except `ping`, `pong`, `quit` and the file transfer frames costs one token.
    requests: RateBucket = wire(check.nested(RateBucket), default=DEFAULT_REQUEST_BUCKET)
    #: `say` and `tell` also cost the bytes of UTF-8 of their text (at most the whole burst).
    text_bytes: RateBucket = wire(check.nested(RateBucket), default=DEFAULT_TEXT_BYTES_BUCKET)
    #: `join` also costs one join token.
    joins: RateBucket = wire(check.nested(RateBucket), default=DEFAULT_JOIN_BUCKET)
    #: `nick`, `register` and `unregister` also cost one nick token.
    nicks: RateBucket = wire(check.nested(RateBucket), default=DEFAULT_NICK_BUCKET)
    #: `search` also costs one search token.
    searches: RateBucket = wire(check.nested(RateBucket), default=DEFAULT_SEARCH_BUCKET)
    #: `edit` and `delete` also cost one edit token (refused past it, like joins).
    edits: RateBucket = wire(check.nested(RateBucket), default=DEFAULT_EDIT_BUCKET)
    #: `react` and `unreact` also cost one reaction token (likewise).
    reactions: RateBucket = wire(check.nested(RateBucket), default=DEFAULT_REACTION_BUCKET)


#: What a client assumes of a server whose `welcome` announces no `rates`.
DEFAULT_RATE_LIMITS = RateLimits()


# -- Notifications: server to client -----------------------------------------------------------------------


@message("welcome", SERVER)
class Welcome(Message):
    """Login accepted. `nick` is the nick as recorded; `limits` are the server's limits in force."""

    version: int = wire(check.uint)
    nick: str = wire(check.nick)
    server: str = wire(check.reason)
    ts: int = wire(check.uint)
    limits: Limits = wire(check.limits_map, default=Limits())
    ping_interval: int = wire(check.uint, default=60)
    #: Seconds of silence from the client after which the server closes with `ping_timeout` (absent: not
    #: announced; this server's default is 90).
    ping_timeout: int | None = wire(check.uint, default=None)
    rates: RateLimits | None = wire(check.nested(RateLimits), default=None)
    motd: str | None = wire(check.reason, default=None)
    files: FilePolicy | None = wire(check.nested(FilePolicy), default=None)
    ref: int | None = wire(check.uint, default=None)
    #: A secret (128 random bits, hex) that lets a reconnect of this session replace its stale connection.
    resume_token: str | None = wire(check.token, default=None, secret=True)
    #: How far the nick has read its rooms and direct conversations (at most `max_list`, the most recently
    #: moved first; absent or empty: none).
    read_markers: tuple[ReadPosition, ...] = wire(check.list_of(check.nested(ReadPosition)), default=())
    #: The nick's notification levels that are not the default, and its keywords (see `notify_settings`).
    notify_levels: tuple[NotifyLevel, ...] = wire(check.list_of(check.nested(NotifyLevel)), default=())
    keywords: tuple[str, ...] = wire(check.list_of(check.keyword), default=())
    #: This session's id, and every session of the nick, this one included (a registered nick may have
    #: several: see `sessions`; absent: an older server, one session).
    session: int | None = wire(check.uint, default=None)
    sessions: tuple[SessionInfo, ...] = wire(check.list_of(check.nested(SessionInfo)), default=())
    #: A cluster's other servers (docs/cluster.md), ``HOST:PORT`` each: where to reconnect if this one goes
    #: away. Empty (left out) for a single server.
    servers: tuple[str, ...] = wire(check.list_of(check.reason), default=())


@message("ok", SERVER)
class Ok(Message):
    """The request that carried `ref` was carried out.

    It answers the requests whose effect reaches the client as a broadcast (`leave`, `topic`, `away`, `nick`,
    `file_cancel`), after that broadcast, so that every request with a `ref` gets one direct answer. A
    request without a `ref` gets none.
    """

    ref: int = wire(check.uint)


@message("error", SERVER)
class Error(Message):
    """A request was refused (`fatal` false) or the connection is about to close (`fatal` true)."""

    code: str = wire(check.token)
    message: str = wire(check.reason, default="")
    fatal: bool = wire(check.boolean, default=False)
    retry_after_ms: int | None = wire(check.uint, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("ack", SERVER)
class Ack(Message):
    """A `Say` or `Tell` was stored durably as message `id`; `duplicate` if its `client_msg_id` was seen.

    `away`: for a `Tell`, the recipient's away message when they are away (None when they are not).
    """

    id: int = wire(check.uint)
    ts: int = wire(check.uint)
    client_msg_id: str | None = wire(check.token, default=None)
    duplicate: bool = wire(check.boolean, default=False)
    ref: int | None = wire(check.uint, default=None)
    away: str | None = wire(check.reason, default=None)
