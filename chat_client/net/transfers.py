"""`Transfers`: the file transfers of one client: start them, cancel them, list them, wait for them.

Built in layers, each owning one thing: `TransferCore` (chat_client.net.transfer_core) the state of each
transfer, the session, the routing of file frames and the end of a transfer; `Uploads`
(chat_client.net.uploads) and `Downloads` (chat_client.net.downloads) the two protocols; this class what the
client asks of them.

Everything runs on the `ChatClient`'s event loop, one task per transfer. Disk work never runs on the loop:
hashing, reading and writing chunks go through `asyncio.to_thread`, so a slow disk never delays a chat
frame or a ping. The client's run task hands every file frame to `Transfers.route()`, which puts it in
the inbox of the transfer it concerns (found by the request's `ref`, or by the upload's number); the
transfer's task reads its inbox in order. Nothing else touches a transfer.

Flow control, as docs/protocol.md section 12 asks:

* an upload reads the next chunk from disk only after the previous one was written to the connection
  (`Session.drain()`, with a small write buffer: a chat frame written meanwhile waits behind about one chunk),
  and keeps at most `files.window` chunks unconfirmed;
* one download runs at a time (the server counts `file_get` requests per connection), with at most
  `files.window` requests outstanding; the others wait their turn.

Resume: when a session ends (`detach`), each running transfer's inbox gets a "lost" marker and the
transfer waits for the next session (`attach`). An upload then offers the file again with the same
`client_msg_id` and the server answers with the offset it holds; a download asks from the length of its
partial file. The partial file is named after the content's SHA-256 (``.mpchat-<sha256>.part`` in the
downloads folder), so a `/get` of the same offer after a restart of the client continues it too; it gets
its final, sanitised name (`chat_client.net.savename`) only once its SHA-256 matched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from chat_client.net.downloads import Downloads
from chat_client.net.errors import TransferError, UnknownFile
from chat_client.net.filework import partial_path
from chat_client.net.progress import Direction, TransferInfo, TransferState
from chat_client.net.transfer_core import Transfer
from chat_client.net.uploads import Uploads

__all__ = ["CLOSED", "Transfer", "Transfers"]

#: The error code of a transfer stopped because the client closed (its partial file stays for a resume).
CLOSED = "closed"


class Transfers(Uploads, Downloads):
    """Every transfer of one client, and the file offers it knows (see the module docstring)."""

    # -- Snapshots ---------------------------------------------------------------------------------------

    def infos(self) -> tuple[TransferInfo, ...]:
        """Every transfer of this run, oldest first."""
        return tuple(t.info for t in self._all.values())

    def get(self, number: int) -> Transfer | None:
        """The transfer with this number."""
        return self._all.get(number)

    async def wait_all(self, idle_timeout: float) -> bool:
        """Wait until no transfer is running; False if none changed for `idle_timeout` seconds first."""
        while any(not t.finished for t in self._all.values()):
            self._changed.clear()
            try:
                async with asyncio.timeout(idle_timeout):
                    await self._changed.wait()
            except TimeoutError:
                return False
        return True

    # -- Starting and stopping ---------------------------------------------------------------------------

    def start_upload(self, path: Path, size: int, name: str, *, room: str | None, to: str | None) -> Transfer:
        """Offer and upload `path` (checked by the caller) to `room` or to nick `to`."""
        number = next(self._numbers)
        info = TransferInfo(number, Direction.UPLOAD, name, size, 0, TransferState.QUEUED, room=room, peer=to)
        transfer = Transfer(number, info)
        transfer.source = path
        transfer.client_msg_id = f"f-{uuid.uuid4().hex}"
        return self._start(transfer, self._upload(transfer))

    def start_download(self, offer_id: int, folder: Path | None = None) -> Transfer:
        """Download the file offered as message `offer_id` into `folder` (the downloads folder by default)."""
        offer = self._offers.get(offer_id)
        if offer is None:
            raise UnknownFile(f"no file offer #{offer_id} is known here (it must be in a loaded buffer)")
        number = next(self._numbers)
        info = TransferInfo(
            number,
            Direction.DOWNLOAD,
            offer.name,
            offer.size,
            0,
            TransferState.QUEUED,
            room=offer.room,
            peer=offer.to if offer.to is not None and offer.nick == self._nick() else offer.nick,
            offer_id=offer.id,
        )
        transfer = Transfer(number, info)
        transfer.offer = offer
        transfer.folder = folder or self._downloads()
        transfer.partial = partial_path(transfer.folder, offer.sha256)
        return self._start(transfer, self._download(transfer))

    def _start(self, transfer: Transfer, body: Coroutine[Any, Any, None]) -> Transfer:
        self._all[transfer.number] = transfer
        self._report(transfer, force=True)
        transfer.task = asyncio.create_task(
            self._finish(transfer, body), name=f"mpchat transfer {transfer.number}"
        )
        return transfer

    def cancel(self, number: int) -> bool:
        """Cancel a transfer; False if there is none with this number or it has ended."""
        transfer = self._all.get(number)
        if transfer is None or transfer.finished or transfer.task is None:
            return False
        transfer.cancel_requested = True
        transfer.task.cancel()
        return True

    def close(self) -> None:
        """Stop every transfer (the client is closing); partial downloads stay for a later `/get`."""
        self._closed = True
        for transfer in self._all.values():
            if transfer.task is not None and not transfer.task.done():
                transfer.task.cancel()
            if not transfer.finished:
                again = "send" if transfer.info.direction is Direction.UPLOAD else "get"
                stopped = TransferError(CLOSED, f"the client closed; {again} the file again to resume")
                self._end(transfer, TransferState.FAILED, stopped)
