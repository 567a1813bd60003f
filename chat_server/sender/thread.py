"""The sender thread: the one thread that writes to client sockets.

Every connection's sending side is a `Channel`: its `Outbox` (frames queued by the history thread and the
reader), a non-blocking socket, and what the kernel has not taken yet (`unsent`). One thread serves them all:

1. A producer appends a frame to an outbox. When the outbox goes from empty to non-empty, the outbox calls
   `Sender.mark(channel)`: the channel goes on the ready queue (a `deque` append, atomic under the GIL).
2. The sender is woken with one byte on a socket pair, and only when it is not already awake. The history
   thread does not even do that per recipient: it calls `Sender.wake()` once at the end of each batch, so a
   message fanned out to 500 members costs 500 appends and at most one wake-up (docs/performance.md).
3. For each ready channel the sender takes *everything* queued, joins it to what was left over, and makes one
   `send`. What the kernel does not take stays in `unsent`, and the socket is watched for writability
   (`selectors`, epoll on Linux) until it drains; meanwhile new frames just wait in the outbox.
   File chunks (the outbox's bulk lane) go one per `send`, after the chat frames queued before it.

So a slow client never blocks anyone: its socket is non-blocking, its backlog is its own outbox (bounded by
the soft and hard limits), and the sender enforces the write deadline: no progress for `write_timeout` seconds
while bytes are pending closes the connection, as does an outbox over its soft limit for too long.

A TLS channel differs in one step: the sender encrypts what it took (`TlsPump.encrypt`, under that
connection's TLS lock, a memory-to-memory copy) and writes the ciphertext the same way, keeping the unsent
rest. The outbox is credited with the plaintext bytes in proportion to the ciphertext written, so the send
queue limits count what the client has not received yet, encrypted or not. At the end a TLS channel writes
its close_notify after the last frame.

The sender never holds a lock while it writes (it takes the outbox's lock only to swap the frame list), and it
is the only thread that touches a channel's socket until it sets `Channel.done`; the reader closes the socket
only after that.
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

from chat_server.latch import Latch
from chat_server.metrics import Tally
from chat_server.tls import TlsPump

from .outbox import Outbox

log = logging.getLogger(__name__)
#: Frames written are traced on the same logger as frames read (`--trace`).
trace = logging.getLogger("chat_server.trace")

#: Longest the sender sleeps with nothing to do (every wait is bounded; an idle server wakes once a minute).
IDLE_WAIT = 60.0

#: `Connection.close`: (last frame, abort, reason).
CloseCallback = Callable[[bytes | None, bool, str | None], None]


class Channel:
    """The sending side of one connection. Its fields after `outbox` belong to the sender thread."""

    __slots__ = (
        "close",
        "conn_id",
        "credit",
        "done",
        "encrypted",
        "held",
        "outbox",
        "overflow",
        "released",
        "since",
        "sock",
        "tls",
        "unsent",
        "watched",
    )

    def __init__(
        self,
        conn_id: int,
        outbox: Outbox,
        sock: socket.socket,
        close: CloseCallback,
        overflow: bytes,
        tls: TlsPump | None = None,
    ):
        self.conn_id = conn_id
        self.outbox = outbox
        self.sock = sock
        self.close = close
        self.overflow = overflow
        #: Set by the sender once it will never touch `sock` again (all written, failed, or released).
        self.done = Latch()
        #: Set by the reader (via `Sender.release`): stop writing, whatever is left.
        self.released = False
        #: Plaintext: the rest of the one frame the kernel took only part of (never more than one frame, so a
        #: dropped client's error frame follows at once). TLS: the ciphertext the kernel has not taken.
        self.unsent: bytes | memoryview = b""
        #: Whole frames taken from the outbox that the kernel has not begun yet (plaintext only); sent next.
        self.held: list[bytes] = []
        self.watched = False  # registered for writability: the kernel buffer was full
        self.since = 0.0  # last progress while bytes were pending (the write deadline counts from here)
        #: The connection's TLS, until its close_notify is queued (then None); `encrypted` stays True.
        self.tls = tls
        self.encrypted = tls is not None
        #: Plaintext bytes whose ciphertext is in `unsent` (TLS only): credited to the outbox as it goes.
        self.credit = 0


class Sender:
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
        outbox: Outbox,
        sock: socket.socket,
        close: CloseCallback,
        overflow: bytes,
        tls: TlsPump | None = None,
    ) -> Channel:
        """Serve `outbox` on `sock` (which the sender makes non-blocking) from now on, through `tls` if given.

        Frames queued before the attach are picked up: the channel is marked ready if there are any.
        """
        sock.setblocking(False)
        channel = Channel(conn_id, outbox, sock, close, overflow, tls)
        outbox.on_ready = lambda: self.mark(channel)
        if outbox.queued or outbox.closed:
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
        deadlines += [d for channel in self._watched if (d := channel.outbox.soft_deadline()) is not None]
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
            elif channel.outbox.overdue():
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
        outbox = channel.outbox
        while True:
            frames = outbox.take()
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
                    outbox.written(sent)
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
            if not outbox.closed:
                if outbox.has_bulk:
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
        """The held frames followed by the newly taken ones, or, once the outbox is aborted (the client is
        being dropped), the new ones only: the held frames are discarded, and credited as gone."""
        held, channel.held = channel.held, []
        if channel.outbox.aborted:
            channel.outbox.written(sum(map(len, held)))
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
            channel.outbox.written(credit)

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
