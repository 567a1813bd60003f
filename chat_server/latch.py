"""`Latch`: set once, waited for with a timeout; a `threading.Event` that costs 0.2 KB instead of 1.2 KB.

Every connection needs a couple of these (its login decided, its sender finished), and memory per connection
is a target (docs/performance.md): an Event is a Condition, a lock and a deque of waiters, which a flag that
only ever goes from unset to set does not need. The gate lock is held from creation until `set`; a waiter
takes it (with a timeout) and gives it back at once, so any number of waits see it set.
"""

from __future__ import annotations

import threading


class Latch:
    """A one-way flag: `set()` once (from any thread, any number of times), `wait(timeout)` until set."""

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
