"""Reconnect delays: exponential backoff with full jitter, spread over a window that grows with the crowd.

After a server restart every client notices the drop at the same moment. With a fixed delay they would all
knock at once, again and again; even "equal jitter" (between half the delay and all of it) packs the first
attempts of fifty clients into a fraction of a second. This is "full jitter" from AWS's "Exponential Backoff
and Jitter": the delay before attempt *n* is uniform over the *whole* window ``[0, ceiling(n)]``.

The window of attempt *n* is ``min(maximum, max(initial * factor**n, spread * peers))``: the exponential
window, but at least `spread` seconds for each of the other people the client saw in its rooms. A client
alone on a server keeps the short window (back within about `initial` seconds); fifty clients who shared a
room spread their first attempts over about fifty times `spread`, so the restarted server sees a steady
trickle instead of a wall. The reachability probe (chat_client.net.connection) uses the same crowd window,
so a client that finds the server back after a long outage does not rush in with all the others either.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: The first reconnect window, in seconds (the exponential part starts here).
DEFAULT_INITIAL_DELAY = 0.5
#: The longest reconnect window, in seconds (the cap).
DEFAULT_MAX_DELAY = 30.0
#: How much the window grows after each failed attempt.
DEFAULT_FACTOR = 2.0
#: Seconds of window per other person seen in our rooms: 50 people share a window of about 15 s.
DEFAULT_SPREAD_PER_PEER = 0.3


@dataclass(frozen=True, slots=True)
class Backoff:
    """A policy that gives the delay before reconnect attempt number `attempt` (0 for the first)."""

    initial: float = DEFAULT_INITIAL_DELAY
    maximum: float = DEFAULT_MAX_DELAY
    factor: float = DEFAULT_FACTOR
    spread: float = DEFAULT_SPREAD_PER_PEER
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.factor < 1 or self.spread < 0:
            raise ValueError("backoff needs 0 < initial <= maximum, factor >= 1 and spread >= 0")

    def ceiling(self, attempt: int, peers: int = 0) -> float:
        """The window of attempt `attempt`: initial * factor**attempt, at least spread * peers, capped."""
        # Cap the exponent so a long outage cannot overflow the float.
        exponential = self.initial * self.factor ** min(attempt, 64)
        return min(self.maximum, max(exponential, self.spread * peers))

    def delay(self, attempt: int, peers: int = 0) -> float:
        """Full jitter: uniform over the whole window, from 0 to the ceiling."""
        return self.rng.uniform(0, self.ceiling(attempt, peers))

    def crowd_delay(self, peers: int) -> float:
        """The wait after the probe found the server back: uniform over the crowd's window (0 when alone)."""
        return self.rng.uniform(0, min(self.maximum, self.spread * peers))
