"""The frames of file transfer (docs/protocol.md section 12): offer and upload a file, then download it.

An upload is `OfferFile`, then `FileChunk`s, each confirmed by `FileProgress`, and `FileDone` once stored;
everyone else sees `FileOffered`, a stored message. A download is `GetFile` requests answered by `FileData`.
`FilePolicy`, in the welcome, says what the server takes.
"""

from __future__ import annotations

from shared import schema as check
from shared.errors import ErrorCode
from shared.limits import DEFAULT_FILE_CHUNK, DEFAULT_FILE_WINDOW
from shared.schema import Message, Sender, message, record, wire

CLIENT = Sender.CLIENT
SERVER = Sender.SERVER


# -- Requests: client to server ----------------------------------------------------------------------------


@message(
    "file_offer",
    CLIENT,
    answers=("file_progress", "file_done"),
    errors=(
        ErrorCode.FORBIDDEN,
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.NO_SUCH_NICK,
        ErrorCode.CLIENT_MSG_ID_REUSED,
        ErrorCode.FILE_TOO_LARGE,
        ErrorCode.QUOTA_EXCEEDED,
        ErrorCode.TOO_MANY_TRANSFERS,
        ErrorCode.CHECKSUM_MISMATCH,
        ErrorCode.MUTED,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.EXCESS_FLOOD,
    ),
)
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


@message(
    "file_chunk",
    CLIENT,
    answers=("file_progress", "file_done"),
    errors=(
        ErrorCode.FORBIDDEN,
        ErrorCode.NO_SUCH_FILE,
        ErrorCode.BAD_OFFSET,
        ErrorCode.CHECKSUM_MISMATCH,
        ErrorCode.QUOTA_EXCEEDED,
        ErrorCode.TOO_MANY_TRANSFERS,
        ErrorCode.CLIENT_MSG_ID_REUSED,
        ErrorCode.NOT_IN_ROOM,
        ErrorCode.MUTED,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.EXCESS_FLOOD,
    ),
)
class FileChunk(Message):
    """Bytes `offset` to `offset + len(data)` of an upload. Errors about it echo `ref` (use the offer's)."""

    upload: int = wire(check.uint)
    offset: int = wire(check.uint)
    data: bytes = wire(check.blob)
    ref: int | None = wire(check.uint, default=None)


@message(
    "file_get",
    CLIENT,
    answers=("file_data",),
    errors=(
        ErrorCode.FORBIDDEN,
        ErrorCode.NO_SUCH_FILE,
        ErrorCode.BAD_OFFSET,
        ErrorCode.TOO_MANY_TRANSFERS,
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.EXCESS_FLOOD,
    ),
)
class GetFile(Message):
    """Ask for one chunk of the file offered as message `id`, from `offset` (answered by `file_data`)."""

    id: int = wire(check.uint)
    offset: int = wire(check.uint, default=0)
    ref: int | None = wire(check.uint, default=None)


@message(
    "file_cancel",
    CLIENT,
    answers=("ok",),
    errors=(
        ErrorCode.FORBIDDEN,
        ErrorCode.NO_SUCH_FILE,
        ErrorCode.EXCESS_FLOOD,
    ),
)
class CancelFile(Message):
    """Abandon an upload: the server deletes what it received. Answered by `ok` (or an `error`)."""

    upload: int = wire(check.uint)
    ref: int | None = wire(check.uint, default=None)


# -- Records used inside notifications ---------------------------------------------------------------------


@record
class FilePolicy(Message):
    """What a server accepts for file transfer, announced in `Welcome.files`."""

    chunk: int = wire(check.uint, default=DEFAULT_FILE_CHUNK)
    window: int = wire(check.uint, default=DEFAULT_FILE_WINDOW)
    max_size: int = wire(check.uint)


# -- Notifications: server to client -----------------------------------------------------------------------


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
