"""Reconnect delays: exponential backoff with jitter, so many clients do not reconnect in lockstep.

After a server restart every client notices the drop at the same moment. With a fixed delay they would all
knock at once, again and again; with "equal jitter" each waits a random time between half of the
exponential delay and the whole of it, which spreads the crowd while keeping a lower bound on the wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: The first reconnect delay, in seconds.
DEFAULT_INITIAL_DELAY = 0.5
#: The longest reconnect delay, in seconds.
DEFAULT_MAX_DELAY = 30.0
#: How much the delay grows after each failed attempt.
DEFAULT_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """A policy that gives the delay before reconnect attempt number `attempt` (0 for the first)."""

    initial: float = DEFAULT_INITIAL_DELAY
    maximum: float = DEFAULT_MAX_DELAY
    factor: float = DEFAULT_FACTOR
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter: initial * factor**attempt, capped at the maximum."""
        # Cap the exponent so a long outage cannot overflow the float.
        return min(self.maximum, self.initial * self.factor ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        """The jittered delay: uniform between half the ceiling and the ceiling."""
        top = self.ceiling(attempt)
        return self.rng.uniform(top / 2, top)
