"""Pacing: keep what the client sends within the rate limits the server announced, so nothing is refused.

The server meters every connection with token buckets (docs/protocol.md, `welcome`): one for requests,
one for the bytes of message text, one for joins, one for nick changes. It announces them in
`welcome.rates`; a server that does not is assumed to use the documented defaults
(`shared.messages.control.DEFAULT_RATE_LIMITS`). `Pacer` keeps a copy of those buckets on the client's
side: every frame the session sends is charged as the server will charge it (`note`), and the outbox asks
`message_wait` before sending a `say` or `tell`, which waits until the copy has room for it.

Two margins keep the copy on the safe side of the server's buckets:

* the *slack*: a message may only spend a bucket down to what it refills in `slack` seconds, so a message
  delayed on its way (a busy link, a busy server) still finds its tokens there;
* the same reserve leaves the requests a user types between messages (`/who`, `/join`) a token or two.

Neither slows a long stream down: at the steady state messages go at exactly the announced rate. No I/O,
no threads: it runs on the client's event loop, with an injectable clock for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared import (
    CancelFile,
    ChangeNick,
    FileChunk,
    GetFile,
    Hello,
    Join,
    Message,
    Ping,
    Pong,
    Quit,
    Register,
    Say,
    Tell,
    Unregister,
)
from shared.messages.control import DEFAULT_RATE_LIMITS, RateBucket, RateLimits

#: Frames the server does not charge to any bucket (the connection's own, and the file transfer frames,
#: which the transfer window bounds instead).
FREE = (Ping, Pong, Quit, Hello, FileChunk, GetFile, CancelFile)


class Bucket:
    """The client's copy of one of the server's token buckets. Its level may go below zero: requests sent
    without pacing (a join typed by the user) are charged all the same, and later messages wait for them."""

    __slots__ = ("_level", "_stamp", "burst", "rate", "reserve")

    def __init__(self, spec: RateBucket, slack: float, now: float) -> None:
        #: 0 tokens of burst or no refill time means no limit at all (the server lets everything through).
        self.burst = float(spec.burst)
        self.rate = spec.per_second
        self.reserve = self.rate * slack
        self._level = self.burst
        self._stamp = now

    @property
    def unlimited(self) -> bool:
        """True when this bucket never refuses anything."""
        return self.burst <= 0 or self.rate == float("inf")

    def level(self, now: float) -> float:
        """The tokens in the bucket at `now`."""
        return min(self.burst, self._level + (now - self._stamp) * self.rate)

    def spend(self, cost: float, now: float) -> None:
        """Take `cost` tokens (at most the whole burst, as the server caps it), even if that empties it."""
        if self.unlimited:
            return
        self._level = self.level(now) - min(cost, self.burst)
        self._stamp = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` tokens can be spent leaving the reserve in place (0.0: now)."""
        if self.unlimited:
            return 0.0
        cost = min(cost, self.burst)
        # The reserve is at most half the bucket (so a burst still goes at once), and never more than a full
        # bucket holds: a message must go once the bucket is full, whatever the slack.
        need = cost + min(self.reserve, self.burst / 2, self.burst - cost)
        missing = need - self.level(now)
        return missing / self.rate if missing > 0 else 0.0


class Pacer:
    """The client's copies of the server's rate-limit buckets (see the module docstring)."""

    def __init__(
        self, slack: float, *, enabled: bool = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.slack = slack
        self.enabled = enabled
        self._clock = clock
        self.rates = DEFAULT_RATE_LIMITS
        self._buckets = self._fill(DEFAULT_RATE_LIMITS)

    def _fill(self, rates: RateLimits) -> dict[str, Bucket]:
        now = self._clock()
        return {
            name: Bucket(getattr(rates, name), self.slack, now)
            for name in ("requests", "text_bytes", "joins", "nicks")
        }

    def restart(self, rates: RateLimits | None) -> None:
        """A new connection: the server starts it with full buckets, of the sizes it announced (or the
        documented defaults when it announced none)."""
        self.rates = rates or DEFAULT_RATE_LIMITS
        self._buckets = self._fill(self.rates)

    def note(self, message: Message) -> None:
        """`message` was sent: charge it as the server will."""
        if isinstance(message, FREE):
            return
        now = self._clock()
        buckets = self._buckets
        buckets["requests"].spend(1, now)
        if isinstance(message, Say | Tell):
            buckets["text_bytes"].spend(len(message.text.encode()), now)
        elif isinstance(message, Join):
            buckets["joins"].spend(1, now)
        elif isinstance(message, ChangeNick | Register | Unregister):
            buckets["nicks"].spend(1, now)

    def message_wait(self, text: str) -> float:
        """Seconds until a `say` or `tell` of `text` fits the limits (0.0: it may go now)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        return max(
            self._buckets["requests"].wait(1, now),
            self._buckets["text_bytes"].wait(len(text.encode()), now),
        )
