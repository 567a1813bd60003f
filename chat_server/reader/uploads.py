"""One connection's file transfers, handled on its reader thread: uploads in, chunks out.

The reader thread owns everything here (no lock): the uploads in progress (each an open partial file, its
confirmed offset and a running SHA-256), and the file open for the last download it served.

* ``file_offer``: check the target, the size and the quotas (`FileStore.reserve`), open the partial file
  (resuming: re-hash what is on disk), answer ``file_progress``.
* ``file_chunk``: refuse it past the upload window (below), write the bytes at the confirmed offset
  (`os.pwrite`), hash them, then confirm with ``file_progress``: a confirmed byte is in the file (the page
  cache, flushed to disk every `SYNC_EVERY` bytes; the final hash check catches what a power loss takes). At
  the end: check the hash, move the file into place (`FileStore.place`), and hand the offer to the history
  thread (`StoreFile`), which stores it and answers ``file_done``.
* ``file_get``: check access, read one chunk (`os.pread`) and queue ``file_data`` on the connection's bulk
  lane (`SendQueue.put_bulk`), which the sender writes only after the chat frames queued before it.
* ``file_cancel``: delete the partial file.

The upload window: each upload remembers the send-queue numbers of its chunk confirmations
(`SendQueue.put_numbered`) that the sender had not yet taken to write when last looked at. A chunk that
arrives while `files.window` of them are still unsent is refused with ``too_many_transfers``: its client
cannot have seen the confirmation of the chunk `window` places before it (docs/protocol.md section 12). A
client that waits for that confirmation is never refused, since a frame it has received was taken first.

Each handler returns None or an encoded error frame: the connection sends it and counts the refusal against
`flood_refusals`, so a client cannot make the server answer errors without end.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chat_server.files import EMPTY_SHA256, FILE_MODE, FileRefused, FileStore, Reservation, StoredFile
from chat_server.history.fileoffers import StoreFile
from chat_server.history.thread import HistoryThread
from chat_server.hub import Client, Hub
from chat_server.metrics import Tally
from chat_server.replies import answer, error_frame
from chat_server.sender.thread import SendQueue
from chat_server.storage import conversation_key, find_previous
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import CancelFile, FileChunk, FileData, FileDone, FileProgress, GetFile, OfferFile
from shared.text import fold

if TYPE_CHECKING:
    from chat_server.cluster.files import SharedFiles

log = logging.getLogger(__name__)

#: Bytes read at a time when re-hashing a partial file on a resume.
REHASH_BLOCK = 1024 * 1024
#: An upload's bytes are flushed to disk (`fdatasync`) each time this many more are written. Without it, a
#: large upload leaves up to its whole size dirty in the page cache, and the final `fsync` (or the kernel's
#: own write-back) then stalls the history's commits on the same disk: every chat message waits. It also
#: bounds what a power loss can take from a confirmed upload.
SYNC_EVERY = 16 * 1024 * 1024
#: `fdatasync` where the system has it (Linux), else `fsync` (macOS).
_flush = getattr(os, "fdatasync", os.fsync)
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(eq=False)
class _Upload:
    """An upload in progress on this connection."""

    number: int
    offer: OfferFile
    reservation: Reservation
    fd: int
    offset: int
    hasher: hashlib._Hash
    room_key: str | None
    recipient: tuple[str, str] | None  # (nick as shown, key)
    #: Send-queue numbers of this upload's chunk confirmations the sender may not have taken yet (the window).
    unsent: deque[int] = field(default_factory=deque)
    #: Cluster mode: the offset up to which a checkpoint was last asked for (or resumed from).
    checkpointed: int = 0


class ConnectionFiles:
    """The uploads and downloads of one connection (its reader thread only)."""

    def __init__(
        self,
        client: Client,
        sendq: SendQueue,
        files: FileStore,
        hub: Hub,
        history: HistoryThread,
        database: Callable[[], sqlite3.Connection],
        settle: Callable[[], None],
        tally: Tally | None = None,
        shared: SharedFiles | None = None,
    ) -> None:
        self.client = client
        #: In cluster mode, the cluster's object store (chat_server.cluster.files): a finished upload goes
        #: there before its offer goes to the log, and a file not held here is fetched from there.
        self.shared = shared
        #: The server's counters: file bytes in and out, counted once per chunk (chat_server.metrics).
        self.tally = tally if tally is not None else Tally()
        self.sendq = sendq
        self.files = files
        self.config = files.config
        self.hub = hub
        self.history = history
        self._database = database  # the reader's own SQLite read connection, opened when first needed
        #: Waits until the history thread has applied this connection's earlier requests (a `join`...).
        self._settle = settle
        self._uploads: dict[int, _Upload] = {}
        self._numbers = itertools.count(1)
        self._download: tuple[str, int] | None = None  # (sha256, fd) of the file read last

    # -- Requests (each a row of the routing table, through chat_server.reader.requests) -------------------
    #
    # Each returns an error frame to send, or None; a `FileRefused` or `HistoryError` is answered by the
    # caller (`chat_server.reader.requests._file_request`).

    def close(self) -> None:
        """The connection ended: close every file, release every reservation, keep partial files."""
        for upload in self._uploads.values():
            self._checkpoint(upload, last=True)  # cluster mode: it may go on on another server
            _close(upload.fd)
            upload.reservation.finish()
        self._uploads.clear()
        if self._download is not None:
            _close(self._download[1])
            self._download = None

    # -- Uploads -------------------------------------------------------------------------------------------

    def offer(self, offer: OfferFile) -> bytes | None:
        client, ref = self.client, offer.ref
        if (offer.room is None) == (offer.to is None):
            return error_frame(ErrorCode.INVALID_FIELD, "give exactly one of 'room' and 'to'", ref)
        key = client.key
        if key is None:
            return None  # the login was refused; the connection is closing
        room_key, recipient = None, None
        if offer.room is not None:
            room_key = fold(offer.room)
            if not self._member(room_key):
                return error_frame(ErrorCode.NOT_IN_ROOM, f"you are not in {offer.room!r}", ref)
        else:
            with self.hub.lock:
                found = self.hub.nicks.get(fold(offer.to or ""))
                if found is not None and found.nick is not None and found.key is not None:
                    recipient = (found.nick, found.key)
            if recipient is None and self.shared is not None and offer.to is not None:
                # Cluster mode: the nick may be on another server, which delivers it (as a `tell`).
                recipient = (offer.to, fold(offer.to))
            if recipient is None:
                return error_frame(ErrorCode.NO_SUCH_NICK, f"{offer.to!r} is not online", ref)
        db = self._database()
        if offer.client_msg_id is not None:
            conversation = conversation_key(room_key, recipient and recipient[1])
            if (answer := self._stored_before(db, key, offer, conversation)) is not None:
                client.send(answer)
                return None
        if self.shared is not None and not self.shared.available():
            unreachable = (
                "the cluster's file store (NATS JetStream) is unreachable: the file cannot be shared now"
            )
            return error_frame(ErrorCode.HISTORY_UNAVAILABLE, unreachable, ref)
        if len(self._uploads) >= self.config.max_uploads:
            limit = self.config.max_uploads
            return error_frame(ErrorCode.TOO_MANY_TRANSFERS, f"at most {limit} uploads at once", ref)
        if offer.size == 0 and offer.sha256 != EMPTY_SHA256:
            return error_frame(ErrorCode.CHECKSUM_MISMATCH, "an empty file has another SHA-256", ref)
        reservation = self.files.reserve(db, key, offer.size, offer.sha256)
        if self.shared is not None and not self._holds_partial(reservation):
            # Cluster mode: the upload may have begun on another server, which checkpointed it.
            self.shared.checkpoints.resume(reservation.partial, offer.size)
        try:
            fd, offset, hasher = self._open_partial(reservation)
        except OSError as error:
            reservation.finish()
            log.error("conn=%d event=partial_open_failed error=%s", client.id, error)
            return error_frame(ErrorCode.QUOTA_EXCEEDED, "the server cannot store files now", ref)
        number = next(self._numbers)
        upload = _Upload(number, offer, reservation, fd, offset, hasher, room_key, recipient)
        upload.checkpointed = offset
        self._uploads[number] = upload
        log.info(
            "conn=%d event=upload_started upload=%d size=%d offset=%d", client.id, number, offer.size, offset
        )
        client.send(encode(FileProgress(upload=number, offset=offset, ref=ref)))
        if offset == offer.size:
            return self._complete(upload, ref)
        return None

    def _stored_before(
        self, db: sqlite3.Connection, key: str, offer: OfferFile, conversation: str
    ) -> bytes | None:
        """For an offer whose client_msg_id this nick used in this conversation already: `file_done
        {duplicate}` if it is the same file, `client_msg_id_reused` if not. None for a new id."""
        assert offer.client_msg_id is not None
        found = find_previous(db, key, offer.client_msg_id, conversation)
        if found is None:
            return None
        if (found.text, found.sha256, found.size) != (offer.name, offer.sha256, offer.size):
            reused = f"client_msg_id {offer.client_msg_id!r} was used for another message here"
            return error_frame(ErrorCode.CLIENT_MSG_ID_REUSED, reused, offer.ref)
        done = FileDone(
            id=found.id, ts=found.ts, client_msg_id=offer.client_msg_id, duplicate=True, ref=offer.ref
        )
        return encode(done)

    def _holds_partial(self, reservation: Reservation) -> bool:
        """True if this server has bytes of the upload's partial file."""
        try:
            return os.stat(self.files.partial_path(reservation.partial)).st_size > 0
        except FileNotFoundError:
            return False

    def _open_partial(self, reservation: Reservation) -> tuple[int, int, hashlib._Hash]:
        """Open (or create) the partial file and hash what it holds: the offset to resume from."""
        fd = os.open(self.files.partial_path(reservation.partial), _OPEN_FLAGS, FILE_MODE)
        try:
            hasher = hashlib.sha256()
            held = os.fstat(fd).st_size
            if held > reservation.size:
                os.ftruncate(fd, 0)  # not ours to resume (cannot happen unless the file was tampered with)
                held = 0
            offset = 0
            while offset < held:
                block = os.pread(fd, min(REHASH_BLOCK, held - offset), offset)
                if not block:
                    break
                hasher.update(block)
                offset += len(block)
            return fd, offset, hasher
        except OSError:
            _close(fd)
            raise

    def chunk(self, chunk: FileChunk) -> bytes | None:
        ref = chunk.ref
        upload = self._uploads.get(chunk.upload)
        if upload is None:
            return error_frame(ErrorCode.NO_SUCH_FILE, f"no upload {chunk.upload} on this connection", ref)
        data = chunk.data
        if not data or len(data) > self.config.chunk:
            return error_frame(ErrorCode.INVALID_FIELD, f"a chunk holds 1 to {self.config.chunk} bytes", ref)
        unsent, taken = upload.unsent, self.sendq.taken
        while unsent and unsent[0] <= taken:
            unsent.popleft()
        if len(unsent) >= self.config.window:
            window = self.config.window
            return error_frame(
                ErrorCode.TOO_MANY_TRANSFERS,
                f"at most {window} chunks unconfirmed: wait for the file_progress of the earlier ones",
                ref,
            )
        if chunk.offset != upload.offset:
            return error_frame(ErrorCode.BAD_OFFSET, f"expected offset {upload.offset}", ref)
        if upload.offset + len(data) > upload.offer.size:
            return error_frame(ErrorCode.BAD_OFFSET, "the chunk goes past the announced size", ref)
        try:
            _write_all(upload.fd, data, upload.offset)
            if (upload.offset + len(data)) // SYNC_EVERY != upload.offset // SYNC_EVERY:
                _flush(upload.fd)
        except OSError as error:
            log.error("conn=%d event=chunk_write_failed error=%s", self.client.id, error)
            self._drop(upload, delete=False)
            return error_frame(ErrorCode.QUOTA_EXCEEDED, "the server cannot store the file now", ref)
        upload.hasher.update(data)
        upload.offset += len(data)
        self.tally.count("file_bytes", "upload", len(data))
        progress = encode(FileProgress(upload=upload.number, offset=upload.offset, ref=ref))
        unsent.append(self.client.send_numbered(progress))
        if upload.offset == upload.offer.size:
            return self._complete(upload, ref)
        self._checkpoint(upload)
        return None

    def _checkpoint(self, upload: _Upload, *, last: bool = False) -> None:
        """Cluster mode: ask for a checkpoint of the confirmed prefix every `upload_checkpoint` bytes, and
        when the upload stops being fed here (`last`); never waits (chat_server.cluster.checkpoints)."""
        if self.shared is None:
            return
        checkpoints = self.shared.checkpoints
        if last or upload.offset - upload.checkpointed >= checkpoints.every > 0:
            # The last one also tells the loop to let go of what it knows of this upload's checkpoint.
            checkpoints.save(upload.reservation.partial, upload.offset, last=last)
            upload.checkpointed = upload.offset

    def _complete(self, upload: _Upload, ref: int | None) -> bytes | None:
        """All bytes are here: check the hash, store the file, hand the offer to the history thread."""
        del self._uploads[upload.number]
        if upload.hasher.hexdigest() != upload.offer.sha256:
            log.info("conn=%d event=checksum_mismatch upload=%d", self.client.id, upload.number)
            self._drop(upload, delete=True)
            return error_frame(ErrorCode.CHECKSUM_MISMATCH, "the bytes do not match the SHA-256", ref)
        try:
            self.files.place(upload.reservation, upload.fd)
        except OSError as error:
            log.error("conn=%d event=file_place_failed error=%s", self.client.id, error)
            self._drop(upload, delete=False)
            return error_frame(ErrorCode.QUOTA_EXCEEDED, "the server cannot store the file now", ref)
        except FileRefused:
            self._drop(upload, delete=False)
            raise
        _close(upload.fd)
        offer = upload.offer
        request = StoreFile(
            upload=upload.number,
            name=offer.name,
            size=offer.size,
            sha256=offer.sha256,
            room_key=upload.room_key,
            recipient=upload.recipient,
            client_msg_id=offer.client_msg_id,
            ref=ref,
            reservation=upload.reservation,
        )
        if self.shared is not None:
            # Cluster mode: into the object store first (the nats thread; this thread does not wait), then
            # the offer goes to the log.
            if self.shared.share(self.client, request, self.files.object_path(offer.sha256)):
                return None
            upload.reservation.finish()
            return error_frame(ErrorCode.HISTORY_UNAVAILABLE, "the server is stopping", ref)
        if not self.history.submit(self.client, request):
            upload.reservation.finish()
            return error_frame(ErrorCode.RATE_LIMITED, "server busy", ref, retry_after_ms=1000)
        return None

    def _drop(self, upload: _Upload, *, delete: bool) -> None:
        """Forget an upload; with `delete`, its partial file too."""
        self._uploads.pop(upload.number, None)
        _close(upload.fd)
        if delete:
            self.files.partial_path(upload.reservation.partial).unlink(missing_ok=True)
            if self.shared is not None:
                self.shared.checkpoints.forget(upload.reservation.partial)
        upload.reservation.finish()

    def cancel(self, cancel: CancelFile) -> bytes | None:
        upload = self._uploads.get(cancel.upload)
        if upload is None:
            return error_frame(
                ErrorCode.NO_SUCH_FILE, f"no upload {cancel.upload} on this connection", cancel.ref
            )
        log.info("conn=%d event=upload_cancelled upload=%d", self.client.id, upload.number)
        self._drop(upload, delete=True)
        answer(self.client, cancel.ref)
        return None

    # -- Downloads -----------------------------------------------------------------------------------------

    def get(self, get: GetFile) -> bytes | None:
        ref = get.ref
        if self.sendq.bulk_full():
            window = self.config.window
            return error_frame(ErrorCode.TOO_MANY_TRANSFERS, f"at most {window} chunks outstanding", ref)
        stored = self.files.lookup(self._database(), get.id)
        if stored is None or not stored.available or not self._may_see(stored):
            return error_frame(ErrorCode.NO_SUCH_FILE, f"no file {get.id}", ref)
        if get.offset > stored.size:
            return error_frame(ErrorCode.BAD_OFFSET, f"the file has {stored.size} bytes", ref)
        try:
            try:
                fd = self._open_object(stored.sha256)
            except FileNotFoundError:
                if self.shared is None:
                    raise
                self.shared.fetch(stored.sha256, stored.size)  # uploaded to another server: fetch it first
                fd = self._open_object(stored.sha256)
            data = os.pread(fd, min(self.config.chunk, stored.size - get.offset), get.offset)
        except FileNotFoundError:
            return error_frame(ErrorCode.NO_SUCH_FILE, f"no file {get.id}", ref)
        except OSError as error:
            log.error("conn=%d event=file_read_failed id=%d error=%s", self.client.id, get.id, error)
            return error_frame(ErrorCode.NO_SUCH_FILE, f"file {get.id} cannot be read", ref)
        frame = FileData(id=get.id, offset=get.offset, size=stored.size, data=data, ref=ref)
        self.sendq.put_bulk(encode(frame))
        self.tally.count("file_bytes", "download", len(data))
        return None

    def _may_see(self, stored: StoredFile) -> bool:
        """A room's file: its current members; a direct one: its sender and recipient."""
        if stored.room_key is not None:
            return self._member(stored.room_key)
        key = self.client.key
        return key is not None and key in (stored.sender_key, stored.recipient_key)

    def _member(self, room_key: str) -> bool:
        """True if this client is in the room, counting a `join` it sent before but not yet applied."""
        with self.hub.lock:
            if room_key in self.client.rooms:
                return True
        self._settle()  # only when refusing: a member's download never waits for the history thread
        with self.hub.lock:
            return room_key in self.client.rooms

    def _open_object(self, sha256: str) -> int:
        """The stored file's descriptor (the last one read stays open: a download reads it chunk by chunk)."""
        if self._download is not None:
            if self._download[0] == sha256:
                return self._download[1]
            _close(self._download[1])
            self._download = None
        fd = os.open(self.files.object_path(sha256), _READ_FLAGS)
        self._download = (sha256, fd)
        return fd


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset` (a regular file takes it in one call unless the disk is full)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        log.warning("event=file_close_failed fd=%d", fd)
