"""Files shared across the cluster: JetStream's object store holds the bytes, the log holds the offers.

An upload ends on the server that took it exactly as on a single server (chat_server.reader.uploads: chunks
written and hashed on the reader thread, resumable, the SHA-256 checked, the file placed in the files
folder). Then, in cluster mode:

1. The reader hands the finished upload to the ``nats`` thread (`SharedFiles.share`) and reads on: it never
   waits for NATS. The loop puts the file into the object store bucket (`files_bucket`, ``PREFIX-files``,
   with `replicas` copies like the log), named by its SHA-256; nats-py reads it through the loop's executor
   (``nats-files_N``) and stores the digest it computed, which is checked against the offer's. Then it hands
   the upload to the history thread as a `FileShared` request (or the reason it could not be stored).
2. The history thread checks the offer exactly as a single server does (`checked_offer`: a `client_msg_id`
   used before, the room left, a mute) and publishes a ``file`` record to the log. Nothing is answered yet.
3. Every server applies the record (`_apply_file`) in stream order: the offer becomes a message with the
   record's stream sequence as its id, its ``file_offers`` row and its ``files`` row (quota and retention),
   and after the commit `file_offered` goes to the audience here; the origin answers `file_done`.

A download (`file_get`) on a server that does not hold the file in its folder (it was uploaded elsewhere)
asks `fetch`: the reader waits, bounded by `fetch_timeout` and holding no lock, while the loop writes the
object into a temporary file of the folder (through the executor), checks its size and SHA-256, and moves it
into place; from then on the download is the single server's, chunk by chunk from the local file, with the
same offsets (resume) and the same integrity. An object the store does not have is `no_such_file`; NATS
unreachable (or the fetch not done in time) is `history_unavailable`.

So every server's files folder is a cache of the object store: the sweep deletes its expired files as on a
single server; the object store expires an object `retention_days` after its last upload (the bucket's TTL).

Before it ends, an upload in progress is checkpointed into a bucket of its own (`SharedFiles.checkpoints`,
chat_server.cluster.checkpoints), so that cut off on a server that goes away, it resumes on another; its
checkpoint is deleted once step 1 has put the whole file into the files bucket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chat_server.files import FILE_MODE, FOLDER_MODE, FileRefused, FileStore
from chat_server.history.fileoffers import Silenced, StoreFile, checked_offer
from chat_server.history.messaging import direct_recipients
from chat_server.hub import Client
from chat_server.replies import error_frame
from chat_server.storage import HistoryError, conversation_key
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import FileDone, FileOffered

from .checkpoints import UploadCheckpoints, object_digest
from .link import CONNECT_RETRY, ClusterUnavailable
from .messaging import Awaiting, dedup_id

if TYPE_CHECKING:
    from .link import NatsLink
    from .messaging import ClusterMessages

log = logging.getLogger(__name__)

#: The threads of the ``nats`` loop's executor, which reads and writes the files the object store moves
#: (the loop never waits for the disk): one is enough, the network is the slower side.
FILE_WORKERS = 1
#: Bytes per second the object store must at least take an upload at (with `publish_timeout` to spare) or
#: give a file at (with `fetch_timeout` to spare), or the upload is refused with `history_unavailable` and
#: the fetch given up (a later `file_get` tries again): a stalled transfer never holds a reservation, or the
#: fetch of a file, forever.
MIN_MOVE_RATE = 1024 * 1024
#: A fetched object is written here (in the files folder's ``partial/``) before it is checked and moved.
FETCH_PREFIX = "fetch-"
#: The refusal of an upload or download while the cluster's object store cannot be reached ...
UNREACHABLE = "the cluster's file store (NATS JetStream) is unreachable"
#: ... and of a download whose fetch from it was given up (too slow).
SLOW = "the cluster's file store (NATS JetStream) did not give the file in time"


@dataclass(slots=True)
class Sharing(Awaiting):
    """A finished upload's offer on its way to the log: its uploader is answered `file_done`."""

    upload: int | None = None

    def duplicate(self, seq: int, ts: int) -> bytes:
        """The offer was published before (a resend after a failover, within JetStream's duplicate window):
        `file_done {duplicate}` naming the stored offer, as a single server answers."""
        done = FileDone(upload=self.upload, id=seq, ts=ts, client_msg_id=self.client_msg_id, duplicate=True)
        return encode(done)


@dataclass(frozen=True, slots=True)
class FileShared:
    """Internal request (``nats`` thread -> history thread): an upload's file is in the object store, or
    could not be put there (`error`): publish its offer, or refuse it."""

    client: Client
    request: StoreFile
    error: str | None = None


class SharedFiles:
    """The shared files of one server: the object store bucket (loop), the ``file`` records (history thread),
    and the waits of uploads and downloads (reader threads)."""

    def __init__(
        self, link: NatsLink, files: FileStore, messages: ClusterMessages, silenced: Silenced
    ) -> None:
        self.link = link
        self.files = files
        self.messages = messages
        self._silenced = silenced
        self._bucket: Any = None  # the nats-py ObjectStore (loop only)
        self._fetching: dict[str, asyncio.Future[None]] = {}  # by SHA-256 (loop only)
        #: The checkpoints of uploads in progress (their own bucket), for a resume on another server.
        self.checkpoints = UploadCheckpoints(link, files)
        messages.applies("file", self._apply_file)

    # -- Loop ------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Give the loop its file executor, and open (or create) the object store buckets: the files, and
        the uploads' checkpoints unless `upload_checkpoint` is 0."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(FILE_WORKERS, thread_name_prefix="nats-files")
        )
        config = self.link.config
        self._bucket = await self._open_bucket(config.files_bucket_name, self.files.config.retention_seconds)
        if self.checkpoints.every > 0:
            self.checkpoints.bucket = await self._open_bucket(
                config.partial_bucket_name, self.files.config.partial_seconds
            )

    async def _open_bucket(self, name: str, ttl: float) -> Any:
        """Open (or create, with `replicas` copies and `ttl`) an object store bucket, retried until
        `connect_timeout`: a bucket is a stream, whose creation fails while JetStream places its replicas."""
        from nats.js.api import ObjectStoreConfig, StorageType
        from nats.js.errors import BucketNotFoundError

        loop = asyncio.get_running_loop()
        config = self.link.config
        deadline = loop.time() + config.connect_timeout
        while True:
            try:
                try:
                    return await self.link.js.object_store(name)
                except BucketNotFoundError:
                    wanted = ObjectStoreConfig(ttl=ttl, storage=StorageType.FILE, replicas=config.replicas)
                    bucket = await self.link.js.create_object_store(name, config=wanted)
                    log.info("event=files_bucket_created bucket=%s replicas=%d", name, config.replicas)
                    return bucket
            except Exception as error:  # JetStream not ready for it yet: try again until the deadline
                if loop.time() >= deadline:
                    raise ClusterUnavailable(f"cannot open the object store {name}: {error!r}") from None
                log.info("event=bucket_retry bucket=%s error=%r", name, error)
                await asyncio.sleep(CONNECT_RETRY)

    async def _put(self, client: Client, request: StoreFile, path: Path) -> None:
        from nats.js.api import ObjectMeta

        error: str | None = None
        try:
            with path.open("rb") as source:
                info = await asyncio.wait_for(
                    self._bucket.put(request.sha256, source, meta=ObjectMeta(name=request.sha256)),
                    self._move_timeout(request.size, self.link.config.publish_timeout),
                )
            if info.digest != object_digest(request.sha256) or info.size != request.size:
                error = "the object store holds other bytes than the upload's"  # changed on disk?
        except TimeoutError:
            error = "the object store did not take it in time"
        except Exception as failure:  # NATS away, JetStream refused, the disk: refuse the upload
            error = f"{UNREACHABLE}: {failure!r}" if not self.link.connected else f"{failure!r}"
        if error is not None:
            log.warning(
                "conn=%d event=file_share_failed sha256=%s error=%s", client.id, request.sha256, error
            )
        self.link.report(FileShared(client, request, error))
        if error is None:  # the whole file is in the object store: its checkpoint has served
            self.checkpoints.forget(request.reservation.partial)

    async def _fetch(self, sha256: str, size: int) -> None:
        """Bring the object `sha256` into the files folder (at most one fetch per object at a time)."""
        running = self._fetching.get(sha256)
        if running is None:
            running = asyncio.ensure_future(self._fetch_once(sha256, size))
            self._fetching[sha256] = running
            running.add_done_callback(lambda _done: self._fetching.pop(sha256, None))
        await asyncio.shield(running)

    async def _fetch_once(self, sha256: str, size: int) -> None:
        from nats.js.errors import ObjectNotFoundError

        try:
            info = await self._bucket.get_info(sha256)
        except ObjectNotFoundError:
            raise FileRefused(ErrorCode.NO_SUCH_FILE, "the file is no longer in the cluster") from None
        if info.digest != object_digest(sha256) or info.size != size:
            raise FileRefused(ErrorCode.NO_SUCH_FILE, "the cluster holds other bytes under this file's name")
        temporary = self.files.partial_path(FETCH_PREFIX + sha256)
        target = self.files.object_path(sha256)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "wb") as sink:
                # nats-py writes each chunk through the executor and checks the whole SHA-256 at the end.
                # Bounded: an object replaced meanwhile (uploaded again) loses the chunks being read.
                try:
                    await asyncio.wait_for(
                        self._bucket.get(sha256, writeinto=sink),
                        self._move_timeout(size, self.link.config.fetch_timeout),
                    )
                except TimeoutError:
                    raise FileRefused(ErrorCode.HISTORY_UNAVAILABLE, f"{SLOW}: try again") from None
                sink.flush()
                os.fsync(sink.fileno())
            if os.stat(temporary).st_size != size:
                raise FileRefused(ErrorCode.NO_SUCH_FILE, "the cluster's copy of the file is incomplete")
            target.parent.mkdir(mode=FOLDER_MODE, exist_ok=True)
            os.replace(temporary, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def _move_timeout(self, size: int, spare: float) -> float:
        """How long putting or getting `size` bytes may take: `spare` seconds, plus `size` at
        `MIN_MOVE_RATE`."""
        return spare + size / MIN_MOVE_RATE

    # -- Reader threads --------------------------------------------------------------------------------------

    def available(self) -> bool:
        """True while NATS is reachable (an upload is refused at once when it is not)."""
        return self.link.connected

    def share(self, client: Client, request: StoreFile, path: Path) -> bool:
        """Put the finished upload at `path` into the object store, then hand it to the history thread (the
        reader does not wait). False if the ``nats`` thread has stopped (the server is stopping)."""
        work = self._put(client, request, path)
        try:
            asyncio.run_coroutine_threadsafe(work, self.link.loop)
        except RuntimeError:  # the loop is closed
            work.close()
            return False
        return True

    def fetch(self, sha256: str, size: int) -> None:
        """Bring the file into the files folder from the object store; wait at most `fetch_timeout`.
        `FileRefused` (`no_such_file`, or `history_unavailable` while NATS is unreachable) if it cannot."""
        if not self.link.connected:
            raise FileRefused(ErrorCode.HISTORY_UNAVAILABLE, f"{UNREACHABLE}: try again later")
        future = asyncio.run_coroutine_threadsafe(self._fetch(sha256, size), self.link.loop)
        try:
            future.result(self.link.config.fetch_timeout)
        except (TimeoutError, concurrent.futures.TimeoutError):
            # The fetch goes on: a later file_get finds the file in place.
            raise FileRefused(
                ErrorCode.HISTORY_UNAVAILABLE, "the file is still being fetched from the cluster: try again"
            ) from None
        except FileRefused:
            raise
        except Exception as error:  # NATS went away meanwhile, a digest mismatch, the disk
            log.warning("event=file_fetch_failed sha256=%s error=%r", sha256, error)
            if not self.link.connected:
                raise FileRefused(ErrorCode.HISTORY_UNAVAILABLE, f"{UNREACHABLE}: try again later") from None
            raise FileRefused(
                ErrorCode.NO_SUCH_FILE, "the file could not be fetched from the cluster"
            ) from None

    # -- History thread --------------------------------------------------------------------------------------

    def shared(self, _link: Client, request: FileShared) -> None:
        """An upload is in the object store (or is not): check its offer as a single server does and publish
        it to the log as a ``file`` record, or refuse it."""
        client, offer = request.client, request.request
        try:
            if request.error is not None:
                message = f"the file was not shared: {request.error}"
                client.send(error_frame(ErrorCode.HISTORY_UNAVAILABLE, message, offer.ref))
                return
            if client.key is None or client.nick is None:
                return  # the connection ended meanwhile
            try:
                checked = checked_offer(self.messages.hub, self.messages.store, client, offer, self._silenced)
            except HistoryError as error:
                log.error("conn=%d event=file_offer_failed error=%s", client.id, error)
                client.send(
                    error_frame(ErrorCode.HISTORY_UNAVAILABLE, "the offer could not be checked", offer.ref)
                )
                return
            if checked is None:
                return  # answered (a duplicate, the room left, a mute)
            room, _recipient = checked
            record = {
                "k": "file",
                "room_key": room.key if room is not None else None,
                "room": room.name if room is not None else None,
                "to": offer.recipient[0] if offer.recipient is not None else None,
                "to_key": offer.recipient[1] if offer.recipient is not None else None,
                "name": offer.name,
                "size": offer.size,
                "sha256": offer.sha256,
                "upload": offer.upload,
                "cmid": offer.client_msg_id,
            }
            conversation = conversation_key(offer.room_key, offer.recipient and offer.recipient[1])
            msg_id = dedup_id(client.key, conversation, offer.client_msg_id)
            waiting = Sharing(client, offer.ref, offer.client_msg_id, upload=offer.upload)
            self.messages.publish(record, waiting, msg_id)
        finally:
            # The bytes are in the object store (or refused): the local file is a cache from now on, and the
            # quota counts the offer's `files` row once the record is applied.
            offer.reservation.finish()

    def _apply_file(self, seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        """Store a ``file`` record as its offer (every server), and hold its deliveries until the commit."""
        messages, store, hub = self.messages, self.messages.store, self.messages.hub
        ts, nick, key, name, cmid = (record[field] for field in ("ts", "nick", "nick_key", "name", "cmid"))
        size, sha256 = record["size"], record["sha256"]
        room = hub.add_room(record["room_key"], record["room"]) if record["room_key"] is not None else None
        if room is not None:
            store.add_room_message(
                room_key=room.key,
                room=record["room"],
                sender=nick,
                sender_key=key,
                text=name,
                ts=ts,
                action=False,
                client_msg_id=cmid,
                message_id=seq,
            )
        else:
            store.add_direct_message(
                sender=nick,
                sender_key=key,
                recipient=record["to"],
                recipient_key=record["to_key"],
                text=name,
                ts=ts,
                action=False,
                client_msg_id=cmid,
                message_id=seq,
            )
        store.add_file_offer(seq, size, sha256)
        store.save_file(sha256, size, ts, key)
        offered = encode(
            FileOffered(
                id=seq,
                nick=nick,
                name=name,
                size=size,
                sha256=sha256,
                ts=ts,
                room=record["room"],
                to=record["to"],
            )
        )
        sender = waiting.client if waiting is not None else None
        ref = waiting.ref if waiting is not None else None
        done = encode(FileDone(upload=record["upload"], id=seq, ts=ts, client_msg_id=cmid)) if sender else b""
        if room is not None:
            room.last_id = seq
            if sender is not None and room.key not in sender.rooms:  # it left the room meanwhile
                messages.hold(sender, done, ref)
                sender = None
            messages.hold(sender, done, ref, relay=offered, room=room)
            return
        peer = hub.nicks.get(record["to_key"])
        if sender is not None:
            recipients = direct_recipients(sender, peer)
        else:
            recipients = tuple(peer.sessions) if peer is not None else ()
        messages.hold(sender, done, ref, relay=offered, recipients=recipients)
