"""The link to NATS JetStream: the ``nats`` thread, its asyncio loop, the publish pipeline, the log consumer.

`NatsLink` owns one `nats-py` connection, run by an asyncio loop on its own thread (``nats``). Other threads
never touch the connection: they hand work over with `loop.call_soon_threadsafe`.

* `connect()` (on the thread that starts the server) waits, bounded by `connect_timeout`, until NATS answers
  and the log stream exists (created with `replicas` copies and the `duplicate_window` if missing); it raises
  `ClusterUnavailable` with a clear message otherwise, and the server refuses to start.
* `publish(batch)` (history thread, once per batch) queues the batch's records; the loop sends all of them
  without waiting for each acknowledgement (`publish_async`: the pipeline), then waits for the whole batch
  (bounded by `publish_timeout`). A record whose acknowledgement says *duplicate* (its `Nats-Msg-Id` is
  already in the stream) or that failed is reported back to the history thread as a `Published` request;
  a stored record needs no report: it comes back through the consumer like every other server's.
* `follow(after, deliver)` starts an ordered consumer on the log from sequence `after + 1`; the records it
  receives are handed to the history thread (`deliver`) as `Replicated` requests, in stream order, one
  request per burst of records.

Nothing here blocks the history thread: `publish` appends to a deque and wakes the loop at most once per
batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from .config import ClusterConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between two tries to reach JetStream at start (while its leader is elected).
CONNECT_RETRY = 0.2
#: Seconds `stop()` waits for the loop to close the connection.
STOP_WAIT = 1.0
#: Seconds `nats-py` waits between reconnect attempts to one server while NATS is down.
RECONNECT_WAIT = 0.5
#: Seconds between the log consumer's heartbeats: two missed ones and `nats-py` starts a new consumer at the
#: next sequence (after NATS restarted, or lost the node that held the consumer).
CONSUMER_HEARTBEAT = 1.0


class ClusterUnavailable(Exception):
    """NATS (or JetStream) could not be reached or set up: the server cannot run in cluster mode."""


@dataclass(frozen=True, slots=True)
class Outbound:
    """One record for the log: its payload, its de-duplication id (or None), and the origin's token."""

    token: int
    payload: bytes
    msg_id: str | None


@dataclass(frozen=True, slots=True)
class Replicated:
    """Internal request (NATS thread -> history thread): records of the log in stream order."""

    records: list[tuple[int, bytes]]
    #: The consumer that read them (`NatsLink.generation`): records of a replaced consumer are ignored.
    generation: int = 0


@dataclass(frozen=True, slots=True)
class Published:
    """Internal request (NATS thread -> history thread): publishes the consumer will not report.

    Each outcome is (token, sequence, error): a duplicate has the original's sequence and no error; a
    failure has sequence 0 and the reason."""

    outcomes: list[tuple[int, int, str | None]]


class NatsLink:
    """The NATS connection on its own thread (``nats``) with its asyncio loop."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="nats", daemon=True)
        self._nc: Any = None
        self._js: Any = None
        self._outbound: deque[list[Outbound]] = deque()
        self._wake_pending = False
        self._wake = asyncio.Event()  # set (on the loop) when `_outbound` has batches
        self._settling: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._deliver: Callable[[Any], bool] | None = None
        self._inbound: list[tuple[int, bytes]] = []
        self._handing_over = False
        self._reading = 0  # the generation of the consumer the loop reads from
        self._stopping = False  # set by `closing()`: hand nothing more to the history thread
        self._closed = False
        self._last_error: Exception | None = None  # what nats-py last reported (named if start fails)
        #: True while the connection to NATS is up (written by the loop; read by any thread).
        self.connected = False
        #: When it last came up (`time.monotonic()`; written by the loop).
        self.connected_since = 0.0
        #: The stream's last sequence when the server started (read by the history thread at start).
        self.last_seq = 0
        #: How many messages the stream held then.
        self.stream_messages = 0
        #: This process's id: in the records it publishes and in the servers bucket (new at every start).
        self.origin = secrets.token_hex(8)
        #: The other servers' client addresses (``HOST:PORT``), as the servers bucket last said: replaced
        #: whole by the loop (one assignment), read by the history thread for `welcome.servers`.
        self.peers: tuple[str, ...] = ()
        self._known: dict[str, str] = {}  # the other servers by their id (loop only)
        self._servers: Any = None  # the servers bucket (a nats-py KeyValue), once `announce` ran
        self._announced = False
        #: Which consumer is current: `refollow` (history thread) starts a new one.
        self.generation = 0
        self._subscription: Any = None

    # -- Life cycle (the starting thread) ------------------------------------------------------------------

    def connect(self) -> None:
        """Start the thread, connect, and make sure the log stream exists; `ClusterUnavailable` if not."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._connect(), self._loop)
        try:
            future.result(self.config.connect_timeout + 1.0)
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            self.stop()
            raise ClusterUnavailable(
                f"cannot reach NATS JetStream at {', '.join(self.config.urls)} within"
                f" {self.config.connect_timeout:g} s"
            ) from None
        except ClusterUnavailable:
            self.stop()
            raise
        except Exception as error:  # anything nats-py raises: a bad URL, TLS, credentials
            self.stop()
            raise ClusterUnavailable(f"cannot use NATS at {', '.join(self.config.urls)}: {error}") from None

    def follow(self, after: int, deliver: Callable[[Any], bool]) -> None:
        """Deliver the log's records after sequence `after` (and every later one) to `deliver`, in order.

        `deliver` queues a request for the history thread; it returns False when the queue stayed full
        (it is called again) or the server is stopping."""
        self._deliver = deliver
        future = asyncio.run_coroutine_threadsafe(self._follow(after), self._loop)
        try:
            future.result(self.config.connect_timeout + 1.0)
        except Exception as error:
            raise ClusterUnavailable(f"cannot follow the stream {self.config.stream}: {error}") from None

    def announce(self, address: str | None) -> None:
        """Join the servers bucket: put this server's client address there (empty if None) and keep it fresh
        every third of `server_lease`, reading the others' addresses into `peers` each time (starting
        thread, once the server listens). `ClusterUnavailable` if the bucket cannot be reached."""
        future = asyncio.run_coroutine_threadsafe(self._start_announcing(address), self._loop)
        try:
            future.result(2 * self.config.connect_timeout + 1.0)  # the bucket, then its first write
        except Exception as error:
            raise ClusterUnavailable(f"cannot use the servers bucket: {error!r}") from None

    async def _start_announcing(self, address: str | None) -> None:
        self._servers = await self.key_value("servers", ttl=self.config.server_lease)
        deadline = self._loop.time() + self.config.connect_timeout
        while True:  # the first write, retried as the bucket's opening is (a leader change meanwhile)
            try:
                await self._refresh(address)
                break
            except Exception as error:
                if self._loop.time() >= deadline:
                    raise
                log.info("event=servers_retry error=%r", error)
                await asyncio.sleep(CONNECT_RETRY)
        self._tasks.append(self._loop.create_task(self._keep_announcing(address)))
        watcher = await self._servers.watchall()
        self._tasks.append(self._loop.create_task(self._watch_servers(watcher)))

    async def _watch_servers(self, watcher: Any) -> None:
        """Follow the servers bucket as it changes: a server that starts or stops is known at once (one
        that died unannounced goes at the next `_refresh` after its lease ran out)."""
        async for entry in watcher:
            if entry is None or entry.key == self.origin:
                continue
            known = dict(self._known)
            if entry.operation is None:
                known[entry.key] = entry.value.decode() if entry.value else ""
            else:
                known.pop(entry.key, None)  # deleted or purged
            self._set_peers(known)

    def _set_peers(self, known: dict[str, str]) -> None:
        self._known = known
        self.peers = tuple(sorted({address for address in known.values() if address}))

    async def _keep_announcing(self, address: str | None) -> None:
        while True:
            await asyncio.sleep(self.config.server_lease / 3)  # the refresh period of the lease
            try:
                await self._refresh(address)
            except Exception as error:  # NATS away for a moment: the next round tries again
                log.warning("event=servers_refresh_failed error=%r", error)

    async def _refresh(self, address: str | None) -> None:
        from nats.js.errors import KeyNotFoundError

        # Every server has its entry (the proof that it is alive: chat_server.cluster.presence), empty when
        # it announces no address.
        await self._servers.put(self.origin, (address or "").encode())
        self._announced = True
        keys = await self.alive_servers()
        found: dict[str, str] = {}
        for key in keys:
            if key == self.origin:
                continue
            try:
                entry = await self._servers.get(key)
            except KeyNotFoundError:  # deleted meanwhile (its server stopped)
                continue
            found[key] = entry.value.decode() if entry.value else ""
        self._set_peers(found)

    async def alive_servers(self) -> set[str]:
        """The ids (origins) of the servers alive now, this one included: those whose entry in the servers
        bucket has not expired (loop only; read afresh from the bucket)."""
        from nats.js.errors import NoKeysError

        if self._servers is None:
            return {self.origin}
        try:
            return set(await self._servers.keys())
        except NoKeysError:
            return set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The ``nats`` thread's loop (for `asyncio.run_coroutine_threadsafe` from other threads)."""
        return self._loop

    @property
    def js(self) -> Any:
        """The JetStream context (loop only)."""
        return self._js

    def keep(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task of the loop until the link stops (loop only)."""
        self._tasks.append(self._loop.create_task(work))

    def report(self, request: object) -> bool:
        """Hand an internal request to the history thread, waiting while its queue is full (loop only)."""
        self._report(request)
        return True

    def run(self, work: Callable[[Any], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
        """Run `work(jetstream)` on the loop and wait for its result (the calling thread blocks: for
        commands such as the migration, never for the history thread)."""
        return asyncio.run_coroutine_threadsafe(work(self._js), self._loop).result(timeout)

    def refollow(self, after: int) -> None:
        """Replace the consumer by one starting after `after` (history thread, after a failed local write:
        the records not applied come again). Records the old consumer still hands over are ignored."""
        self.generation += 1
        generation = self.generation
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._refollow(after, generation)))

    async def _refollow(self, after: int, generation: int) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as error:
                log.warning("event=nats_unsubscribe_failed error=%r", error)
        self._inbound = []
        self._reading = generation
        await self._follow(after)

    def closing(self) -> None:
        """The server is stopping: hand nothing more to the history thread (before it stops)."""
        self._stopping = True

    def stop(self) -> None:
        """Close the connection and end the thread (bounded by `STOP_WAIT`)."""
        if self._closed:
            return
        self._closed = self._stopping = True
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        try:
            future.result(STOP_WAIT)
        except Exception:
            log.warning("event=nats_close_slow")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_WAIT)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            leftover = asyncio.all_tasks(self._loop)  # nats-py's own (heartbeat checks): end them quietly
            for task in leftover:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        finally:
            self._loop.close()

    # -- Publishing (history thread -> loop) ---------------------------------------------------------------

    def publish(self, batch: list[Outbound]) -> None:
        """Queue a batch of records for the log (history thread); the loop sends them all at once."""
        if self._closed:
            return  # the server is stopping: its clients are being disconnected
        self._outbound.append(batch)
        if not self._wake_pending:
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (stopping)
                self._loop.call_soon_threadsafe(self._wake.set)

    async def _publisher(self) -> None:
        """The one task that sends records, batch after batch, so the stream has them in the order the
        history thread queued them (a sender's messages stay in order); their acknowledgements are
        awaited by another task per batch."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._wake_pending = False  # first: a batch queued from now on wakes this task again
            while self._outbound:
                batch = self._outbound.popleft()
                if not self.connected:
                    self._report(Published([(item.token, 0, "NATS is unreachable") for item in batch]))
                    continue
                futures, failed = await self._send(batch)
                task = self._loop.create_task(self._settle(futures, failed))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)

    async def _send(
        self, batch: list[Outbound]
    ) -> tuple[dict[asyncio.Future[Any], int], list[tuple[int, int, str | None]]]:
        subject = self.config.log_subject
        futures: dict[asyncio.Future[Any], int] = {}
        failed: list[tuple[int, int, str | None]] = []
        for item in batch:
            headers = {"Nats-Msg-Id": item.msg_id} if item.msg_id is not None else None
            try:
                future = await self._js.publish_async(
                    subject, item.payload, headers=headers, wait_stall=self.config.publish_timeout
                )
            except Exception as error:
                failed.append((item.token, 0, f"NATS refused the message: {error}"))
                continue
            futures[future] = item.token
        return futures, failed

    async def _settle(
        self, futures: dict[asyncio.Future[Any], int], outcomes: list[tuple[int, int, str | None]]
    ) -> None:
        """Wait for a batch's acknowledgements together; report duplicates and failures."""
        if futures:
            done, pending = await asyncio.wait(futures, timeout=self.config.publish_timeout)
            for future in pending:
                future.cancel()
                outcomes.append((futures[future], 0, "JetStream did not acknowledge the message in time"))
            for future in done:
                refusal = future.exception()
                if refusal is not None:
                    outcomes.append((futures[future], 0, f"JetStream refused the message: {refusal}"))
                elif future.result().duplicate:
                    outcomes.append((futures[future], future.result().seq, None))
        if outcomes:
            self._report(Published(outcomes))

    def _report(self, request: object) -> None:
        """Hand `request` to the history thread, waiting while its queue is full (holds the loop back)."""
        assert self._deliver is not None
        while not self._deliver(request):
            if self._stopping:
                return

    # -- Loop side -----------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        import nats  # the optional 'cluster' extra: imported only in cluster mode

        config = self.config
        options: dict[str, Any] = {
            "servers": list(config.urls),
            "name": "mpchat-server",
            "connect_timeout": max(1, round(config.connect_timeout / 2)),
            "max_reconnect_attempts": -1,  # keep trying while running: the server recovers by itself
            "reconnect_time_wait": RECONNECT_WAIT,
            "disconnected_cb": self._disconnected,
            "reconnected_cb": self._reconnected,
            "error_cb": self._error,
        }
        if config.credentials is not None:
            options["user_credentials"] = str(config.credentials)
        if config.tls_ca is not None:
            context = ssl.create_default_context(cafile=str(config.tls_ca))
            if config.tls_cert is not None and config.tls_key is not None:
                context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
            options["tls"] = context
        deadline = self._loop.time() + config.connect_timeout  # for the connection and the stream together
        try:
            self._nc = await asyncio.wait_for(nats.connect(**options), config.connect_timeout)
        except TimeoutError:
            # nats-py keeps trying; what it last reported says why (refused, TLS, authorization...)
            why = f" (the last error: {_said(self._last_error)})" if self._last_error is not None else ""
            raise ClusterUnavailable(
                f"cannot reach NATS at {', '.join(config.urls)} within {config.connect_timeout:g} s{why}"
            ) from None
        self.connected = True
        self.connected_since = time.monotonic()
        self._js = self._nc.jetstream(
            timeout=config.publish_timeout, publish_async_max_pending=config.max_in_flight
        )
        await self._ensure_stream(deadline)
        self._tasks.append(self._loop.create_task(self._publisher()))

    async def key_value(self, name: str, *, ttl: float) -> Any:
        """The key-value bucket `bucket_prefix`-`name` (created with `replicas` copies and entries that
        expire after `ttl` seconds if it does not exist yet), once it answers, retried until
        `connect_timeout`. A bucket is a stream: creating it fails while JetStream places its replicas, and
        a new one takes no write ("no responders") until its own leader is elected, which can be after its
        creation returned: the bucket is returned once its stream names a leader."""
        from nats.js.api import KeyValueConfig
        from nats.js.errors import BucketNotFoundError

        bucket = f"{self.config.bucket_prefix}-{name}"
        deadline = self._loop.time() + self.config.connect_timeout
        while True:
            try:
                try:
                    kv = await self._js.key_value(bucket)
                except BucketNotFoundError:
                    wanted = KeyValueConfig(bucket=bucket, ttl=ttl, replicas=self.config.replicas)
                    kv = await self._js.create_key_value(wanted)
                info = await self._js.stream_info(f"KV_{bucket}")
                if info.cluster is None or info.cluster.leader:  # one NATS server, or a leader elected
                    return kv
                error: Exception = RuntimeError(f"the bucket {bucket} has no leader yet")
            except Exception as failed:  # JetStream not ready for it yet: try again until the deadline
                error = failed
            if self._loop.time() >= deadline:
                raise ClusterUnavailable(f"cannot open the bucket {bucket}: {error!r}") from None
            log.info("event=bucket_retry bucket=%s error=%r", bucket, error)
            await asyncio.sleep(CONNECT_RETRY)

    async def _ensure_stream(self, deadline: float) -> None:
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        config = self.config
        wanted = StreamConfig(
            name=config.stream,
            subjects=[config.log_subject],
            num_replicas=config.replicas,
            duplicate_window=config.duplicate_window,
            storage=StorageType.FILE,
        )
        last: BaseException | None = None
        while self._loop.time() < deadline:
            try:
                try:
                    info = await self._js.stream_info(config.stream)
                except NotFoundError:
                    info = await self._js.add_stream(wanted)
                    log.info("event=stream_created stream=%s replicas=%d", config.stream, config.replicas)
                self.last_seq = info.state.last_seq
                self.stream_messages = info.state.messages
                return
            except Exception as error:  # JetStream not ready yet (no leader): try again until the deadline
                last = error
                await asyncio.sleep(CONNECT_RETRY)
        raise ClusterUnavailable(f"JetStream at {', '.join(config.urls)} is not ready: {last!r}")

    async def _follow(self, after: int) -> None:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
        self._subscription = await self._js.subscribe(
            self.config.log_subject,
            stream=self.config.stream,
            cb=self._received,
            ordered_consumer=True,
            idle_heartbeat=CONSUMER_HEARTBEAT,
            config=config,
        )

    async def _received(self, message: Any) -> None:
        self._inbound.append((message.metadata.sequence.stream, message.data))
        if not self._handing_over:
            self._handing_over = True
            self._loop.call_soon(self._hand_over)  # after the burst of messages already received

    def _hand_over(self) -> None:
        self._handing_over = False
        records, self._inbound = self._inbound, []
        if records:
            self._report(Replicated(records, self._reading))

    async def _close(self) -> None:
        for task in [*self._tasks, *self._settling]:
            task.cancel()
        if self._announced:  # a clean stop: no longer announced, at once
            try:
                await asyncio.wait_for(self._servers.delete(self.origin), STOP_WAIT / 3)
            except Exception as error:
                log.warning("event=servers_leave_failed error=%r", error)
        if self._nc is not None:
            try:
                await asyncio.wait_for(self._nc.close(), STOP_WAIT / 2)
            except Exception:
                log.warning("event=nats_close_failed")

    async def _disconnected(self) -> None:
        if self.connected and not self._stopping:
            log.warning("event=nats_disconnected (writes are refused until it is back)")
        self.connected = False

    async def _reconnected(self) -> None:
        self.connected = True
        self.connected_since = time.monotonic()
        log.info("event=nats_reconnected")

    async def _error(self, error: Exception) -> None:
        if self._last_error is None or _telling(error) >= _telling(self._last_error):
            self._last_error = error  # a reset after NATS said why it refused does not hide the why
        if not self._stopping:
            log.warning("event=nats_error error=%r", error)


def _said(error: BaseException) -> str:
    """An error as one line for a person: its message, or its kind when it has none."""
    return str(error).strip() or type(error).__name__


def _telling(error: BaseException) -> int:
    """How much an error says of why NATS refused us: its own answer (authorization...) most, then TLS, then
    a connection reset or refused, which follows either."""
    if isinstance(error, ssl.SSLError):
        return 1
    if isinstance(error, OSError):
        return 0
    return 2
