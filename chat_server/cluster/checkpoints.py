"""Uploads in progress, shared across the cluster: checkpoints of their confirmed prefix in the object store.

On one server, an upload cut off resumes from its partial file (``partial/<hex>``, chat_server.files, named
by the SHA-256 of (uploader's nick key, size, sha256)). In cluster mode that file is on one server's disk, so
its confirmed prefix is also *checkpointed* into the cluster, and an offer reaching another server resumes
from there (docs/cluster.md, "An upload in progress is checkpointed"):

* **Segments.** A checkpoint is written as a *segment*: an object of the bucket ``FILES_BUCKET-partial``
  (`ClusterConfig.partial_bucket_name`, replicated like the files bucket, with a TTL of `files.partial_days`)
  named ``partial-<hex>-<start>`` that holds the bytes [start, end) of the upload. Each checkpoint writes only
  the bytes confirmed since the previous one (no prefix is written twice), so the segments of one upload form
  a *chain*: the first starts at 0, each next one where the one before it ends. Its headers say its start,
  length and SHA-256, as the server that wrote it read them from its partial file.
* **When.** The reader thread asks for a checkpoint (`save`) each time `upload_checkpoint` more bytes are
  confirmed, and once more when the upload stops being fed (its connection ended): it never waits. The
  ``nats`` loop writes it: the bytes are read from the partial file by the loop's executor (``nats-files_N``),
  never on a reader or the history thread, and no lock is held. One upload's requests are done in order by
  one task of the loop (a newer request replaces one not started yet: it covers more).
* **Resume.** A ``file_offer`` on a server with no partial file for its key asks `resume`: the reader waits
  (at most `fetch_timeout`; only its own connection waits) while the loop walks the chain from 0, checks each
  segment (its headers present and matching its place in the chain, its size their length, the object
  store's digest their SHA-256, the chain no longer than the file) and writes the segments into a temporary
  file of ``partial/``, where nats-py checks each object's digest against the bytes it reads. Only a whole,
  checked chain is used: the reader moves the file into place and re-hashes it as on any resume, and
  ``file_progress`` says its length. A segment that fails a check drops the whole checkpoint (offset 0). The
  final SHA-256 check of the complete file stays what guarantees the shared file is the offered one.
* **Gone.** Once the complete file is in the files bucket the segments are deleted (`forget`); also when the
  upload is cancelled or its bytes did not match. Segments nobody deletes (a server died) expire with the
  bucket's TTL, as partial files are swept after `files.partial_days`.

A failed checkpoint (NATS unreachable, too slow) is logged and skipped: the upload goes on locally, and the
client never sees an error for it. Everything here is the loop's except `save`, `forget` and `resume`, which a
reader thread calls; the loop's state (`_held`, `_wanted`, `_workers`) is touched by the loop only.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chat_server.files import FILE_MODE, FileStore

if TYPE_CHECKING:
    from .link import NatsLink

log = logging.getLogger(__name__)

#: A segment's object name is this, the partial file's name, ``-`` and the segment's start offset.
SEGMENT_PREFIX = "partial-"
#: A checkpoint fetched for a resume is written here (in ``partial/``) before the reader moves it into place.
RESUME_PREFIX = "resume-"
#: The headers of a segment: where it starts in the upload, how long it is, and the SHA-256 of its bytes.
START, LENGTH, SHA256 = "Mpchat-Start", "Mpchat-Length", "Mpchat-Sha256"
#: Bytes read at a time when hashing a segment before writing it.
HASH_BLOCK = 1024 * 1024
#: Bytes per second a segment must at least be written at (beside `publish_timeout`), or the checkpoint is
#: given up (the next one writes the same bytes again).
MIN_CHECKPOINT_RATE = 1024 * 1024
#: Seconds the reader waits for a resume beyond `fetch_timeout` (the loop gives up after `fetch_timeout`).
RESUME_SPARE = 1.0


class UploadCheckpoints:
    """The checkpoints of this server's uploads in progress (see the module docstring for who calls what)."""

    def __init__(self, link: NatsLink, files: FileStore) -> None:
        self.link = link
        self.files = files
        #: Bytes between two checkpoints of one upload (`upload_checkpoint`); 0: no checkpoints at all.
        self.every = link.config.upload_checkpoint
        #: The nats-py ObjectStore of segments, set by `SharedFiles.open` when checkpoints are on (loop only).
        self.bucket: Any = None
        self._held: dict[str, int] = {}  # the end of each upload's chain in the bucket, where known
        self._wanted: dict[str, _Wanted] = {}  # each upload's requests its task has not started yet
        self._workers: dict[str, asyncio.Task[None]] = {}  # the task doing one upload's requests

    # -- Reader threads --------------------------------------------------------------------------------------

    def save(self, partial: str, end: int, *, last: bool = False) -> None:
        """Checkpoint the upload `partial` up to its confirmed offset `end` (returns at once). `last`: the
        upload is no longer fed here (its connection ended)."""
        self._hand(partial, end, last)

    def forget(self, partial: str) -> None:
        """Delete the upload's checkpoint (shared, cancelled, or its bytes did not match; returns at once)."""
        self._hand(partial, None, False)

    def resume(self, partial: str, size: int) -> bool:
        """Bring another server's checkpoint of this upload into its partial file (which is not there),
        waiting at most `fetch_timeout`; True if it did. Never raises: without a checkpoint, start at 0."""
        if self.bucket is None or not self.link.connected:
            return False
        started = time.monotonic()
        work = self._fetch(partial, size)
        try:
            future = asyncio.run_coroutine_threadsafe(work, self.link.loop)
        except RuntimeError:  # the loop is closed: the server is stopping
            work.close()
            return False
        try:
            temporary = future.result(self.link.config.fetch_timeout + RESUME_SPARE)
        except concurrent.futures.TimeoutError:
            future.cancel()  # its task deletes the temporary file
            log.warning("event=upload_resume_slow partial=%s", partial)
            return False
        except Exception as error:  # NATS went away, a digest mismatch, the disk: start at 0
            log.warning("event=upload_resume_failed partial=%s error=%r", partial, error)
            return False
        if temporary is None:
            return False
        try:
            os.replace(temporary, self.files.partial_path(partial))
            held = os.stat(self.files.partial_path(partial)).st_size
        except OSError as error:  # the disk: start at 0
            log.warning("event=upload_resume_failed partial=%s error=%r", partial, error)
            return False
        seconds = time.monotonic() - started
        log.info("event=upload_resumed partial=%s bytes=%d seconds=%.3f", partial, held, seconds)
        return True

    def _hand(self, partial: str, end: int | None, last: bool) -> None:
        if self.every == 0:
            return
        try:
            self.link.loop.call_soon_threadsafe(self._want, partial, end, last)
        except RuntimeError:  # the loop is closed: the server is stopping
            log.info("event=upload_checkpoint_skipped partial=%s reason=stopping", partial)

    # -- Loop ------------------------------------------------------------------------------------------------

    def _want(self, partial: str, end: int | None, last: bool) -> None:
        """Queue a request for the upload's task (started if it has none)."""
        wanted = self._wanted.setdefault(partial, _Wanted())
        if end is None:
            wanted.forget, wanted.upto, wanted.last = True, 0, False
        else:
            wanted.upto, wanted.last = max(wanted.upto, end), wanted.last or last
        if partial not in self._workers:
            self._workers[partial] = self.link.loop.create_task(self._work(partial))

    async def _work(self, partial: str) -> None:
        """Do the upload's requests in order until none is left."""
        try:
            while partial in self._wanted:
                wanted = self._wanted.pop(partial)
                if wanted.forget:
                    await self._drop(partial)
                if wanted.upto:
                    await self._save(partial, wanted.upto)
                if wanted.last:  # nothing more comes from that connection: read the chain again if needed
                    self._held.pop(partial, None)
        finally:
            self._workers.pop(partial, None)

    async def _save(self, partial: str, end: int) -> None:
        """Write the segment from the end of the upload's chain to `end` (one checkpoint)."""
        from nats.js.api import ObjectMeta

        if self.bucket is None or not self.link.connected:
            log.info("event=upload_checkpoint_skipped partial=%s reason=nats_unreachable", partial)
            return
        started = time.monotonic()
        try:
            start = self._held.get(partial)
            if start is None:  # what the bucket holds already (another server's, or before a restart)
                try:
                    start = _chain_end(await self._chain(partial, None))
                except BadCheckpoint:
                    start = 0  # written again from 0, over the bad segment
            if end <= start:
                return
            loop = asyncio.get_running_loop()
            segment = _Segment(self.files.partial_path(partial), start, end)
            try:
                digest = await loop.run_in_executor(None, segment.sha256)
                name = segment_name(partial, start)
                headers = {START: str(start), LENGTH: str(end - start), SHA256: digest}
                timeout = self.link.config.publish_timeout + (end - start) / MIN_CHECKPOINT_RATE
                await asyncio.wait_for(
                    self.bucket.put(name, segment, meta=ObjectMeta(name=name, headers=headers)), timeout
                )
            finally:
                # On the executor (one thread): after any read of it still running there.
                await loop.run_in_executor(None, segment.close)
            self._held[partial] = end
            log.info(
                "event=upload_checkpoint partial=%s start=%d end=%d seconds=%.3f",
                partial,
                start,
                end,
                time.monotonic() - started,
            )
        except FileNotFoundError:
            pass  # the upload was completed (or cancelled) meanwhile: nothing to keep
        except Exception as error:  # NATS away, too slow, the disk: the upload goes on without it
            log.warning("event=upload_checkpoint_failed partial=%s error=%r", partial, error)

    async def _drop(self, partial: str) -> None:
        """Delete the upload's chain of segments (others, out of the chain, expire with the bucket's TTL)."""
        self._held.pop(partial, None)
        if self.bucket is None:
            return
        try:
            for info in await self._chain(partial, None):
                await self.bucket.delete(info.name)
        except Exception as error:  # they expire anyway
            log.warning("event=upload_checkpoint_delete_failed partial=%s error=%r", partial, error)

    async def _chain(self, partial: str, size: int | None) -> list[Any]:
        """The segments of the upload's chain from offset 0, checked, while they go on (at most `size`
        bytes). `BadCheckpoint` if one fails a check."""
        from nats.js.errors import ObjectNotFoundError

        chain: list[Any] = []
        end = 0
        while size is None or end < size:
            try:
                info = await self.bucket.get_info(segment_name(partial, end))
            except ObjectNotFoundError:
                break
            length = _checked_length(info, end)
            if length is None or (size is not None and end + length > size):
                raise BadCheckpoint(f"segment {info.name} does not fit the chain at {end}")
            chain.append(info)
            end += length
        return chain

    async def _fetch(self, partial: str, size: int) -> Path | None:
        """Write the upload's checkpoint into a temporary file of ``partial/`` (bounded by `fetch_timeout`);
        return it, or None if there is none (or a bad one)."""
        return await asyncio.wait_for(self._fetch_chain(partial, size), self.link.config.fetch_timeout)

    async def _fetch_chain(self, partial: str, size: int) -> Path | None:
        try:
            chain = await self._chain(partial, size)
        except BadCheckpoint as bad:
            log.warning("event=upload_checkpoint_dropped partial=%s reason=%s", partial, bad)
            return None
        if not chain:
            return None
        temporary = self.files.partial_path(RESUME_PREFIX + partial)
        loop = asyncio.get_running_loop()
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "wb") as sink:
                for info in chain:
                    # nats-py writes each chunk through the executor and checks the object's digest.
                    await self.bucket.get(info.name, writeinto=sink)
                sink.flush()
                await loop.run_in_executor(None, os.fsync, sink.fileno())
            end = _chain_end(chain)
            if os.stat(temporary).st_size != end:  # a segment replaced while it was read
                log.warning("event=upload_checkpoint_dropped partial=%s reason=changed", partial)
                temporary.unlink()
                return None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        self._held[partial] = end
        return temporary


@dataclass(slots=True)
class _Wanted:
    """What an upload's task is still asked to do, in this order: delete its chain (`forget`), write a
    checkpoint up to `upto` (0: none), forget where its chain ends (`last`: its connection ended)."""

    forget: bool = False
    upto: int = 0
    last: bool = False


class BadCheckpoint(Exception):
    """A segment of a checkpoint fails its checks: the checkpoint is not used."""


class _Segment:
    """The bytes [start, end) of a partial file, read by nats-py's `put` on the executor (`readinto`)."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self._fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.start, self.end = start, end
        self._position = start

    def sha256(self) -> str:
        """The SHA-256 of the segment's bytes (hex); OSError if the file is shorter than `end`."""
        hasher = hashlib.sha256()
        offset = self.start
        while offset < self.end:
            block = self._read(min(HASH_BLOCK, self.end - offset), offset)
            hasher.update(block)
            offset += len(block)
        return hasher.hexdigest()

    def readinto(self, buffer: bytearray) -> int:
        wanted = min(len(buffer), self.end - self._position)
        if wanted <= 0:
            return 0
        block = self._read(wanted, self._position)
        buffer[: len(block)] = block
        self._position += len(block)
        return len(block)

    def _read(self, size: int, offset: int) -> bytes:
        if self._fd is None:
            raise OSError("the segment is closed")
        block = os.pread(self._fd, size, offset)
        if not block:
            raise OSError(f"the partial file ends before {self.end}")
        return block

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def segment_name(partial: str, start: int) -> str:
    """The object name of the upload `partial`'s segment starting at `start`."""
    return f"{SEGMENT_PREFIX}{partial}-{start}"


def object_digest(sha256: str) -> str:
    """The object store's digest of the bytes whose SHA-256 is `sha256` (hex): ``SHA-256=`` and base64url."""
    return "SHA-256=" + base64.urlsafe_b64encode(bytes.fromhex(sha256)).decode()


def _checked_length(info: Any, start: int) -> int | None:
    """The length of the segment `info` if its headers are ours and match its place and its bytes."""
    headers = info.headers or {}
    try:
        begins, length, sha256 = int(headers[START]), int(headers[LENGTH]), str(headers[SHA256])
        digest = object_digest(sha256)
    except (KeyError, TypeError, ValueError):
        return None
    if begins != start or length <= 0 or info.size != length or info.digest != digest:
        return None
    return length


def _chain_end(chain: list[Any]) -> int:
    """Where a chain of segments ends (0 for none)."""
    return sum(int(info.size) for info in chain)
