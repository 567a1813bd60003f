"""Measured optimisations, kept out of the code a student reads first: each is one well-named helper whose
docstring says what it saves, with the measurement (docs/performance.md, "Follow one message", and
docs/performance-history.md). Used by several threads; none holds state shared between them.

* `Latch`: a set-once flag to wait on, a `threading.Event` that costs 0.2 KB instead of 1.2 KB;
* `next_recv_size`: the size a reader asks `recv` for, small while the connection is idle;
* `set_timeout_lazily`: a reader's `recv` timeout, reset only when it has moved enough to matter.
"""

from __future__ import annotations

import socket
import threading

#: The sizes a reader asks `recv` for (`next_recv_size`).
RECV_MIN = 4 * 1024
RECV_MAX = 64 * 1024
#: A reader's `recv` timeout is reset only when it is this much shorter than the next deadline
#: (`set_timeout_lazily`).
TIMEOUT_SLACK = 1.0


class Latch:
    """A one-way flag: `set()` once (from any thread, any number of times), `wait(timeout)` until set.

    Every connection needs a couple of these (its login decided, its sender finished), and memory per
    connection is a target (W3, docs/performance.md): a `threading.Event` is a Condition, a lock and a deque
    of waiters, 1.2 KB measured with `tracemalloc`; this is two bare locks, 0.2 KB. Replacing the two
    per-connection Events took W3 from 32.8-32.9 to 31.0-31.1 KiB per connection (`57836b9`,
    docs/performance-history.md). The gate lock is held from creation until `set`; a waiter takes it (with a
    timeout) and gives it back at once, so any number of waits see it set.
    """

    __slots__ = ("_gate", "_guard", "_set")

    def __init__(self) -> None:
        self._gate = threading.Lock()
        self._gate.acquire()  # released by the first set()
        self._guard = threading.Lock()  # makes "first set()" exact when several threads set at once
        self._set = False

    def set(self) -> None:
        """Set the flag and release every waiter; later calls do nothing."""
        with self._guard:
            if self._set:
                return
            self._set = True
        self._gate.release()

    def is_set(self) -> bool:
        """True once `set()` was called."""
        return self._set

    def wait(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the flag; True if it is set."""
        if self._gate.acquire(timeout=max(timeout, 0.0)):
            self._gate.release()
            return True
        return self._set


def next_recv_size(size: int, received: int) -> int:
    """The size of a reader's next `recv` after one of `size` bytes brought `received` bytes.

    A full buffer means more is waiting: double it (up to `RECV_MAX`). A read that used less than a quarter:
    halve it (down to `RECV_MIN`). CPython allocates the whole buffer before it blocks, so 2,000 idle readers
    each asking for 64 KiB touched 2.2 KiB more resident memory per connection (W3, docs/performance.md,
    "Follow one message"). The adaptive receive buffer of Netty and of most event loops.
    """
    if received == size:
        return min(size * 2, RECV_MAX)
    if received < size // 4:
        return max(size // 2, RECV_MIN)
    return size


def set_timeout_lazily(sock: socket.socket, wait: float) -> None:
    """Make `sock`'s timeout `wait` seconds, unless the one it has ends before that and at most
    `TIMEOUT_SLACK` earlier: `settimeout` costs system calls (docs/performance.md, "Follow one message"), and
    waking a little early is harmless (the reader recomputes its deadline and sleeps again). A socket without
    a timeout (None: the first call) always gets one: a reader must never block without a deadline.
    """
    current = sock.gettimeout()
    if current is None or not wait - TIMEOUT_SLACK <= current <= wait:
        sock.settimeout(wait)
