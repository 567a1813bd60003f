"""File transfer over the raw protocol, for the server tests: upload with a window, download with a window.

Built on `ChatTestClient` (a real socket, the shared `ProtocolConnection`); every wait has a deadline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared import (
    Error,
    FileChunk,
    FileData,
    FileDone,
    FileProgress,
    GetFile,
    Message,
    OfferFile,
)
from shared.limits import DEFAULT_FILE_CHUNK, DEFAULT_FILE_WINDOW

from .client import ChatTestClient

#: Seconds to wait for any one answer during a transfer (a loaded machine writes 50 MB slowly).
STEP_TIMEOUT = 30.0


def sha256(data: bytes) -> str:
    """Lowercase hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Uploaded:
    """How an upload ended: `done` (stored) or `error` (refused), and the offset it started from."""

    started_at: int | None
    done: FileDone | None
    error: Error | None


def offer(
    client: ChatTestClient,
    data: bytes,
    *,
    name: str = "notes.txt",
    room: str | None = "lobby",
    to: str | None = None,
    client_msg_id: str | None = None,
    ref: int = 1,
    size: int | None = None,
    digest: str | None = None,
) -> Message:
    """Send a `file_offer` and return its answer: `FileProgress`, `FileDone` (duplicate) or `Error`."""
    client.send(
        OfferFile(
            name=name,
            size=len(data) if size is None else size,
            sha256=sha256(data) if digest is None else digest,
            room=None if to is not None else room,
            to=to,
            client_msg_id=client_msg_id,
            ref=ref,
        )
    )
    return client.recv_until(
        lambda m: (
            (isinstance(m, FileProgress | Error) and m.ref == ref)
            or (isinstance(m, FileDone) and m.duplicate)
        ),
        STEP_TIMEOUT,
    )


def send_chunks(
    client: ChatTestClient,
    upload: int,
    data: bytes,
    start: int,
    *,
    ref: int = 1,
    chunk: int = DEFAULT_FILE_CHUNK,
    window: int | None = None,
    stop_after: int | None = None,
    end: int | None = None,
) -> int:
    """Send `data[start:end]` keeping `window` chunks unconfirmed (default: the window the server announced);
    return the last confirmed offset.

    With `stop_after`, stop sending once that many bytes are confirmed (to interrupt an upload).
    """
    if window is None:
        policy = client.last_welcome.files if client.last_welcome is not None else None
        window = policy.window if policy is not None else DEFAULT_FILE_WINDOW
    sent = confirmed = start
    end = len(data) if end is None else min(end, len(data))
    while confirmed < end:
        while sent < end and sent - confirmed < window * chunk:
            if stop_after is not None and sent >= stop_after:
                break
            piece = data[sent : sent + chunk]
            client.send(FileChunk(upload=upload, offset=sent, data=piece, ref=ref))
            sent += len(piece)
        if stop_after is not None and confirmed >= stop_after:
            return confirmed
        answer = client.recv_until(
            lambda m: (
                (isinstance(m, FileProgress) and m.upload == upload and m.ref == ref)
                or (isinstance(m, Error) and m.ref == ref)
            ),
            STEP_TIMEOUT,
        )
        if isinstance(answer, Error):
            raise AssertionError(f"upload refused: {answer}")
        assert isinstance(answer, FileProgress)
        confirmed = answer.offset
    return confirmed


def upload(client: ChatTestClient, data: bytes, **kwargs: object) -> Uploaded:
    """Offer and upload `data` completely; return how it ended."""
    ref = int(kwargs.get("ref", 1))  # type: ignore[call-overload]
    answer = offer(client, data, **kwargs)  # type: ignore[arg-type]
    if isinstance(answer, Error):
        return Uploaded(None, None, answer)
    if isinstance(answer, FileDone):
        return Uploaded(None, answer, None)
    assert isinstance(answer, FileProgress)
    if answer.offset < len(data):
        send_chunks(client, answer.upload, data, answer.offset, ref=ref)
    result = client.recv_until(
        lambda m: (
            (isinstance(m, FileDone) and m.upload == answer.upload) or (isinstance(m, Error) and m.ref == ref)
        ),
        STEP_TIMEOUT,
    )
    if isinstance(result, Error):
        return Uploaded(answer.offset, None, result)
    assert isinstance(result, FileDone)
    return Uploaded(answer.offset, result, None)


def download(
    client: ChatTestClient,
    message_id: int,
    *,
    start: bytes = b"",
    window: int = DEFAULT_FILE_WINDOW,
    stop_after: int | None = None,
) -> bytes:
    """Fetch the file offered as `message_id` (after `start`, the bytes already held); raise on an error.

    With `stop_after`, return once at least that many bytes are held (to interrupt a download).
    """
    held = bytearray(start)
    asked = len(held)
    size: int | None = None
    outstanding: dict[int, int] = {}  # ref -> offset
    next_ref = 1_000_000
    while True:
        while len(outstanding) < window and (
            (size is None and not outstanding) or (size is not None and asked < size)
        ):
            next_ref += 1
            client.send(GetFile(id=message_id, offset=asked, ref=next_ref))
            outstanding[next_ref] = asked
            asked += DEFAULT_FILE_CHUNK
        answer = client.recv_until(
            lambda m: isinstance(m, FileData | Error) and m.ref in outstanding, STEP_TIMEOUT
        )
        if isinstance(answer, Error):
            raise AssertionError(f"download refused: {answer.code} {answer.message}")
        assert isinstance(answer, FileData)
        offset = outstanding.pop(answer.ref or 0)
        assert answer.offset == offset == len(held), (answer.offset, offset, len(held))
        size = answer.size
        held += answer.data
        if len(held) >= size or (stop_after is not None and len(held) >= stop_after):
            # Collect what is still in flight so later reads start clean.
            while outstanding:
                late = client.recv_until(
                    lambda m: isinstance(m, FileData | Error) and m.ref in outstanding, STEP_TIMEOUT
                )
                outstanding.pop(late.ref or 0)  # type: ignore[attr-defined]
            return bytes(held)
