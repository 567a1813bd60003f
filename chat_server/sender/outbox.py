"""A connection's outbound queue: frames waiting for the sender thread, counted in bytes.

Many threads put frames in (the history thread fans out room messages, the reader thread answers pings and
refusals); one thread, the sender (`chat_server.sender.thread`), takes them out. It takes *everything* pending
at once and writes it with a single `send`, so a busy connection costs one system call per batch rather than
one per message.

When the queue goes from empty to non-empty (and when it is closed) the outbox calls `on_ready`, which puts
the connection on the sender's ready queue. Later frames only append: nobody is woken per frame.

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

import threading
import time
from collections import deque
from collections.abc import Callable


class Outbox:
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
        #: Called (outside the lock) on empty -> non-empty and on close; set by `Sender.attach`.
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
            self._bulk.clear()
            self._frames = [] if last is None else [last]
            self._queued += 0 if last is None else len(last)
            self._closed = True
            self._aborted = True
        if self.on_ready is not None:
            self.on_ready()
