"""Is the server still there? Our pings (timed: the lag) and our answers to the server's pings.

One pinger task per session (`ping_every`) sends a `Ping` at once, so the lag is known right after login,
and then every period; only the newest ping is timed. The run task hands over the server's `Ping` and
`Pong` frames (`on_ping`, `on_pong`). A dead server is noticed by the session's read timeout (one ping
period plus a grace), not here: this module only keeps the traffic flowing and measures it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from shared import Ping, Pong

from .errors import ConnectionLost
from .events import Event, LagMeasured
from .session import Session


class Liveness:
    """Pings, pongs and the lag of the current session (see the module docstring)."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit
        self._tokens = itertools.count(1)
        self._sent: dict[int, float] = {}
        #: The round-trip time of the last ping, in seconds (None until measured).
        self.lag: float | None = None
        #: How many of the server's pings this client answered (a liveness statistic).
        self.pings_answered = 0

    async def ping_every(self, session: Session, every: float) -> None:
        """Ping the server now and then every `every` seconds, until the session ends."""
        while True:
            token = next(self._tokens)
            self._sent = {token: time.monotonic()}  # only the newest ping is timed
            try:
                session.send(Ping(token=token))
            except ConnectionLost:
                return  # the run task is about to notice the end of the session
            await asyncio.sleep(every)

    def on_ping(self, session: Session | None, token: int | None) -> None:
        """The server pinged us: answer."""
        if session is not None:
            session.send(Pong(token=token))
            self.pings_answered += 1

    def on_pong(self, token: int | None) -> None:
        """The server answered a ping: if it is the newest, measure the lag."""
        sent = self._sent.pop(token, None) if token is not None else None
        if sent is not None:
            self.lag = time.monotonic() - sent
            self._emit(LagMeasured(self.lag))
