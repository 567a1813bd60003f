"""Token buckets: the per-connection and per-address rate limits, with an injectable clock for tests; and
`MessageOrder`, which keeps a client's messages in order across "server busy" refusals.

A connection over its request or text bucket is delayed, not refused (its `Budget` waits for the token,
holding the reader meanwhile: chat_server.reader.connection), so those never reorder anything; only a
refusal can, and the one a `say` or `tell` can still meet is "server busy" (the history thread's queue stayed
full).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    """Holds up to `burst` tokens and gains `rate` tokens per second; a request spends some.

    Not thread-safe: each bucket belongs to one connection's reader thread.
    """

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

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


#: How long past its retry time a refused message keeps later messages waiting for it, in seconds. A client
#: that never sends it again (it gave up on it) is not held back for longer than this.
ORDER_HOLD_SECONDS = 30.0
#: The shortest retry delay a held-back message is told to wait, in seconds.
MIN_RETRY = 0.001


class MessageOrder:
    """Keeps one client's chat messages in the order it sent them, across "server busy" refusals.

    A client pipelines its messages: by the time the refusal of message k reaches it, k+1, k+2... are
    already on their way, and a queue drained meanwhile would let k+1 in before k is sent again: delivered
    out of order. So after refusing a message (identified by its `client_msg_id`) every later message is
    refused too, until that one comes back (the client resends in order) or `ORDER_HOLD_SECONDS` after its
    retry time. Messages without a `client_msg_id` cannot be recognised when they come back, so they never
    start a hold. Not thread-safe: it belongs to one connection's reader thread.
    """

    __slots__ = ("_clock", "_expires", "_retry_at", "_waiting_for")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting_for: str | None = None  # the client_msg_id of the refused message
        self._retry_at = 0.0
        self._expires = 0.0

    def wait(self, client_msg_id: str | None) -> float:
        """0.0 if this message may go on to the rate limit, else the seconds the client should wait."""
        if self._waiting_for is None:
            return 0.0
        now = self._clock()
        if client_msg_id == self._waiting_for or now >= self._expires:
            self._waiting_for = None
            return 0.0
        return max(self._retry_at - now, MIN_RETRY)

    def refused(self, client_msg_id: str | None, retry: float) -> None:
        """A message was refused: hold later ones back until it returns (if no hold is on already)."""
        if self._waiting_for is None and client_msg_id is not None:
            self._waiting_for = client_msg_id
            self._retry_at = self._clock() + retry
            self._expires = self._retry_at + ORDER_HOLD_SECONDS


class AddressBuckets:
    """One token bucket per source address, in a table of bounded size; safe to share between threads.

    Used for limits that must outlive a connection: new connections per address (the acceptor) and failed
    passwords per address (the readers). A bucket that has refilled completely is the same as no bucket,
    so the table forgets such addresses when it is full; if every address in it is still busy, the least
    recently used one is forgotten (its owner gets a full bucket back: the price of bounded memory).
    """

    def __init__(
        self, rate: float, burst: float, max_addresses: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_addresses = max_addresses
        self._clock = clock
        self._lock = threading.Lock()  # guards _buckets; held for dictionary work only
        #: address -> (tokens, time of that count), least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, address: str, now: float) -> float:
        tokens, stamp = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - stamp) * self.rate)

    def take(self, address: str) -> float:
        """Spend one of `address`'s tokens and return 0.0, or spend nothing and return the seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens = self._tokens(address, now)
            if tokens < 1:
                return (1 - tokens) / self.rate
            self._buckets[address] = (tokens - 1, now)
            self._buckets.move_to_end(address)
            if len(self._buckets) > self.max_addresses:
                self._evict(now)
        return 0.0

    def give_back(self, address: str) -> None:
        """Return one token taken by `take` (the attempt it paid for turned out not to count)."""
        now = self._clock()
        with self._lock:
            if address in self._buckets:
                self._buckets[address] = (min(self.burst, self._tokens(address, now) + 1), now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def _evict(self, now: float) -> None:
        full = [address for address in self._buckets if self._tokens(address, now) >= self.burst]
        for address in full:
            del self._buckets[address]
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
