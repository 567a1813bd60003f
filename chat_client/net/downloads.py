"""`download`: fetching a file: pull its chunks into a partial file, check its SHA-256, then name it.

Run by `FileTransfers` (chat_client.net.transfers) as a transfer's task: a plain function over it. One
download runs at a time (the server counts `file_get` requests per connection), with at most `files.window`
requests outstanding; chunks that arrive early wait in memory until the ones before them are written. The
partial file is named after the content's SHA-256 (``.mpchat-<sha256>.part`` in the downloads folder), so a
download continues from its length after a reconnect, and a `/get` of the same offer after a restart of the
client continues it too; it gets its final, sanitised name (`chat_client.net.savename`) only once its SHA-256
matched.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chat_client.net.errors import ChecksumMismatch, TransferError
from chat_client.net.filework import check_data, open_partial, place, sha256_of
from chat_client.net.progress import TransferState
from chat_client.net.savename import safe_name
from shared import Error as ErrorFrame
from shared import FileData, FileOffered, GetFile

if TYPE_CHECKING:  # transfers imports this module: the session and its classes are only annotations here
    from chat_client.net.connection import Session
    from chat_client.net.transfers import FileTransfers, Transfer


async def download(transfers: FileTransfers, transfer: Transfer) -> None:
    offer, folder, partial = transfer.offer, transfer.folder, transfer.partial
    assert offer is not None
    assert folder is not None
    assert partial is not None
    if any(
        other is not transfer and not other.finished and other.partial == partial
        for other in transfers.by_number.values()
    ):
        raise TransferError("busy", "this file is already being downloaded")
    try:
        await _fetch(transfers, transfer, offer, folder, partial)
    except TransferError:
        # A refusal (no_such_file...) or bad data: the partial file is of no further use.
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise


async def _fetch(
    transfers: FileTransfers, transfer: Transfer, offer: FileOffered, folder: Path, partial: Path
) -> None:
    async with transfers.download_turn:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        descriptor = await asyncio.to_thread(open_partial, partial, offer.size)
        try:
            await transfers.resuming(
                transfer, lambda session: _download_once(transfers, transfer, session, descriptor)
            )
        finally:
            os.close(descriptor)
    transfers.update(transfer, force=True, state=TransferState.HASHING, rate=None, eta=None)
    digest = await asyncio.to_thread(sha256_of, partial)
    if digest != offer.sha256:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise ChecksumMismatch(
            f"the downloaded bytes hash to {digest[:16]}…, the offer says {offer.sha256[:16]}…;"
            " the file was not kept"
        )
    name = safe_name(offer.name, f"file-{offer.id}")
    final = await asyncio.to_thread(place, partial, folder, name)
    transfers.update(transfer, path=final)


async def _download_once(
    transfers: FileTransfers, transfer: Transfer, session: Session, descriptor: int
) -> None:
    offer = transfer.offer
    assert offer is not None
    policy = session.welcome.files
    if policy is None:
        raise TransferError("files_unsupported", "this server takes no files")
    written = (await asyncio.to_thread(os.fstat, descriptor)).st_size
    transfers.update(transfer, force=True, state=TransferState.RUNNING, done=written, resumed_from=written)
    transfer.meter.add(time.monotonic(), written)
    requested = written
    outstanding: dict[int, int] = {}  # ref -> offset asked for
    arrived: dict[int, bytes] = {}  # offset -> data that came before an earlier chunk
    while written < offer.size:
        while requested < offer.size and len(outstanding) < policy.window:
            ref = transfers.next_ref()
            outstanding[ref] = requested
            transfers.by_ref[ref] = transfer
            transfers.send(session, GetFile(id=offer.id, offset=requested, ref=ref))
            requested += policy.chunk
        answer = await transfers.next_frame(transfer)
        if isinstance(answer, ErrorFrame):
            raise TransferError(answer.code, answer.message)
        if not isinstance(answer, FileData):
            continue
        assert answer.ref is not None
        transfers.by_ref.pop(answer.ref, None)
        asked = outstanding.pop(answer.ref, None)
        check_data(answer, asked, offer.size, policy.chunk)
        arrived[answer.offset] = answer.data
        while written in arrived:
            data = arrived.pop(written)
            await asyncio.to_thread(os.pwrite, descriptor, data, written)
            written += len(data)
        transfers.progress(transfer, written)
