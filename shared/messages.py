"""Every frame of the protocol as a typed, frozen message class.

Requests (sent by clients) are named as imperatives: `Join`, `Say`. Notifications (sent by the server) are
named in the past tense or as nouns: `Joined`, `Said`, `RoomList`. `Ping` and `Pong` go both ways.
The wire map exists only inside the codec: callers build and dispatch on these classes.

Every request may carry `ref`, an integer the client chooses; the server copies it into the `ack`, `error`
or reply frame (`welcome`, `room_state`, `room_list`, `history`) that answers that request, so a client can
match answers to questions. Broadcast notifications (`joined`, `said`, ...) never carry a `ref`: the server
encodes each of them once, and the same bytes go to every recipient.

docs/protocol.md is the normative description of every field; the field checks live in `shared.schema`.
"""

from __future__ import annotations

from . import schema as check
from .limits import DEFAULT_FILE_CHUNK, DEFAULT_FILE_WINDOW, Limits
from .schema import Message, Sender, message, record, wire

__all__ = [
    "MODERATION_ACTIONS",
    "MODERATION_REQUESTS",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "Ack",
    "AwayChanged",
    "Ban",
    "BanEntry",
    "BanList",
    "CancelFile",
    "ChangeNick",
    "Deop",
    "Error",
    "FetchHistory",
    "FileChunk",
    "FileData",
    "FileDone",
    "FileOffered",
    "FilePolicy",
    "FileProgress",
    "GetFile",
    "Hello",
    "History",
    "Invite",
    "Join",
    "Joined",
    "Kick",
    "Leave",
    "Left",
    "ListBans",
    "ListRooms",
    "Member",
    "Moderated",
    "ModerationRequest",
    "Mute",
    "NickChanged",
    "OfferFile",
    "Op",
    "Ping",
    "Pong",
    "Quit",
    "Register",
    "Registration",
    "RoomList",
    "RoomState",
    "RoomSummary",
    "Said",
    "Say",
    "SetAway",
    "SetMode",
    "SetTopic",
    "SignedOff",
    "Tell",
    "Told",
    "TopicChanged",
    "Unban",
    "Unmute",
    "Unregister",
    "Welcome",
    "Who",
]

#: The value of `Hello.proto`: it tells a chat server from a stray HTTP, TLS or other client at once.
PROTOCOL_NAME = "mpchat"
#: The protocol version this package speaks.
PROTOCOL_VERSION = 1
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
)

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER
BOTH = Sender.BOTH

# -- Requests: client to server ----------------------------------------------------------------------------


@message("hello", CLIENT)
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


@message("join", CLIENT)
class Join(Message):
    """Join (creating it if new) a room. `after`: resume after this id; `backfill`: how many to replay."""

    room: str = wire(check.room)
    after: int | None = wire(check.uint, default=None)
    backfill: int | None = wire(check.uint, default=None)
    key: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("leave", CLIENT)
class Leave(Message):
    """Leave a room."""

    room: str = wire(check.room)
    reason: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("say", CLIENT)
class Say(Message):
    """Send `text` to a room. `action` marks a /me action; `client_msg_id` makes a resend idempotent."""

    room: str = wire(check.room)
    text: str = wire(check.text)
    action: bool = wire(check.boolean, default=False)
    client_msg_id: str | None = wire(check.token, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("tell", CLIENT)
class Tell(Message):
    """Send a direct message to one nick."""

    to: str = wire(check.nick)
    text: str = wire(check.text)
    action: bool = wire(check.boolean, default=False)
    client_msg_id: str | None = wire(check.token, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("nick", CLIENT)
class ChangeNick(Message):
    """Change this connection's nick; `password` is needed when the new nick is registered."""

    nick: str = wire(check.nick)
    password: str | None = wire(check.reason, default=None, secret=True)
    ref: int | None = wire(check.uint, default=None)


@message("register", CLIENT)
class Register(Message):
    """Register this connection's nick with `password`, or change the password (`old_password` then)."""

    password: str = wire(check.reason, secret=True)
    old_password: str | None = wire(check.reason, default=None, secret=True)
    ref: int | None = wire(check.uint, default=None)


@message("unregister", CLIENT)
class Unregister(Message):
    """Drop the registration of this connection's nick (its `password` proves ownership)."""

    password: str = wire(check.reason, secret=True)
    ref: int | None = wire(check.uint, default=None)


@message("topic", CLIENT)
class SetTopic(Message):
    """Set a room's topic (an empty string clears it)."""

    room: str = wire(check.room)
    topic: str = wire(check.topic)
    ref: int | None = wire(check.uint, default=None)


@message("away", CLIENT)
class SetAway(Message):
    """Mark this user away with `message`, or back when `message` is None."""

    message: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("list_rooms", CLIENT)
class ListRooms(Message):
    """Ask for the room list (answered by `RoomList`)."""

    ref: int | None = wire(check.uint, default=None)


@message("who", CLIENT)
class Who(Message):
    """Ask for a room's topic and members (answered by `RoomState`)."""

    room: str = wire(check.room)
    ref: int | None = wire(check.uint, default=None)


@message("fetch_history", CLIENT)
class FetchHistory(Message):
    """Ask for stored messages of a room, or of direct messages (all, or with one `peer`).

    Exactly one of `room` and `direct` is given. `before`: messages older than this id, newest first
    when paging back; `after`: messages newer than this id (resume). At most `limit` come back.
    """

    room: str | None = wire(check.room, default=None)
    direct: bool = wire(check.boolean, default=False)
    peer: str | None = wire(check.nick, default=None)
    before: int | None = wire(check.uint, default=None)
    after: int | None = wire(check.uint, default=None)
    limit: int | None = wire(check.uint, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("file_offer", CLIENT)
class OfferFile(Message):
    """Offer a file to a room or to one nick (exactly one of `room` and `to`), then upload it.

    Answered by `file_progress` naming the `upload` and the offset to send from (0, or where an interrupted
    upload of the same file by the same nick stopped), or by `file_done` with `duplicate` when this
    `client_msg_id` was already stored, or by an `error`.
    """

    name: str = wire(check.file_name)
    size: int = wire(check.uint)
    sha256: str = wire(check.sha256_hex)
    room: str | None = wire(check.room, default=None)
    to: str | None = wire(check.nick, default=None)
    client_msg_id: str | None = wire(check.token, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("file_chunk", CLIENT)
class FileChunk(Message):
    """Bytes `offset` to `offset + len(data)` of an upload. Errors about it echo `ref` (use the offer's)."""

    upload: int = wire(check.uint)
    offset: int = wire(check.uint)
    data: bytes = wire(check.blob)
    ref: int | None = wire(check.uint, default=None)


@message("file_get", CLIENT)
class GetFile(Message):
    """Ask for one chunk of the file offered as message `id`, from `offset` (answered by `file_data`)."""

    id: int = wire(check.uint)
    offset: int = wire(check.uint, default=0)
    ref: int | None = wire(check.uint, default=None)


@message("file_cancel", CLIENT)
class CancelFile(Message):
    """Abandon an upload: the server deletes what it received. Not answered (except by an `error`)."""

    upload: int = wire(check.uint)
    ref: int | None = wire(check.uint, default=None)


@message("quit", CLIENT)
class Quit(Message):
    """Log out; the server announces `reason` and closes the connection."""

    reason: str | None = wire(check.reason, default=None)


# -- Moderation requests: client to server (room operators and server admins only) -----------------------


@message("kick", CLIENT)
class Kick(Message):
    """Put `nick` out of `room` (they may join again)."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    reason: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("ban", CLIENT)
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


@message("unban", CLIENT)
class Unban(Message):
    """Lift the ban of `nick`, or of `address` (as `ban_list` shows it): exactly one of the two."""

    room: str = wire(check.room)
    nick: str | None = wire(check.nick, default=None)
    address: str | None = wire(check.token, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("list_bans", CLIENT)
class ListBans(Message):
    """Ask for a room's bans (answered by `BanList`)."""

    room: str = wire(check.room)
    ref: int | None = wire(check.uint, default=None)


@message("mute", CLIENT)
class Mute(Message):
    """Stop `nick` from speaking in `room`, for `duration` seconds or until `unmute`."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    duration: int | None = wire(check.uint, default=None)
    reason: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("unmute", CLIENT)
class Unmute(Message):
    """Let `nick` speak in `room` again."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ref: int | None = wire(check.uint, default=None)


@message("op", CLIENT)
class Op(Message):
    """Make `nick` an operator of `room`."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ref: int | None = wire(check.uint, default=None)


@message("deop", CLIENT)
class Deop(Message):
    """Take `nick`'s operator rights in `room` away."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ref: int | None = wire(check.uint, default=None)


@message("mode", CLIENT)
class SetMode(Message):
    """Change a room's modes; an absent field is left as it is. `key` "" removes the key."""

    room: str = wire(check.room)
    topic_lock: bool | None = wire(check.boolean, default=None)
    invite_only: bool | None = wire(check.boolean, default=None)
    key: str | None = wire(check.reason, default=None)
    ref: int | None = wire(check.uint, default=None)


@message("invite", CLIENT)
class Invite(Message):
    """Let `nick` (who is online) into `room` past invite-only and the key; a ban still keeps them out."""

    room: str = wire(check.room)
    nick: str = wire(check.nick)
    ref: int | None = wire(check.uint, default=None)


#: Every moderation request (for dispatch and for the client library's `moderate`).
ModerationRequest = Kick | Ban | Unban | ListBans | Mute | Unmute | Op | Deop | SetMode | Invite
MODERATION_REQUESTS = (Kick, Ban, Unban, ListBans, Mute, Unmute, Op, Deop, SetMode, Invite)


# -- Both directions ---------------------------------------------------------------------------------------


@message("ping", BOTH)
class Ping(Message):
    """Are you there? The peer answers with a `Pong` carrying the same `token`."""

    token: int | None = wire(check.uint, default=None)


@message("pong", BOTH)
class Pong(Message):
    """The answer to a `Ping`."""

    token: int | None = wire(check.uint, default=None)


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


@record
class FilePolicy(Message):
    """What a server accepts for file transfer, announced in `Welcome.files`."""

    chunk: int = wire(check.uint, default=DEFAULT_FILE_CHUNK)
    window: int = wire(check.uint, default=DEFAULT_FILE_WINDOW)
    max_size: int = wire(check.uint)


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


@message("welcome", SERVER)
class Welcome(Message):
    """Login accepted. `nick` is the nick as recorded; `limits` are the server's limits in force."""

    version: int = wire(check.uint)
    nick: str = wire(check.nick)
    server: str = wire(check.reason)
    ts: int = wire(check.uint)
    limits: Limits = wire(check.limits_map, default=Limits())
    ping_interval: int = wire(check.uint, default=60)
    motd: str | None = wire(check.reason, default=None)
    files: FilePolicy | None = wire(check.nested(FilePolicy), default=None)
    ref: int | None = wire(check.uint, default=None)


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
    """A `Say` or `Tell` was stored durably as message `id`; `duplicate` if its `client_msg_id` was seen."""

    id: int = wire(check.uint)
    ts: int = wire(check.uint)
    client_msg_id: str | None = wire(check.token, default=None)
    duplicate: bool = wire(check.boolean, default=False)
    ref: int | None = wire(check.uint, default=None)


@message("said", SERVER)
class Said(Message):
    """A message in a room. `id` and `ts` are the server's; `nick` is the sender as the server knows it."""

    id: int = wire(check.uint)
    room: str = wire(check.room)
    nick: str = wire(check.nick)
    text: str = wire(check.text)
    ts: int = wire(check.uint)
    action: bool = wire(check.boolean, default=False)


@message("told", SERVER)
class Told(Message):
    """A direct message from `nick` to `to` (the sender gets an `Ack`, as for `Say`)."""

    id: int = wire(check.uint)
    nick: str = wire(check.nick)
    to: str = wire(check.nick)
    text: str = wire(check.text)
    ts: int = wire(check.uint)
    action: bool = wire(check.boolean, default=False)


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


@message("nick_changed", SERVER)
class NickChanged(Message):
    """`old` is now called `new` (sent to the user and to everyone sharing a room with them)."""

    old: str = wire(check.nick)
    new: str = wire(check.nick)
    ts: int = wire(check.uint)


@message("topic_changed", SERVER)
class TopicChanged(Message):
    """`nick` set `room`'s topic."""

    room: str = wire(check.room)
    topic: str = wire(check.topic)
    nick: str = wire(check.nick)
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


@message("file_offered", SERVER)
class FileOffered(Message):
    """`nick` offered a file in `room`, or to `to` directly: a stored message, kept in history like `said`.

    Download it with `file_get {id}`; check the bytes against `sha256`. `name` is display data only.
    """

    id: int = wire(check.uint)
    nick: str = wire(check.nick)
    name: str = wire(check.file_name)
    size: int = wire(check.uint)
    sha256: str = wire(check.sha256_hex)
    ts: int = wire(check.uint)
    room: str | None = wire(check.room, default=None)
    to: str | None = wire(check.nick, default=None)


@message("file_progress", SERVER)
class FileProgress(Message):
    """The server holds bytes 0 to `offset` of `upload` on disk: send from there (answers `file_offer`
    with its `ref`, then follows every `file_chunk`)."""

    upload: int = wire(check.uint)
    offset: int = wire(check.uint)
    ref: int | None = wire(check.uint, default=None)


@message("file_done", SERVER)
class FileDone(Message):
    """An upload was complete, its SHA-256 checked, and its offer stored as message `id` (the uploader's
    `ack`: everyone else gets `file_offered`). `duplicate`: this `client_msg_id` was stored before."""

    upload: int | None = wire(check.uint, default=None)
    id: int = wire(check.uint)
    ts: int = wire(check.uint)
    client_msg_id: str | None = wire(check.token, default=None)
    duplicate: bool = wire(check.boolean, default=False)
    ref: int | None = wire(check.uint, default=None)


@message("file_data", SERVER)
class FileData(Message):
    """The answer to `file_get`: `data` starts at `offset` of the file offered as message `id`, whose whole
    length is `size`. `data` is shorter than a chunk only at the end (empty when `offset` equals `size`)."""

    id: int = wire(check.uint)
    offset: int = wire(check.uint)
    size: int = wire(check.uint)
    data: bytes = wire(check.blob)
    ref: int | None = wire(check.uint, default=None)


@message("history", SERVER)
class History(Message):
    """Stored messages, oldest first: the backfill after a join, a resume, or the answer to `FetchHistory`.

    `peer`: with `direct`, the conversation the page belongs to, when the request named one.
    `more`: older messages exist before the first one given (page back with `FetchHistory(before=...)`).
    `skipped`: on a resume, how many messages after the client's `after` id were left out because the gap
    was larger than the server's bound; the messages given are the newest ones.
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
