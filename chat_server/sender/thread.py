"""The sender thread: the one thread that writes to client sockets.

Every connection's sending side is a `Channel`: its `SendQueue` (frames queued by the history thread and the
reader), a non-blocking socket, and what the kernel has not taken yet (`unsent`). One thread serves them all:

1. A producer appends a frame to a send queue. When the send queue goes from empty to non-empty, the send
   queue calls `SenderThread.mark(channel)`: the channel goes on the ready queue (a `deque` append, atomic
   under the GIL).
2. The sender is woken with one byte on a socket pair, and only when it is not already awake. The history
   thread does not even do that per recipient: it calls `SenderThread.wake()` once at the end of each batch,
   so a message fanned out to 500 members costs 500 appends and at most one wake-up (docs/performance.md).
3. For each ready channel the sender takes *everything* queued, joins it to what was left over, and makes one
   `send`. What the kernel does not take stays in `unsent`, and the socket is watched for writability
   (`selectors`, epoll on Linux) until it drains; meanwhile new frames just wait in the sendq.
   File chunks (the send queue's bulk lane) go one per `send`, after the chat frames queued before it.

So a slow client never blocks anyone: its socket is non-blocking, its backlog is its own send queue (bounded
by the soft and hard limits), and the sender enforces the write deadline: no progress for `write_timeout`
seconds while bytes are pending closes the connection, as does a send queue over its soft limit for too long.

A TLS channel differs in one step: the sender encrypts what it took (`TlsPump.encrypt`, under that
connection's TLS lock, a memory-to-memory copy) and writes the ciphertext the same way, keeping the unsent
rest. The send queue is credited with the plaintext bytes in proportion to the ciphertext written, so the send
queue limits count what the client has not received yet, encrypted or not. At the end a TLS channel writes
its close_notify after the last frame.

The sender never holds a lock while it writes (it takes the send queue's lock only to swap the frame list),
and it is the only thread that touches a channel's socket until it sets `Channel.done`; the reader closes the
socket only after that.

The send queue (`SendQueue`): each connection's frames waiting for the sender, counted in bytes
-----------------------------------------------------------------------------------------------
Many threads put frames in (the history thread fans out room messages, the reader thread answers pings and
refusals); one thread, the sender, takes them out. It takes *everything* pending
at once and writes it with a single `send`, so a busy connection costs one system call per batch rather than
one per message.

When the queue goes from empty to non-empty (and when it is closed) the send queue calls `on_ready`, which
puts the connection on the sender's ready queue. Later frames only append: nobody is woken per frame.

The queue is bounded in bytes, not in frames, because memory is what a slow reader costs us:

* above `hard` bytes the connection is over its limit at once;
* above `soft` bytes for longer than `soft_seconds` it is over its limit too.

What the kernel holds besides (its send buffer) is bounded by the server's `send_buffer` setting, not counted
here: docs/architecture.md gives the total a client may cost.

`put` reports "over the limit" by returning False; the caller then disconnects that client with
`sendq_exceeded`. Bytes the sender has taken still count until it reports them written, so the memory held
for one client never exceeds `hard` plus one batch.

The bulk lane (file downloads): `put_bulk` queues a `file_data` frame in a second, short queue of at most
`bulk_limit` frames. `take` returns every chat frame first and then at most *one* bulk frame, so a chat frame
never waits behind more than one chunk in this queue, however large the download. While bulk frames are in
flight both limits grow by the lane's own bound (`bulk_room`: its frames plus the one being written), so a
client is never dropped for `sendq_exceeded` just because it is downloading; its chat frames keep exactly the
headroom a chat-only client has.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import msgpack

from chat_server.metrics import Tally
from chat_server.tls import TlsPump
from chat_server.tuning import Latch

log = logging.getLogger(__name__)
#: Frames written are traced on the same logger as frames read (`--trace`).
trace = logging.getLogger("chat_server.trace")

#: Longest the sender sleeps with nothing to do (every wait is bounded; an idle server wakes once a minute).
IDLE_WAIT = 60.0

#: `Connection.close`: (last frame, abort, reason).
CloseCallback = Callable[[bytes | None, bool, str | None], None]


class SendQueue:
    """A bounded, byte-counted queue of frames with one consumer (the sender thread)."""

    # One per connection: slots keep it small (docs/performance.md, W3 memory).
    __slots__ = (
        "_aborted",
        "_bulk",
        "_clock",
        "_closed",
        "_frames",
        "_hard_limit",
        "_lock",
        "_over_soft_since",
        "_overflowed",
        "_queued",
        "_soft_limit",
        "_taken",
        "bulk_limit",
        "bulk_room",
        "hard",
        "on_ready",
        "sent",
        "soft",
        "soft_seconds",
    )

    def __init__(
        self,
        *,
        soft: int,
        hard: int,
        soft_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        bulk_limit: int = 0,
        bulk_frame: int = 0,
    ) -> None:
        self.soft = soft
        self.hard = hard
        self.soft_seconds = soft_seconds
        #: Bulk frames that may wait at once (`put_bulk` refuses more), and the largest one's size.
        self.bulk_limit = bulk_limit
        self.bulk_room = (bulk_limit + 1) * bulk_frame
        # The limits in force: soft and hard, plus `bulk_room` while bulk frames are in flight.
        self._soft_limit = soft
        self._hard_limit = hard
        #: Called (outside the lock) on empty -> non-empty and on close; set by `SenderThread.attach`.
        self.on_ready: Callable[[], None] | None = None
        self._clock = clock
        self._lock = threading.Lock()  # a plain lock: the consumer never waits on it, it is woken by on_ready
        self._frames: list[bytes] = []
        self._bulk: deque[bytes] = deque()
        self._queued = 0  # bytes in _frames plus bytes taken but not yet reported written
        self._over_soft_since: float | None = None
        self._closed = False  # no more frames accepted; the sender finishes once everything is written
        self._aborted = False  # closed by `abort`: frames the sender took but has not begun are dropped too
        self._overflowed = False
        #: Chat frames taken by the sender (or dropped by `abort`) so far: counted per batch in `take`, so a
        #: frame numbered by `put_numbered` has begun to be written once this reaches its number.
        self._taken = 0
        #: Bytes written to the client so far (for /stats NICK; counted in `written`, once per send).
        self.sent = 0

    @property
    def queued(self) -> int:
        """Bytes waiting to be written, including the batch the sender is writing now."""
        return self._queued

    @property
    def closed(self) -> bool:
        """True once `close` or `abort` was called."""
        return self._closed

    @property
    def aborted(self) -> bool:
        """True once `abort` was called: the sender drops the whole frames it holds, and sends only `last`."""
        return self._aborted

    def put(self, data: bytes) -> bool:
        """Queue one frame; return False if the queue is now over its limit (the caller disconnects)."""
        with self._lock:
            if self._closed:
                return True  # the connection is going away; nothing to deliver, nothing to report
            self._frames.append(data)
            self._queued += len(data)
            first = len(self._frames) == 1
            within = self._queued <= self._soft_limit or self._check_over_soft()
        if first and self.on_ready is not None:
            self.on_ready()
        return within

    def put_numbered(self, data: bytes) -> tuple[bool, int]:
        """`put`, and the frame's number: the sender has begun writing it once `taken` reaches it (the
        upload window counts a connection's unsent `file_progress` frames this way)."""
        with self._lock:
            if self._closed:
                return True, 0
            self._frames.append(data)
            self._queued += len(data)
            number = self._taken + len(self._frames)
            first = len(self._frames) == 1
            within = self._queued <= self._soft_limit or self._check_over_soft()
        if first and self.on_ready is not None:
            self.on_ready()
        return within, number

    @property
    def taken(self) -> int:
        """How many chat frames the sender has taken to write (or `abort` dropped) so far."""
        return self._taken

    def put_many(self, frames: list[bytes]) -> bool:
        """Queue several frames at once (one lock, at most one `on_ready`); False if now over the limit."""
        with self._lock:
            if self._closed:
                return True
            first = not self._frames
            self._frames += frames
            self._queued += sum(map(len, frames))
            within = self._queued <= self._soft_limit or self._check_over_soft()
        if first and self.on_ready is not None:
            self.on_ready()
        return within

    def put_bulk(self, data: bytes) -> bool:
        """Queue one bulk frame (a file chunk); False if the lane holds `bulk_limit` frames already."""
        with self._lock:
            if self._closed:
                return True
            if len(self._bulk) >= self.bulk_limit:
                return False
            first = not self._frames and not self._bulk
            self._bulk.append(data)
            self._queued += len(data)
            self._soft_limit = self.soft + self.bulk_room
            self._hard_limit = self.hard + self.bulk_room
        if first and self.on_ready is not None:
            self.on_ready()
        return True

    def bulk_full(self) -> bool:
        """True if `put_bulk` would refuse a frame now."""
        return len(self._bulk) >= self.bulk_limit

    @property
    def has_bulk(self) -> bool:
        """True if bulk frames wait (the sender writes them one per `take`)."""
        return bool(self._bulk)

    def overdue(self) -> bool:
        """True if the queue has been over its soft limit for too long (checked by the sender's timer)."""
        with self._lock:
            return self._queued > self._soft_limit and not self._check_over_soft()

    def soft_deadline(self) -> float | None:
        """When `overdue()` turns true if nothing is written meanwhile; None if not over the soft limit."""
        since = self._over_soft_since
        if since is None or self._closed or self._queued <= self._soft_limit:
            return None
        return since + self.soft_seconds

    def _check_over_soft(self) -> bool:
        now = self._clock()
        if self._queued > self._hard_limit:
            self._overflowed = True
        elif self._over_soft_since is None:
            self._over_soft_since = now
        elif now - self._over_soft_since > self.soft_seconds:
            self._overflowed = True
        return not self._overflowed

    def take(self) -> list[bytes] | None:
        """Every chat frame queued, then at most one bulk frame (never waits): [] if nothing is queued,
        None once closed and empty."""
        with self._lock:
            frames = self._frames
            if frames:
                self._frames = []
                self._taken += len(frames)
                if self._bulk:
                    frames.append(self._bulk.popleft())
                return frames
            if self._bulk:
                return [self._bulk.popleft()]
            return None if self._closed else []

    def written(self, count: int) -> None:
        """The sender reports that `count` bytes it took have been written."""
        with self._lock:
            self._queued -= count
            self.sent += count
            if self._queued <= self._soft_limit:
                self._over_soft_since = None
                if not self._queued and self._hard_limit != self.hard:
                    self._soft_limit, self._hard_limit = self.soft, self.hard  # no bulk frame in flight

    def close(self, last: bytes | None = None) -> None:
        """Accept no more frames after `last`; the sender writes what is queued, then finishes."""
        with self._lock:
            if self._closed:
                return
            # File chunks still waiting are of no use to a closing connection, and nothing may follow `last`.
            self._queued -= sum(len(frame) for frame in self._bulk)
            self._bulk.clear()
            if last is not None:
                self._frames.append(last)
                self._queued += len(last)
            self._closed = True
        if self.on_ready is not None:
            self.on_ready()

    def abort(self, last: bytes | None = None) -> None:
        """Drop everything not yet taken, queue only `last`, and close (used when a client is dropped)."""
        with self._lock:
            dropped = sum(len(frame) for frame in self._frames) + sum(len(frame) for frame in self._bulk)
            self._queued -= dropped
            self._taken += len(self._frames)
            self._bulk.clear()
            self._frames = [] if last is None else [last]
            self._queued += 0 if last is None else len(last)
            self._closed = True
            self._aborted = True
        if self.on_ready is not None:
            self.on_ready()


class Channel:
    """The sending side of one connection. Its fields after `sendq` belong to the sender thread."""

    __slots__ = (
        "close",
        "conn_id",
        "credit",
        "done",
        "encrypted",
        "held",
        "overflow",
        "released",
        "sendq",
        "since",
        "sock",
        "tls",
        "unsent",
        "watched",
    )

    def __init__(
        self,
        conn_id: int,
        sendq: SendQueue,
        sock: socket.socket,
        close: CloseCallback,
        overflow: bytes,
        tls: TlsPump | None = None,
    ):
        self.conn_id = conn_id
        self.sendq = sendq
        self.sock = sock
        self.close = close
        self.overflow = overflow
        #: Set by the sender once it will never touch `sock` again (all written, failed, or released).
        self.done = Latch()
        #: Set by the reader (via `SenderThread.release`): stop writing, whatever is left.
        self.released = False
        #: Plaintext: the rest of the one frame the kernel took only part of (never more than one frame, so a
        #: dropped client's error frame follows at once). TLS: the ciphertext the kernel has not taken.
        self.unsent: bytes | memoryview = b""
        #: Whole frames taken from the send queue that the kernel has not begun yet (plaintext only); sent
        #: next.
        self.held: list[bytes] = []
        self.watched = False  # registered for writability: the kernel buffer was full
        self.since = 0.0  # last progress while bytes were pending (the write deadline counts from here)
        #: The connection's TLS, until its close_notify is queued (then None); `encrypted` stays True.
        self.tls = tls
        self.encrypted = tls is not None
        #: Plaintext bytes whose ciphertext is in `unsent` (TLS only): credited to the send queue as it goes.
        self.credit = 0


class SenderThread:
    """The sender thread, its ready queue and its selector."""

    def __init__(
        self, write_timeout: float, clock: Callable[[], float] = time.monotonic, tally: Tally | None = None
    ) -> None:
        self.write_timeout = write_timeout
        self._clock = clock
        #: The server's counters: the fan-out latency is observed once per round that follows a commit.
        self._tally = tally if tally is not None else Tally()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._ready: deque[Channel] = deque()
        self._awake = False  # a wake-up byte is pending or the sender is about to look at the ready queue
        self._quiet: int | None = None  # the thread that wakes the sender once per batch, not per frame
        self._watched: set[Channel] = set()
        self._again: list[Channel] = []  # channels with more bulk frames: served again next round
        self._stopping = False
        self._trace = trace.isEnabledFor(logging.DEBUG)
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)

    # -- Any thread ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sender thread."""
        self._thread.start()

    def attach(
        self,
        conn_id: int,
        sendq: SendQueue,
        sock: socket.socket,
        close: CloseCallback,
        overflow: bytes,
        tls: TlsPump | None = None,
    ) -> Channel:
        """Serve `sendq` on `sock` (which the sender makes non-blocking) from now on, through `tls` if
        given.

        Frames queued before the attach are picked up: the channel is marked ready if there are any.
        """
        sock.setblocking(False)
        channel = Channel(conn_id, sendq, sock, close, overflow, tls)
        sendq.on_ready = lambda: self.mark(channel)
        if sendq.queued or sendq.closed:
            self.mark(channel)
        return channel

    def mark(self, channel: Channel) -> None:
        """`channel` has something new to send (or was closed): put it on the ready queue, wake the sender."""
        self._ready.append(channel)
        if not self._awake and threading.get_ident() != self._quiet:
            self._signal()

    def batch_on_this_thread(self) -> None:
        """The calling thread (the history thread) calls `wake()` after each batch, so marks do not wake."""
        self._quiet = threading.get_ident()

    def wake(self) -> None:
        """Wake the sender if anything is ready: the history thread's one wake-up per batch."""
        if self._ready and not self._awake:
            self._signal()

    def release(self, channel: Channel) -> None:
        """The reader is closing: stop writing. It waits for `channel.done` before closing the socket."""
        channel.released = True
        self._ready.append(channel)
        self._signal()

    def stop(self, timeout: float) -> None:
        """End the sender thread (after the readers: by then every channel is done)."""
        self._stopping = True
        self._signal()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("event=sender_thread_stuck (still running after %.1f s)", timeout)
            return
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _signal(self) -> None:
        self._awake = True
        # A full wake-up pipe means a wake-up is pending already; a closed one means the server is stopping.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    # -- Sender thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, _events in self._selector.select(self._timeout()):
                    if key.data is not None:
                        self._serve(key.data)  # writable again
                # Drain the wake-up bytes, then clear the flag, then take the queue. In this order a mark
                # that saw the flag set was queued before it was cleared, so it is taken below, and a mark
                # after the clear sends a byte that the next select() sees.
                with contextlib.suppress(BlockingIOError):
                    while self._wake_r.recv(4096):
                        pass
                self._awake = False
                tally = self._tally
                committed, tally.fanout_from = tally.fanout_from, 0.0  # a commit's frames are in this round
                ready = self._ready
                while ready:
                    channel = ready.popleft()
                    if not channel.watched or channel.released:
                        self._serve(channel)  # a watched channel waits for writability instead
                if committed:
                    tally.fanout_seconds.observe(time.monotonic() - committed)
                if self._again:
                    ready.extend(self._again)  # served in the next round (select() does not wait then)
                    self._again.clear()
                if self._watched:
                    self._check_deadlines()
        except Exception:
            log.exception("event=sender_crashed")
        finally:
            for channel in list(self._watched):
                self._drop(channel)

    def _timeout(self) -> float:
        if self._ready:
            return 0.0  # channels with file chunks left are waiting for their next turn
        if not self._watched:
            return IDLE_WAIT
        deadlines = [channel.since + self.write_timeout for channel in self._watched]
        deadlines += [d for channel in self._watched if (d := channel.sendq.soft_deadline()) is not None]
        return max(0.0, min(deadlines) - self._clock())

    def _check_deadlines(self) -> None:
        now = self._clock()
        for channel in list(self._watched):
            if now >= channel.since + self.write_timeout:
                # The deadline measures progress, not writability: the kernel reports a socket writable only
                # once a good part of its buffer is free, which a slow but steady reader may take longer to
                # free than `write_timeout`. So try once more: any byte accepted is progress (and restarts
                # the deadline); a stalled client accepts none.
                self._serve(channel)
                if channel.watched and now >= channel.since + self.write_timeout:
                    log.info("conn=%d event=write_timeout", channel.conn_id)
                    channel.close(None, True, "write timeout")
                    self._drop(channel)
            elif channel.sendq.overdue():
                channel.close(channel.overflow, True, None)

    def _serve(self, channel: Channel) -> None:
        try:
            self._send(channel)
        except Exception:
            # A bug while serving one connection must not stop the output of all the others.
            log.exception("conn=%d event=sender_failed", channel.conn_id)
            channel.close(None, True, "internal error")
            self._drop(channel)

    def _send(self, channel: Channel) -> None:
        """Write what `channel` has pending with one `send`; watch the socket if the kernel takes less."""
        if channel.done.is_set():
            return
        if channel.released:
            self._drop(channel)
            return
        sendq = channel.sendq
        while True:
            # Bytes the kernel did not take last time go first, alone: frames queued meanwhile wait in the
            # send queue until those are written (the upload window counts on it: a frame taken has begun to
            # be written), except when the client is being dropped (held frames give way to its last one).
            finishing = bool(channel.unsent or channel.held) and not sendq.aborted
            frames = [] if finishing else sendq.take()
            if frames and self._trace:
                for frame in frames:
                    trace.debug("conn=%d out %r", channel.conn_id, _decoded(frame))
            if channel.held:
                frames = self._with_held(channel, frames)
            if frames is None and not channel.unsent:
                if channel.tls is not None:
                    # The TLS end of stream goes after the last frame, written like any other bytes.
                    channel.unsent, channel.tls = channel.tls.goodbye(), None
                    if channel.unsent:
                        continue
                self._drop(channel)  # closed and fully written: the peer sees our end of stream next
                return
            # One system call for everything pending: this is where deliveries get cheap under load.
            if channel.tls is not None:
                data = self._encrypt(channel, channel.tls, frames)
            elif not frames:
                data = channel.unsent
            elif not channel.unsent and len(frames) == 1:
                data = frames[0]
            else:
                data = b"".join([channel.unsent, *frames]) if channel.unsent else b"".join(frames)
            if not data:
                return
            try:
                sent = channel.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as error:
                channel.close(None, True, f"write failed: {error.strerror or error}")
                self._drop(channel)
                return
            if sent:
                if channel.encrypted:
                    self._credit(channel, sent, len(data))
                else:
                    sendq.written(sent)
            if sent < len(data):
                if channel.encrypted or not frames:
                    channel.unsent = memoryview(data)[sent:]
                else:
                    self._hold(channel, data, sent, frames)
                if sent or not channel.watched:
                    channel.since = self._clock()
                if not channel.watched:
                    channel.watched = True
                    self._watched.add(channel)
                    self._selector.register(channel.sock, selectors.EVENT_WRITE, channel)
                return
            channel.unsent = b""
            self._unwatch(channel)
            if finishing:
                continue  # now the frames queued meanwhile
            if not sendq.closed:
                if sendq.has_bulk:
                    # More file chunks: this channel's next turn comes after every other ready channel's
                    # (and after a look at the selector), so one download cannot monopolise the sender.
                    self._again.append(channel)
                return
            # Closed: go round once more to send the frames queued meanwhile, or to finish.

    @staticmethod
    def _hold(channel: Channel, data: bytes | memoryview, sent: int, frames: list[bytes]) -> None:
        """The kernel took `sent` bytes of `data` (what was unsent, then `frames`): keep the rest of the frame
        it stopped in as `unsent` and the frames it did not begin as `held` (slow path: a full kernel buffer).
        """
        start = len(data) - sum(map(len, frames))  # where the first of `frames` begins in `data`
        if sent < start:
            channel.unsent = memoryview(data)[sent:start]
            channel.held = frames
            return
        ends = list(accumulate(map(len, frames), initial=start))  # ends[i] = where frames[i] begins
        index = bisect_right(ends, sent) - 1  # the frame the kernel stopped in (or before)
        if sent == ends[index]:
            channel.unsent = b""
            channel.held = frames[index:]
        else:
            channel.unsent = memoryview(frames[index])[sent - ends[index] :]
            channel.held = frames[index + 1 :]

    @staticmethod
    def _with_held(channel: Channel, frames: list[bytes] | None) -> list[bytes] | None:
        """The held frames followed by the newly taken ones, or, once the send queue is aborted (the client is
        being dropped), the new ones only: the held frames are discarded, and credited as gone."""
        held, channel.held = channel.held, []
        if channel.sendq.aborted:
            channel.sendq.written(sum(map(len, held)))
            return frames
        return held + frames if frames else held

    @staticmethod
    def _encrypt(channel: Channel, tls: TlsPump, frames: list[bytes] | None) -> bytes | memoryview:
        """What is left of earlier ciphertext plus the ciphertext of `frames` (and of TLS's own records)."""
        plaintext = b"".join(frames) if frames else b""
        ciphertext = tls.encrypt(plaintext)
        channel.credit += len(plaintext)
        if not ciphertext:
            return channel.unsent
        return b"".join([channel.unsent, ciphertext]) if channel.unsent else ciphertext

    @staticmethod
    def _credit(channel: Channel, sent: int, pending: int) -> None:
        """Report plaintext written in proportion to the ciphertext written (all of it once all is sent)."""
        credit = channel.credit if sent >= pending else channel.credit * sent // pending
        channel.credit -= credit
        if credit:
            channel.sendq.written(credit)

    def _unwatch(self, channel: Channel) -> None:
        if channel.watched:
            channel.watched = False
            self._watched.discard(channel)
            self._selector.unregister(channel.sock)

    def _drop(self, channel: Channel) -> None:
        """Never touch this channel's socket again: shut its sending side and let the reader close it."""
        self._unwatch(channel)
        channel.unsent = b""
        channel.held = []
        with contextlib.suppress(OSError):  # already disconnected
            channel.sock.shutdown(socket.SHUT_WR)
        channel.done.set()


def _decoded(frame: bytes) -> Any:
    try:
        decoded = msgpack.unpackb(frame[4:], raw=False)
    except Exception:  # trace output only: show the raw bytes of anything that does not decode
        return frame
    if isinstance(decoded, dict) and "resume_token" in decoded:
        decoded["resume_token"] = "<secret>"  # a welcome's token is a secret: never in a log
    return decoded
