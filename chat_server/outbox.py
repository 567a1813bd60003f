"""A connection's outbound queue: frames waiting for that connection's writer thread, counted in bytes.

Many threads put frames in (the history thread fans out room messages, the reader thread answers pings and
refusals); exactly one thread, the connection's writer, takes them out. The writer takes *everything* that is
pending at once and writes it with a single `sendall`, so a busy connection costs one system call per batch
rather than one per message.

The queue is bounded in bytes, not in frames, because memory is what a slow reader costs us:

* above `hard` bytes the connection is over its limit at once;
* above `soft` bytes for longer than `soft_seconds` it is over its limit too.

`put` reports "over the limit" by returning False; the caller then disconnects that client with
`sendq_exceeded`. Bytes handed to the writer still count until the writer reports them written, so the
memory held for one client never exceeds `hard` plus one frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Outbox:
    """A bounded, byte-counted queue of frames with one consumer (the writer thread)."""

    def __init__(
        self, *, soft: int, hard: int, soft_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.soft = soft
        self.hard = hard
        self.soft_seconds = soft_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._frames: list[bytes] = []
        self._queued = 0  # bytes in _frames plus bytes taken but not yet reported written
        self._over_soft_since: float | None = None
        self._closed = False  # no more frames accepted; the writer stops once _frames is empty
        self._overflowed = False

    @property
    def queued(self) -> int:
        """Bytes waiting to be written, including the batch the writer is writing now."""
        return self._queued

    @property
    def closed(self) -> bool:
        """True once `close` or `abort` was called."""
        return self._closed

    def put(self, data: bytes) -> bool:
        """Queue one frame; return False if the queue is now over its limit (the caller disconnects)."""
        with self._lock:
            if self._closed:
                return True  # the connection is going away; nothing to deliver, nothing to report
            self._frames.append(data)
            self._queued += len(data)
            if len(self._frames) == 1:
                self._ready.notify()  # wake the writer only on empty -> non-empty
            if self._queued > self.soft:
                return self._check_over_soft()
            return True

    def put_many(self, frames: list[bytes]) -> bool:
        """Queue several frames at once (one lock, at most one wake-up); False if now over the limit."""
        with self._lock:
            if self._closed:
                return True
            was_empty = not self._frames
            self._frames += frames
            self._queued += sum(map(len, frames))
            if was_empty:
                self._ready.notify()
            if self._queued > self.soft:
                return self._check_over_soft()
            return True

    def overdue(self) -> bool:
        """True if the queue has been over its soft limit for too long (checked by the reader's timer)."""
        with self._lock:
            return self._queued > self.soft and not self._check_over_soft()

    def _check_over_soft(self) -> bool:
        now = self._clock()
        if self._queued > self.hard:
            self._overflowed = True
        elif self._over_soft_since is None:
            self._over_soft_since = now
        elif now - self._over_soft_since > self.soft_seconds:
            self._overflowed = True
        return not self._overflowed

    def take(self, timeout: float) -> list[bytes] | None:
        """Wait up to `timeout` for frames and return them all: [] on timeout, None once closed and empty."""
        with self._lock:
            if not self._frames and not self._closed:
                self._ready.wait(timeout)
            if self._frames:
                frames, self._frames = self._frames, []
                return frames
            return None if self._closed else []

    def written(self, count: int) -> None:
        """The writer reports that `count` bytes it took have been written."""
        with self._lock:
            self._queued -= count
            if self._queued <= self.soft:
                self._over_soft_since = None

    def close(self, last: bytes | None = None) -> None:
        """Accept no more frames after `last`; the writer drains what is queued, then stops."""
        with self._lock:
            if self._closed:
                return
            if last is not None:
                self._frames.append(last)
                self._queued += len(last)
            self._closed = True
            self._ready.notify()

    def abort(self, last: bytes | None = None) -> None:
        """Drop everything not yet taken, queue only `last`, and close (used when a client is dropped)."""
        with self._lock:
            dropped = sum(len(frame) for frame in self._frames)
            self._queued -= dropped
            self._frames = [] if last is None else [last]
            self._queued += 0 if last is None else len(last)
            self._closed = True
            self._ready.notify()
