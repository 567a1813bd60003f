"""Stored files on disk: where they live, who may add one (quotas), and the sweep that deletes old ones.

Layout under the files folder (``DATA_DIR/files`` unless configured), every name made by the server:

* ``objects/ab/abcdef...``: a complete file, named by its SHA-256 (lowercase hex), stored once however often
  it is offered. Its SQLite row (table ``files``) says when it was last uploaded and by whom.
* ``partial/<hex>``: an upload in progress, named by the SHA-256 of (uploader's nick key, size, sha256), so
  the same nick offering the same file again finds it and resumes. A client's file name never becomes a path.

Threads and the lock (see chat_server/server.py for the whole model):

* A connection's reader thread owns its uploads (`chat_server.reader.uploads`): it asks `reserve` for room
  (quota, one upload per partial file), writes the partial file, and when the hash matches calls `place`,
  which moves it into ``objects/`` (`os.replace`) and *pins* the hash until the history thread has recorded
  it.
* The history thread records the offer in SQLite, commits, then calls `Reservation.finish` (unpin, release).
* The sweeper thread (`FileSweeper`) deletes expired objects and abandoned partial files. Before deleting
  a name it marks it under ``FileStore._lock`` (refused if pinned or being uploaded), re-reads its row, and
  deletes it outside the lock; a reader that wants the same name meanwhile waits (bounded) for the mark to go.

So an object is never deleted between its `os.replace` and its SQLite row, and a partial file is never deleted
under a live upload. ``FileStore._lock`` guards only in-memory sets and counters: no I/O is done under it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ErrorCode

from .filesconfig import FilesConfig
from .storage import HistoryError

log = logging.getLogger(__name__)

#: Longest a reader waits for the sweeper to finish deleting a name it wants (one unlink: a moment).
SWEEP_WAIT = 5.0
#: Folder and file modes: the stored files are readable by the server's user only.
FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: SHA-256 of no bytes at all: the only valid hash of a 0-byte file.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class FileRefused(Exception):
    """A file request is refused with `code` (not fatal); `message` is for the user."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(eq=False)
class Reservation:
    """Room for one upload: its partial file is claimed and its size counted against the quotas.

    Released exactly once: by `finish` (after the offer is recorded, or on any failure). `finish` is called
    by the history thread or by the reader, whichever is last to hold it.
    """

    store: FileStore
    user_key: str
    size: int
    sha256: str
    partial: str
    #: Bytes counted against the nick's quota and the total (0 for bytes the server holds already).
    user_bytes: int
    total_bytes: int
    pinned: bool = False
    released: bool = field(default=False)

    def finish(self) -> None:
        """Release the claim, the reserved bytes and the pin (idempotent)."""
        self.store.release(self)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file offer as a download needs it: who may see it and where its bytes are."""

    room_key: str | None
    sender_key: str
    recipient_key: str | None
    size: int
    sha256: str
    #: False when the file was never stored or is past the retention period.
    available: bool


@dataclass(slots=True)
class SweepResult:
    """What one sweep deleted."""

    objects: int = 0
    partials: int = 0
    bytes: int = 0


class FileStore:
    """The files folder and its bookkeeping (any thread; see the module docstring for who calls what)."""

    def __init__(self, config: FilesConfig, folder: Path, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.folder = folder
        self.objects = folder / "objects"
        self.partials = folder / "partial"
        #: Wall-clock time in seconds (tests move it forward to age files).
        self.clock = clock
        for path in (folder, self.objects, self.partials):
            path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._uploading: set[str] = set()  # partial names claimed by a live upload
        self._pins: Counter[str] = Counter()  # hashes placed in objects/ and not yet recorded in SQLite
        self._deleting: set[str] = set()  # partial names and hashes the sweeper is deleting right now
        self._reserved_total = 0
        self._reserved: Counter[str] = Counter()  # reserved bytes by nick key

    # -- Names ---------------------------------------------------------------------------------------------

    def object_path(self, sha256: str) -> Path:
        """Where the file with this (validated, lowercase hex) SHA-256 is stored."""
        return self.objects / sha256[:2] / sha256

    def partial_name(self, user_key: str, size: int, sha256: str) -> str:
        """The partial file's name for this nick's upload of this file: a hash, never the client's name."""
        return hashlib.sha256(f"{user_key}\0{size}\0{sha256}".encode()).hexdigest()

    def partial_path(self, name: str) -> Path:
        """Where the partial file `name` (from `partial_name`) lives."""
        return self.partials / name

    def cutoff_ms(self) -> int:
        """Files last uploaded before this time (ms) are expired."""
        return int((self.clock() - self.config.retention_seconds) * 1000)

    # -- Uploads (reader threads) --------------------------------------------------------------------------

    def reserve(self, db: sqlite3.Connection, user_key: str, size: int, sha256: str) -> Reservation:
        """Claim this upload's partial file and count its size against the quotas; raise `FileRefused`."""
        config = self.config
        if size > config.max_size:
            raise FileRefused(ErrorCode.FILE_TOO_LARGE, f"files may be at most {config.max_size} bytes")
        used_user, used_total, held_by = _usage(db, user_key, sha256, self.cutoff_ms())
        # Bytes the server holds already cost nothing more; the nick takes them over if another held them.
        total_bytes = 0 if held_by is not None else size
        user_bytes = 0 if held_by == user_key else size
        partial = self.partial_name(user_key, size, sha256)
        with self._changed:
            # First let the sweeper finish deleting this partial file, if it is (waiting releases the lock:
            # everything below is checked after it).
            if not self._changed.wait_for(lambda: partial not in self._deleting, SWEEP_WAIT):
                raise FileRefused(ErrorCode.TOO_MANY_TRANSFERS, "the server is busy, try again")
            if partial in self._uploading:
                raise FileRefused(ErrorCode.TOO_MANY_TRANSFERS, "this file is being uploaded already")
            if used_user + self._reserved[user_key] + user_bytes > config.user_quota:
                raise FileRefused(ErrorCode.QUOTA_EXCEEDED, f"you may store {config.user_quota} bytes")
            if used_total + self._reserved_total + total_bytes > config.total_quota:
                raise FileRefused(ErrorCode.QUOTA_EXCEEDED, "the server's file storage is full")
            self._uploading.add(partial)
            self._reserved[user_key] += user_bytes
            self._reserved_total += total_bytes
        return Reservation(self, user_key, size, sha256, partial, user_bytes, total_bytes)

    def place(self, reservation: Reservation, fd: int) -> None:
        """The partial file (open as `fd`, complete, hash checked) becomes the stored object.

        Pins the hash first, so the sweeper leaves the object alone until the history thread has recorded
        it (`Reservation.finish`). If the server holds these bytes already, the partial file is dropped.
        """
        sha256 = reservation.sha256
        with self._changed:
            if not self._changed.wait_for(lambda: sha256 not in self._deleting, SWEEP_WAIT):
                raise FileRefused(ErrorCode.TOO_MANY_TRANSFERS, "the server is busy, try again")
            self._pins[sha256] += 1
            reservation.pinned = True
        os.fsync(fd)  # the bytes are on disk before the offer that names them is
        target = self.object_path(sha256)
        partial = self.partial_path(reservation.partial)
        if target.exists():
            partial.unlink(missing_ok=True)
            return
        target.parent.mkdir(mode=FOLDER_MODE, exist_ok=True)
        os.replace(partial, target)
        _fsync_folder(target.parent)

    def release(self, reservation: Reservation) -> None:
        """End a reservation: free its partial name, its reserved bytes and its pin (idempotent)."""
        with self._changed:
            if reservation.released:
                return
            reservation.released = True
            self._uploading.discard(reservation.partial)
            self._reserved[reservation.user_key] -= reservation.user_bytes
            if self._reserved[reservation.user_key] <= 0:
                del self._reserved[reservation.user_key]
            self._reserved_total -= reservation.total_bytes
            if reservation.pinned:
                self._pins[reservation.sha256] -= 1
                if self._pins[reservation.sha256] <= 0:
                    del self._pins[reservation.sha256]
            self._changed.notify_all()

    # -- Downloads (reader threads) ------------------------------------------------------------------------

    def lookup(self, db: sqlite3.Connection, message_id: int) -> StoredFile | None:
        """The file offered as message `message_id`, or None if that message is not a file offer."""
        try:
            row = db.execute(
                "SELECT m.room_key, m.sender_key, m.recipient_key, f.size, f.sha256, o.stored_at"
                " FROM file_offers AS f JOIN messages AS m ON m.id = f.id"
                " LEFT JOIN files AS o ON o.sha256 = f.sha256 WHERE f.id = ?",
                (message_id,),
            ).fetchone()
        except sqlite3.Error as error:
            raise HistoryError(f"file lookup failed: {error}") from error
        if row is None:
            return None
        room_key, sender_key, recipient_key, size, sha256, stored_at = row
        available = stored_at is not None and stored_at >= self.cutoff_ms()
        return StoredFile(room_key, sender_key, recipient_key, int(size), sha256, available)

    # -- Sweep (sweeper thread) ----------------------------------------------------------------------------

    def sweep(self, db: sqlite3.Connection) -> SweepResult:
        """Delete expired objects (and any object without a row), and partial files not touched for
        `partial_days` that no live upload holds. History entries stay: their `file_get` says no_such_file."""
        result = SweepResult()
        for folder in sorted(self.objects.iterdir()):
            for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                sha256 = path.name
                if self._mark(sha256):
                    try:
                        # Re-read after marking: an upload recorded meanwhile has renewed the row.
                        if not self._live(db, sha256):
                            result.bytes += _unlink(path)
                            result.objects += 1
                    finally:
                        self._unmark(sha256)
        partial_cutoff = self.clock() - self.config.partial_seconds
        for path in sorted(self.partials.iterdir()):
            name = path.name
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime >= partial_cutoff:
                    continue
                if self._mark(name):
                    try:
                        result.bytes += _unlink(path)
                        result.partials += 1
                    finally:
                        self._unmark(name)
        if result.objects or result.partials:
            log.info(
                "event=files_swept objects=%d partials=%d bytes=%d",
                result.objects,
                result.partials,
                result.bytes,
            )
        return result

    def _live(self, db: sqlite3.Connection, sha256: str) -> bool:
        row = db.execute("SELECT stored_at FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return row is not None and int(row[0]) >= self.cutoff_ms()

    def _mark(self, name: str) -> bool:
        """Claim `name` (a hash or a partial file's name) for deletion, unless an upload holds it."""
        with self._changed:
            if name in self._uploading or self._pins[name] > 0:
                return False
            self._deleting.add(name)
            return True

    def _unmark(self, name: str) -> None:
        with self._changed:
            self._deleting.discard(name)
            self._changed.notify_all()


def _usage(db: sqlite3.Connection, user_key: str, sha256: str, cutoff: int) -> tuple[int, int, str | None]:
    """(bytes stored for `user_key`, bytes stored in total, who holds `sha256` now or None)."""
    try:
        user = db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE uploader_key = ? AND stored_at >= ?",
            (user_key, cutoff),
        ).fetchone()[0]
        total = db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE stored_at >= ?", (cutoff,)
        ).fetchone()[0]
        held = db.execute(
            "SELECT uploader_key FROM files WHERE sha256 = ? AND stored_at >= ?", (sha256, cutoff)
        ).fetchone()
    except sqlite3.Error as error:
        raise HistoryError(f"file quota query failed: {error}") from error
    return int(user), int(total), None if held is None else str(held[0])


def _unlink(path: Path) -> int:
    """Delete `path`; return the bytes it held (0 if it was gone already)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every file system lets a folder be synced)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
