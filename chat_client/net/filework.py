"""The disk and wire checks of file transfers: hashing, partial downloads, final names, chunk checks.

Every function here blocks on the disk (or is pure): `chat_client.net.transfers` and `ChatClient.send_file`
call the blocking ones through `asyncio.to_thread`, never on the event loop.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from chat_client.net.errors import InvalidRequest, TransferError
from chat_client.net.savename import create_unique
from shared import FileData, LocalProtocolError, OfferFile, check_outgoing
from shared.limits import Limits

#: Bytes hashed per read.
HASH_BLOCK = 1024 * 1024
#: Prefix and suffix of a partial download in the downloads folder.
PARTIAL_PREFIX = ".mpchat-"
PARTIAL_SUFFIX = ".part"


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in blocks (blocking: call it through `asyncio.to_thread`)."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def upload_size(source: Path) -> int:
    """The size of the file to upload (blocking); `TransferError` (``unreadable``) if it is not a file."""
    try:
        status = source.stat()
    except OSError as error:
        raise TransferError("unreadable", f"{source}: {error.strerror}") from None
    if not source.is_file():
        raise TransferError("unreadable", f"{source} is not a file")
    return status.st_size


def partial_path(folder: Path, sha256: str) -> Path:
    """Where a download of the content with this SHA-256 is kept until it is complete and checked."""
    return folder / f"{PARTIAL_PREFIX}{sha256}{PARTIAL_SUFFIX}"


def place(partial: Path, folder: Path, name: str) -> Path:
    """Give a checked download its final, safe, non-clobbering name (blocking)."""
    final = create_unique(folder, name)
    # We own `final` (created with O_EXCL just now), so replacing it cannot clobber anyone's file.
    os.replace(partial, final)
    return final


def open_partial(partial: Path, size: int) -> int:
    """Open (or create) the partial file; one longer than the offer is corrupt and starts again."""
    descriptor = os.open(partial, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    if os.fstat(descriptor).st_size > size:
        os.ftruncate(descriptor, 0)
    return descriptor


def check_data(answer: FileData, asked: int | None, size: int, chunk: int) -> None:
    """A `file_data` must answer a request of ours, at its offset, for this file, with a full chunk."""
    expected = min(chunk, size - answer.offset) if answer.offset <= size else -1
    if asked != answer.offset or answer.size != size or len(answer.data) != expected or expected <= 0:
        raise TransferError(
            "bad_data",
            f"the server sent {len(answer.data)} bytes at offset {answer.offset} of a {answer.size}-byte"
            f" file; expected {expected} bytes at {asked} of {size}",
        )


def check_offer(name: str, size: int, *, room: str | None, to: str | None, limits: Limits) -> None:
    """Check an offer's fields before hashing anything (raises `InvalidRequest`)."""
    probe = OfferFile(name=name, size=size, sha256="0" * 64, room=room, to=to, client_msg_id="x")
    try:
        check_outgoing(probe, limits)
    except LocalProtocolError as error:
        raise InvalidRequest(error.code, error.message) from None
