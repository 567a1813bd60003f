"""`upload`: sending a file: offer it, then send its chunks, resuming where the server's copy stops.

Run by `FileTransfers` (chat_client.net.transfers) as a transfer's task: a plain function over it. An upload
hashes its file (in a thread), waits for its turn (at most `max_uploads` at once), offers the file
(`OfferFile`, with the same `client_msg_id` on every attempt, so the server stores it once) and sends chunks
from the offset the server answers. Flow control, as docs/protocol.md section 12 asks: the next chunk is read
from disk only after the previous one was written to the connection (`Session.drain()`, with a small write
buffer: a chat frame written meanwhile waits behind about one chunk), and at most `files.window` chunks are
unconfirmed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import TYPE_CHECKING

from chat_client.net.errors import TransferError
from chat_client.net.filework import sha256_of
from chat_client.net.progress import TransferState
from shared import Error as ErrorFrame
from shared import FileChunk, FileDone, FileOffered, FileProgress, OfferFile

if TYPE_CHECKING:  # transfers imports this module: the session and its classes are only annotations here
    from chat_client.net.connection import Session
    from chat_client.net.transfers import FileTransfers, Transfer


async def upload(transfers: FileTransfers, transfer: Transfer) -> None:
    assert transfer.source is not None
    transfers.update(transfer, force=True, state=TransferState.HASHING)
    try:
        transfer.sha256 = await asyncio.to_thread(sha256_of, transfer.source)
    except OSError as error:
        raise TransferError("unreadable", f"cannot read {transfer.source}: {error.strerror}") from None
    async with transfers.upload_turns:
        transfers.update(transfer, force=True, state=TransferState.QUEUED)
        descriptor = await asyncio.to_thread(os.open, transfer.source, os.O_RDONLY)
        try:
            await transfers.resuming(
                transfer, lambda session: _upload_once(transfers, transfer, session, descriptor)
            )
        finally:
            os.close(descriptor)


async def _upload_once(
    transfers: FileTransfers, transfer: Transfer, session: Session, descriptor: int
) -> None:
    info = transfer.info
    policy = session.welcome.files
    if policy is None:
        raise TransferError("files_unsupported", "this server takes no files")
    if info.size > policy.max_size:
        raise TransferError("file_too_large", f"the server takes files up to {policy.max_size} bytes")
    if info.room is not None:
        await transfers.in_room(info.room)
    ref = transfers.next_ref()
    transfer.offer_ref = ref
    transfers.by_ref[ref] = transfer
    offer = OfferFile(
        name=info.name,
        size=info.size,
        sha256=transfer.sha256,
        room=info.room,
        to=info.peer,
        client_msg_id=transfer.client_msg_id,
        ref=ref,
    )
    transfers.send(session, offer)
    answer = await transfers.next_frame(transfer)
    if isinstance(answer, FileDone):  # a 0-byte file, or this offer was stored before
        _stored_offer(transfers, transfer, answer)
        return
    if isinstance(answer, ErrorFrame):
        raise TransferError(answer.code, answer.message)
    assert isinstance(answer, FileProgress)
    confirmed = answer.offset
    upload_id = answer.upload
    transfers.update(
        transfer, force=True, state=TransferState.RUNNING, done=confirmed, resumed_from=confirmed
    )
    transfer.meter.add(time.monotonic(), confirmed)
    sent = confirmed
    in_flight: deque[int] = deque()  # end offsets of the chunks not yet confirmed
    while True:
        while sent < info.size and len(in_flight) < policy.window:
            length = min(policy.chunk, info.size - sent)
            data = await asyncio.to_thread(os.pread, descriptor, length, sent)
            if len(data) != length:
                raise TransferError("unreadable", "the file got shorter while it was being sent")
            transfers.send(session, FileChunk(upload=upload_id, offset=sent, data=data, ref=ref))
            sent += length
            in_flight.append(sent)
            # The next chunk is read only once this one has left the buffer: chat frames written
            # meanwhile wait behind about one chunk, and a slow link never fills our memory.
            await transfers.drain(session)
        answer = await transfers.next_frame(transfer)
        if isinstance(answer, FileProgress):
            confirmed = answer.offset
            while in_flight and in_flight[0] <= confirmed:
                in_flight.popleft()
            transfers.progress(transfer, confirmed)
        elif isinstance(answer, FileDone):
            _stored_offer(transfers, transfer, answer)
            return
        elif isinstance(answer, ErrorFrame):
            raise TransferError(answer.code, answer.message)


def _stored_offer(transfers: FileTransfers, transfer: Transfer, done: FileDone) -> None:
    info = transfer.info
    offer = FileOffered(
        id=done.id,
        nick=transfers.nick(),
        name=info.name,
        size=info.size,
        sha256=transfer.sha256,
        ts=done.ts,
        room=info.room,
        to=info.peer,
    )
    transfers.learn(offer)
    transfers.update(transfer, done=info.size, offer_id=done.id)
    transfers.stored(offer)
