"""`FileTransfers`: the file transfers of one client: start them, cancel them, list them, wait for them.

`FileTransfers` owns every `Transfer` (one upload or download: its snapshot, its inbox of file frames, its
task), the session they run on (`attach`, `detach`) and the rooms it has joined (an upload to a room is
offered only once the session's join is confirmed), the routing of file frames, the end of each transfer
(`_finish`: done, failed, cancelled) and its progress reports (`TransferUpdate` events, at most one per
progress interval). The two protocols are plain functions over it: `upload` (chat_client.net.uploads) and
`download` (chat_client.net.downloads), each run as the transfer's task.

Everything runs on the `ChatClient`'s event loop, one task per transfer. Disk work never runs on the loop:
hashing, reading and writing chunks go through `asyncio.to_thread`, so a slow disk never delays a chat
frame or a ping. The client's run task hands every file frame to `FileTransfers.route()`, which puts it in
the inbox of the transfer it concerns (found by the request's `ref`, or by the upload's number); the
transfer's task reads its inbox in order (`next_frame`). Nothing else touches a transfer. When a session
ends, each running transfer's inbox gets a "lost" marker (`SESSION_LOST`), and the transfer waits for the
next session and resumes.

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
import contextlib
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chat_client.net.downloads import download
from chat_client.net.errors import ConnectionLost, TransferCancelled, TransferError, UnknownFile
from chat_client.net.events import Event
from chat_client.net.filework import partial_path
from chat_client.net.progress import Direction, RateMeter, TransferInfo, TransferState, TransferUpdate
from chat_client.net.uploads import upload
from shared import CancelFile, FileDone, FileOffered, FileProgress, Message, fold

if TYPE_CHECKING:  # the connection drives this module: its session is only an annotation here
    from chat_client.net.connection import Session

__all__ = ["CLOSED", "FileTransfers", "Transfer"]

log = logging.getLogger(__name__)

#: The error code of a transfer stopped because the client closed (its partial file stays for a resume).
CLOSED = "closed"

#: File offers remembered by id (from live offers, history and our own uploads); the oldest go first.
MAX_KNOWN_OFFERS = 10_000


class SessionLost(Exception):
    """The session ended under a transfer: wait for the next one and resume."""


SESSION_LOST = object()  # put in an inbox when the session ends


class Transfer:
    """One upload or download: its progress, and the means to wait for it or cancel it."""

    def __init__(self, number: int, info: TransferInfo) -> None:
        self.number = number
        self.info = info
        self.inbox: asyncio.Queue[object] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.result: asyncio.Future[TransferInfo] = asyncio.get_running_loop().create_future()
        self.cancel_requested = False
        self.meter = RateMeter()
        self.last_report = 0.0
        # Upload: the file, its hash, the id that makes the offer idempotent, the server's upload number.
        self.source: Path | None = None
        self.sha256 = ""
        self.client_msg_id = ""
        self.upload: int | None = None
        self.offer_ref: int | None = None
        # Download: the offer and where it is saved.
        self.offer: FileOffered | None = None
        self.folder: Path | None = None
        self.partial: Path | None = None

    @property
    def finished(self) -> bool:
        """True once done, failed or cancelled."""
        return self.info.finished

    async def wait(self) -> TransferInfo:
        """Wait for the end; return the final snapshot or raise `TransferError` (`ChecksumMismatch`...)."""
        return await asyncio.shield(self.result)


class FileTransfers:
    """Every transfer of one client, and the file offers it knows (see the module docstring)."""

    def __init__(
        self,
        *,
        emit: Callable[[Event], None],
        stored: Callable[[FileOffered], None],
        next_ref: Callable[[], int],
        nick: Callable[[], str],
        downloads: Callable[[], Path],
        max_uploads: int,
        progress_interval: float,
        join_wait: float,
    ) -> None:
        self._emit = emit
        self.stored = stored
        self.next_ref = next_ref
        self.nick = nick
        self._downloads = downloads
        self._progress_interval = progress_interval
        self._numbers = itertools.count(1)
        self.by_number: dict[int, Transfer] = {}
        self._offers: OrderedDict[int, FileOffered] = OrderedDict()
        self._session: Session | None = None
        self._ready = asyncio.Event()
        self._session_over = asyncio.Event()
        self.by_ref: dict[int, Transfer] = {}
        self._by_upload: dict[int, Transfer] = {}
        self.upload_turns = asyncio.Semaphore(max_uploads)
        self.download_turn = asyncio.Lock()
        self._changed = asyncio.Event()  # set whenever any transfer's snapshot changes
        # Rooms this session has joined (fold keys): an upload to a room is (re)offered only once the
        # session's join of that room is confirmed, since the server checks membership at the offer.
        self._rooms: set[str] = set()
        self._rooms_changed = asyncio.Event()
        self._join_wait = join_wait
        self._closed = False

    # -- Offers ------------------------------------------------------------------------------------------

    def learn(self, offer: FileOffered) -> None:
        """Remember a file offer by its id."""
        self._offers[offer.id] = offer
        self._offers.move_to_end(offer.id)
        while len(self._offers) > MAX_KNOWN_OFFERS:
            self._offers.popitem(last=False)

    def offer(self, offer_id: int) -> FileOffered | None:
        """The known offer with this id."""
        return self._offers.get(offer_id)

    # -- Sessions ----------------------------------------------------------------------------------------

    def attach(self, session: Session) -> None:
        """A session is up: transfers waiting for one start (or resume)."""
        self._session = session
        self._session_over = asyncio.Event()
        self._ready.set()

    def joined(self, room: str) -> None:
        """This session is now in `room` (the server confirmed our join)."""
        self._rooms.add(fold(room))
        self._rooms_changed.set()

    def left(self, room: str) -> None:
        """This session left `room`."""
        self._rooms.discard(fold(room))

    def detach(self) -> None:
        """The session ended: running transfers pause until the next `attach`."""
        self._rooms.clear()
        self._session = None
        self._ready.clear()
        self._session_over.set()
        self._rooms_changed.set()  # wakes an upload waiting for a join: it sees the session is over
        self.by_ref.clear()
        self._by_upload.clear()
        for transfer in self.by_number.values():
            if not transfer.finished:
                transfer.inbox.put_nowait(SESSION_LOST)

    # -- Routing -----------------------------------------------------------------------------------------

    def route(self, message: Message) -> bool:
        """Hand a file frame (or an error answering one) to its transfer; False if it is not ours."""
        transfer: Transfer | None = None
        ref = getattr(message, "ref", None)
        if ref is not None:
            transfer = self.by_ref.get(ref)
        if transfer is None and isinstance(message, FileProgress | FileDone) and message.upload is not None:
            transfer = self._by_upload.get(message.upload)
        if transfer is None or transfer.finished:
            return False
        if isinstance(message, FileProgress) and message.ref == transfer.offer_ref:
            transfer.upload = message.upload
            self._by_upload[message.upload] = transfer
        transfer.inbox.put_nowait(message)
        return True

    # -- The life of a transfer --------------------------------------------------------------------------

    async def _finish(self, transfer: Transfer, body: Coroutine[Any, Any, None]) -> None:
        """Run a transfer's body and turn its end into the final state, event and result."""
        try:
            await body
        except asyncio.CancelledError:
            if not transfer.cancel_requested:
                raise  # the client is closing: `close()` sets the result
            self._on_cancel(transfer)
            self._end(transfer, TransferState.CANCELLED, TransferCancelled())
        except TransferError as error:
            self._end(transfer, TransferState.FAILED, error)
        except OSError as error:
            self._end(transfer, TransferState.FAILED, TransferError("io_error", error.strerror or str(error)))
        except Exception as bug:  # a bug here must end the transfer visibly, never leave it hanging
            log.exception("file transfer %d stopped on an unexpected error", transfer.number)
            self._end(transfer, TransferState.FAILED, TransferError("internal_error", repr(bug)))
        else:
            self._end(transfer, TransferState.DONE, None)

    def _end(self, transfer: Transfer, state: TransferState, error: TransferError | None) -> None:
        info = transfer.info
        transfer.info = replace(
            info,
            state=state,
            rate=None,
            eta=None,
            error_code=error.code if error is not None else None,
            error=error.message if error is not None else None,
        )
        self._changed.set()
        self._report(transfer, force=True)
        if not transfer.result.done():
            if error is None:
                transfer.result.set_result(transfer.info)
            else:
                transfer.result.set_exception(error)
                transfer.result.exception()  # mark retrieved: the event already told the UI

    def _on_cancel(self, transfer: Transfer) -> None:
        session, upload = self._session, transfer.upload
        if transfer.info.direction is Direction.UPLOAD and upload is not None and session is not None:
            with contextlib.suppress(ConnectionLost):
                session.send(CancelFile(upload=upload))
        if transfer.info.direction is Direction.DOWNLOAD and transfer.partial is not None:
            try:
                transfer.partial.unlink(missing_ok=True)
            except OSError as error:
                log.warning("could not remove the partial download %s: %s", transfer.partial, error)

    def update(self, transfer: Transfer, *, force: bool = False, **changes: Any) -> None:
        """Replace fields of `transfer`'s snapshot (`TransferInfo` checks them) and report the change."""
        transfer.info = replace(transfer.info, **changes)
        self._changed.set()
        self._report(transfer, force=force)

    def progress(self, transfer: Transfer, done: int) -> None:
        now = time.monotonic()
        transfer.meter.add(now, done)
        info = transfer.info
        self.update(transfer, done=done, rate=transfer.meter.rate(), eta=transfer.meter.eta(info.size, done))

    def _report(self, transfer: Transfer, *, force: bool) -> None:
        """Emit the snapshot: always on a change of state, else at most once per progress interval."""
        now = time.monotonic()
        if force or now - transfer.last_report >= self._progress_interval:
            transfer.last_report = now
            self._emit(TransferUpdate(transfer.info))

    # -- What a transfer's task uses to talk to the server -----------------------------------------------

    async def _session_for(self, transfer: Transfer) -> Session:
        """The current session, waiting (paused) for one if the client is offline."""
        while self._session is None:
            if transfer.info.state is not TransferState.QUEUED:
                self.update(transfer, force=True, state=TransferState.WAITING, rate=None, eta=None)
            await self._ready.wait()
        transfer.meter.reset()
        # Frames of an earlier session are stale: the new one starts from a clean inbox.
        while not transfer.inbox.empty():
            transfer.inbox.get_nowait()
        return self._session

    async def resuming(self, transfer: Transfer, attempt: Callable[[Session], Awaitable[None]]) -> None:
        """Run `attempt` on the current session and, each time that session is lost under it, on the next."""
        while True:
            session = await self._session_for(transfer)
            try:
                await attempt(session)
                return
            except SessionLost:
                continue

    async def next_frame(self, transfer: Transfer) -> Message:
        item = await transfer.inbox.get()
        if item is SESSION_LOST:
            raise SessionLost()
        assert isinstance(item, Message)
        return item

    def send(self, session: Session, message: Message) -> None:
        try:
            session.send(message)
        except ConnectionLost:
            raise SessionLost() from None

    async def drain(self, session: Session) -> None:
        """Wait until the chunk just written has left the write buffer, or the session ends."""
        over = self._session_over
        drained = asyncio.ensure_future(session.drain())
        ended = asyncio.ensure_future(over.wait())
        try:
            await asyncio.wait({drained, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not drained.done():
                drained.cancel()
        if over.is_set() or drained.cancelled() or drained.exception() is not None:
            raise SessionLost()

    async def in_room(self, room: str) -> None:
        """Wait (at most `join_wait` s) until this session's rejoin of `room` is confirmed.

        After a reconnect the client rejoins its rooms first; an offer sent before the server has carried
        out the join would be refused with `not_in_room`. If the wait runs out, the offer goes anyway
        and the server's answer decides.
        """
        key = fold(room)
        over = self._session_over
        try:
            async with asyncio.timeout(self._join_wait):
                while key not in self._rooms:
                    self._rooms_changed.clear()
                    await self._rooms_changed.wait()
                    if over.is_set():
                        raise SessionLost()
        except TimeoutError:
            log.info("no confirmation of the join of %s; offering the file anyway", room)

    # -- Snapshots ---------------------------------------------------------------------------------------

    def infos(self) -> tuple[TransferInfo, ...]:
        """Every transfer of this run, oldest first."""
        return tuple(t.info for t in self.by_number.values())

    def get(self, number: int) -> Transfer | None:
        """The transfer with this number."""
        return self.by_number.get(number)

    async def wait_all(self, idle_timeout: float) -> bool:
        """Wait until no transfer is running; False if none changed for `idle_timeout` seconds first."""
        while any(not t.finished for t in self.by_number.values()):
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
        return self._start(transfer, upload(self, transfer))

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
            peer=offer.to if offer.to is not None and offer.nick == self.nick() else offer.nick,
            offer_id=offer.id,
        )
        transfer = Transfer(number, info)
        transfer.offer = offer
        transfer.folder = folder or self._downloads()
        transfer.partial = partial_path(transfer.folder, offer.sha256)
        return self._start(transfer, download(self, transfer))

    def _start(self, transfer: Transfer, body: Coroutine[Any, Any, None]) -> Transfer:
        self.by_number[transfer.number] = transfer
        self._report(transfer, force=True)
        transfer.task = asyncio.create_task(
            self._finish(transfer, body), name=f"mpchat transfer {transfer.number}"
        )
        return transfer

    def cancel(self, number: int) -> bool:
        """Cancel a transfer; False if there is none with this number or it has ended."""
        transfer = self.by_number.get(number)
        if transfer is None or transfer.finished or transfer.task is None:
            return False
        transfer.cancel_requested = True
        transfer.task.cancel()
        return True

    def close(self) -> None:
        """Stop every transfer (the client is closing); partial downloads stay for a later `/get`."""
        self._closed = True
        for transfer in self.by_number.values():
            if transfer.task is not None and not transfer.task.done():
                transfer.task.cancel()
            if not transfer.finished:
                again = "send" if transfer.info.direction is Direction.UPLOAD else "get"
                stopped = TransferError(CLOSED, f"the client closed; {again} the file again to resume")
                self._end(transfer, TransferState.FAILED, stopped)
