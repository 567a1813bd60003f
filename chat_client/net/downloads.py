"""`Downloads`: fetching a file: pull its chunks into a partial file, check its SHA-256, then name it.

A layer of `Transfers` (chat_client.net.transfers), on top of `TransferCore`. One download runs at a time (the
server counts `file_get` requests per connection), with at most `files.window` requests outstanding; chunks
that arrive early wait in memory until the ones before them are written. The partial file is named after the
content's SHA-256 (``.mpchat-<sha256>.part`` in the downloads folder), so a download continues from its
length after a reconnect, and a `/get` of the same offer after a restart of the client continues it too; it
gets its final, sanitised name (`chat_client.net.savename`) only once its SHA-256 matched.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from chat_client.net.errors import ChecksumMismatch, TransferError
from chat_client.net.filework import check_data, open_partial, place, sha256_of
from chat_client.net.progress import TransferState
from chat_client.net.savename import safe_name
from chat_client.net.session import Session
from chat_client.net.transfer_core import Transfer, TransferCore
from shared import Error as ErrorFrame
from shared import FileData, FileOffered, GetFile


class Downloads(TransferCore):
    """The download protocol; see the module docstring."""

    async def _download(self, transfer: Transfer) -> None:
        offer, folder, partial = transfer.offer, transfer.folder, transfer.partial
        assert offer is not None
        assert folder is not None
        assert partial is not None
        if any(
            other is not transfer and not other.finished and other.partial == partial
            for other in self._all.values()
        ):
            raise TransferError("busy", "this file is already being downloaded")
        try:
            await self._fetch(transfer, offer, folder, partial)
        except TransferError:
            # A refusal (no_such_file...) or bad data: the partial file is of no further use.
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise

    async def _fetch(self, transfer: Transfer, offer: FileOffered, folder: Path, partial: Path) -> None:
        async with self._download_turn:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            descriptor = await asyncio.to_thread(open_partial, partial, offer.size)
            try:
                await self._resuming(
                    transfer, lambda session: self._download_once(transfer, session, descriptor)
                )
            finally:
                os.close(descriptor)
        self._set(transfer, force=True, state=TransferState.HASHING, rate=None, eta=None)
        digest = await asyncio.to_thread(sha256_of, partial)
        if digest != offer.sha256:
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise ChecksumMismatch(
                f"the downloaded bytes hash to {digest[:16]}…, the offer says {offer.sha256[:16]}…;"
                " the file was not kept"
            )
        name = safe_name(offer.name, f"file-{offer.id}")
        final = await asyncio.to_thread(place, partial, folder, name)
        self._set(transfer, path=final)

    async def _download_once(self, transfer: Transfer, session: Session, descriptor: int) -> None:
        offer = transfer.offer
        assert offer is not None
        policy = session.welcome.files
        if policy is None:
            raise TransferError("files_unsupported", "this server takes no files")
        written = (await asyncio.to_thread(os.fstat, descriptor)).st_size
        self._set(transfer, force=True, state=TransferState.RUNNING, done=written, resumed_from=written)
        transfer.meter.add(time.monotonic(), written)
        requested = written
        outstanding: dict[int, int] = {}  # ref -> offset asked for
        arrived: dict[int, bytes] = {}  # offset -> data that came before an earlier chunk
        while written < offer.size:
            while requested < offer.size and len(outstanding) < policy.window:
                ref = self._next_ref()
                outstanding[ref] = requested
                self._by_ref[ref] = transfer
                self._send(session, GetFile(id=offer.id, offset=requested, ref=ref))
                requested += policy.chunk
            answer = await self._next(transfer)
            if isinstance(answer, ErrorFrame):
                raise TransferError(answer.code, answer.message)
            if not isinstance(answer, FileData):
                continue
            assert answer.ref is not None
            self._by_ref.pop(answer.ref, None)
            asked = outstanding.pop(answer.ref, None)
            check_data(answer, asked, offer.size, policy.chunk)
            arrived[answer.offset] = answer.data
            while written in arrived:
                data = arrived.pop(written)
                await asyncio.to_thread(os.pwrite, descriptor, data, written)
                written += len(data)
            self._progress(transfer, written)
