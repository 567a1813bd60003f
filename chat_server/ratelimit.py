"""Token buckets: the per-connection rate limits, with an injectable clock so tests need not wait."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Holds up to `burst` tokens and gains `rate` tokens per second; a request spends some.

    Not thread-safe: each bucket belongs to one connection's reader thread.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, cost: float = 1.0) -> float:
        """Spend `cost` tokens and return 0.0, or spend nothing and return the seconds until it could.

        A cost larger than the whole burst is capped at the burst, so one big request can still pass
        once the bucket is full instead of never.
        """
        self._refill()
        cost = min(cost, self.burst)
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        return (cost - self._tokens) / self.rate
