"""File transfers on the chat connection: uploads (offer, then chunks) and downloads (pulled chunks).

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
its final, sanitised name (`chat_client.savename`) only once its SHA-256 matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared import (
    CancelFile,
    FileChunk,
    FileData,
    FileDone,
    FileOffered,
    FileProgress,
    GetFile,
    Message,
    OfferFile,
    fold,
)
from shared import Error as ErrorFrame

from .errors import (
    ChecksumMismatch,
    ConnectionLost,
    TransferCancelled,
    TransferError,
    UnknownFile,
)
from .filework import check_data, open_partial, partial_path, place, sha256_of
from .progress import Direction, RateMeter, TransferInfo, TransferState, TransferUpdate
from .savename import safe_name
from .session import Session

log = logging.getLogger(__name__)

#: The error code of a transfer stopped because the client closed (its partial file stays for a resume).
CLOSED = "closed"
#: File offers remembered by id (from live offers, history and our own uploads); the oldest go first.
MAX_KNOWN_OFFERS = 10_000


class _Lost(Exception):
    """The session ended under a transfer: wait for the next one and resume."""


_LOST = object()  # put in an inbox when the session ends


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


class Transfers:
    """Every transfer of one client, and the file offers it knows (see the module docstring)."""

    def __init__(
        self,
        *,
        emit: Callable[[object], None],
        stored: Callable[[FileOffered], None],
        next_ref: Callable[[], int],
        nick: Callable[[], str],
        downloads: Callable[[], Path],
        max_uploads: int,
        progress_interval: float,
        join_wait: float,
    ) -> None:
        self._emit = emit
        self._stored = stored
        self._next_ref = next_ref
        self._nick = nick
        self._downloads = downloads
        self._progress_interval = progress_interval
        self._numbers = itertools.count(1)
        self._all: dict[int, Transfer] = {}
        self._offers: OrderedDict[int, FileOffered] = OrderedDict()
        self._session: Session | None = None
        self._ready = asyncio.Event()
        self._session_over = asyncio.Event()
        self._by_ref: dict[int, Transfer] = {}
        self._by_upload: dict[int, Transfer] = {}
        self._upload_turns = asyncio.Semaphore(max_uploads)
        self._download_turn = asyncio.Lock()
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
        self._by_ref.clear()
        self._by_upload.clear()
        for transfer in self._all.values():
            if not transfer.finished:
                transfer.inbox.put_nowait(_LOST)

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

    # -- Routing -----------------------------------------------------------------------------------------

    def route(self, message: Message) -> bool:
        """Hand a file frame (or an error answering one) to its transfer; False if it is not ours."""
        transfer: Transfer | None = None
        ref = getattr(message, "ref", None)
        if ref is not None:
            transfer = self._by_ref.get(ref)
        if transfer is None and isinstance(message, FileProgress | FileDone) and message.upload is not None:
            transfer = self._by_upload.get(message.upload)
        if transfer is None or transfer.finished:
            return False
        if isinstance(message, FileProgress) and message.ref == transfer.offer_ref:
            transfer.upload = message.upload
            self._by_upload[message.upload] = transfer
        transfer.inbox.put_nowait(message)
        return True

    # -- Starting ----------------------------------------------------------------------------------------

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

    def _set(self, transfer: Transfer, *, force: bool = False, **changes: object) -> None:
        transfer.info = replace(transfer.info, **changes)  # type: ignore[arg-type]
        self._changed.set()
        self._report(transfer, force=force)

    def _progress(self, transfer: Transfer, done: int) -> None:
        now = time.monotonic()
        transfer.meter.add(now, done)
        info = transfer.info
        self._set(transfer, done=done, rate=transfer.meter.rate(), eta=transfer.meter.eta(info.size, done))

    def _report(self, transfer: Transfer, *, force: bool) -> None:
        """Emit the snapshot: always on a change of state, else at most once per progress interval."""
        now = time.monotonic()
        if force or now - transfer.last_report >= self._progress_interval:
            transfer.last_report = now
            self._emit(TransferUpdate(transfer.info))

    async def _session_for(self, transfer: Transfer) -> Session:
        """The current session, waiting (paused) for one if the client is offline."""
        while self._session is None:
            if transfer.info.state is not TransferState.QUEUED:
                self._set(transfer, force=True, state=TransferState.WAITING, rate=None, eta=None)
            await self._ready.wait()
        transfer.meter.reset()
        # Frames of an earlier session are stale: the new one starts from a clean inbox.
        while not transfer.inbox.empty():
            transfer.inbox.get_nowait()
        return self._session

    async def _next(self, transfer: Transfer) -> Message:
        item = await transfer.inbox.get()
        if item is _LOST:
            raise _Lost()
        assert isinstance(item, Message)
        return item

    def _send(self, session: Session, message: Message) -> None:
        try:
            session.send(message)
        except ConnectionLost:
            raise _Lost() from None

    async def _drain(self, session: Session) -> None:
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
            raise _Lost()

    async def _in_room(self, room: str) -> None:
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
                        raise _Lost()
        except TimeoutError:
            log.info("no confirmation of the join of %s; offering the file anyway", room)

    # -- Uploads -----------------------------------------------------------------------------------------

    async def _upload(self, transfer: Transfer) -> None:
        assert transfer.source is not None
        self._set(transfer, force=True, state=TransferState.HASHING)
        try:
            transfer.sha256 = await asyncio.to_thread(sha256_of, transfer.source)
        except OSError as error:
            raise TransferError("unreadable", f"cannot read {transfer.source}: {error.strerror}") from None
        async with self._upload_turns:
            self._set(transfer, force=True, state=TransferState.QUEUED)
            descriptor = await asyncio.to_thread(os.open, transfer.source, os.O_RDONLY)
            try:
                while True:
                    session = await self._session_for(transfer)
                    try:
                        await self._upload_once(transfer, session, descriptor)
                        return
                    except _Lost:
                        continue
            finally:
                os.close(descriptor)

    async def _upload_once(self, transfer: Transfer, session: Session, descriptor: int) -> None:
        info = transfer.info
        policy = session.welcome.files
        if policy is None:
            raise TransferError("files_unsupported", "this server takes no files")
        if info.size > policy.max_size:
            raise TransferError("file_too_large", f"the server takes files up to {policy.max_size} bytes")
        if info.room is not None:
            await self._in_room(info.room)
        ref = self._next_ref()
        transfer.offer_ref = ref
        self._by_ref[ref] = transfer
        offer = OfferFile(
            name=info.name,
            size=info.size,
            sha256=transfer.sha256,
            room=info.room,
            to=info.peer,
            client_msg_id=transfer.client_msg_id,
            ref=ref,
        )
        self._send(session, offer)
        answer = await self._next(transfer)
        if isinstance(answer, FileDone):  # a 0-byte file, or this offer was stored before
            self._stored_offer(transfer, answer)
            return
        if isinstance(answer, ErrorFrame):
            raise TransferError(answer.code, answer.message)
        assert isinstance(answer, FileProgress)
        confirmed = answer.offset
        upload = answer.upload
        self._set(transfer, force=True, state=TransferState.RUNNING, done=confirmed, resumed_from=confirmed)
        transfer.meter.add(time.monotonic(), confirmed)
        sent = confirmed
        in_flight: deque[int] = deque()  # end offsets of the chunks not yet confirmed
        while True:
            while sent < info.size and len(in_flight) < policy.window:
                length = min(policy.chunk, info.size - sent)
                data = await asyncio.to_thread(os.pread, descriptor, length, sent)
                if len(data) != length:
                    raise TransferError("unreadable", "the file got shorter while it was being sent")
                self._send(session, FileChunk(upload=upload, offset=sent, data=data, ref=ref))
                sent += length
                in_flight.append(sent)
                # The next chunk is read only once this one has left the buffer: chat frames written
                # meanwhile wait behind about one chunk, and a slow link never fills our memory.
                await self._drain(session)
            answer = await self._next(transfer)
            if isinstance(answer, FileProgress):
                confirmed = answer.offset
                while in_flight and in_flight[0] <= confirmed:
                    in_flight.popleft()
                self._progress(transfer, confirmed)
            elif isinstance(answer, FileDone):
                self._stored_offer(transfer, answer)
                return
            elif isinstance(answer, ErrorFrame):
                raise TransferError(answer.code, answer.message)

    def _stored_offer(self, transfer: Transfer, done: FileDone) -> None:
        info = transfer.info
        offer = FileOffered(
            id=done.id,
            nick=self._nick(),
            name=info.name,
            size=info.size,
            sha256=transfer.sha256,
            ts=done.ts,
            room=info.room,
            to=info.peer,
        )
        self.learn(offer)
        self._set(transfer, done=info.size, offer_id=done.id)
        self._stored(offer)

    # -- Downloads ---------------------------------------------------------------------------------------

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
                while True:
                    session = await self._session_for(transfer)
                    try:
                        await self._download_once(transfer, session, descriptor)
                        break
                    except _Lost:
                        continue
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
