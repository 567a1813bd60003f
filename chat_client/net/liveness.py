"""Is the server still there? Our pings (timed: the lag), our answers to the server's pings, and the verdict.

One pinger task per session (`ping_every`) sends a `Ping` at once, so the lag is known right after login,
and then every period; only the newest ping is timed. The run task hands over the server's `Ping` and
`Pong` frames (`on_ping`, `on_pong`).

A dead server is noticed here: after each ping the server has an *answer deadline* to send something (the
pong, or anything else). The deadline is `multiple` times the slowest of the last few round-trip times (the
time from connect to `welcome` is the first sample), but never less than `floor` seconds. A server that
sends nothing by then is declared dead at once (`Session.abort`): a frozen server is noticed within one
ping period plus that deadline, on a quiet link and on a busy one alike. "Anything received since the ping"
is what counts, not the pong itself: a pong stuck behind a long backlog of messages still proves life.

The check runs on the same event loop as the reader, after it: if the loop was busy (a long redraw) while
the answer arrived, the reader handles the answer before the pinger looks, so a slow client never takes
itself for a dead server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from chat_client.net.errors import ConnectionLost
from chat_client.net.events import Event, LagMeasured
from shared import Ping, Pong

if TYPE_CHECKING:  # the connection drives this module: its session is only an annotation here
    from chat_client.net.connection import Session

#: How many recent round-trip times the answer deadline looks at (it uses the slowest of them).
RTT_SAMPLES = 8
#: The error code of a session ended by the answer deadline.
NOT_ANSWERING = "not_answering"


class Liveness:
    """Pings, pongs, the lag and the answer deadline of the current session (see the module docstring)."""

    def __init__(self, emit: Callable[[Event], None], *, multiple: float, floor: float) -> None:
        self._emit = emit
        self._multiple = multiple
        self._floor = floor
        self._tokens = itertools.count(1)
        self._sent: dict[int, float] = {}
        self._rtts: deque[float] = deque(maxlen=RTT_SAMPLES)
        #: The round-trip time of the last ping, in seconds (None until measured).
        self.lag: float | None = None
        #: How many of the server's pings this client answered (a liveness statistic).
        self.pings_answered = 0

    def answer_deadline(self) -> float:
        """Seconds the server has to send something after a ping: `multiple` x the slowest recent RTT."""
        slowest = max(self._rtts, default=0.0)
        return max(self._floor, self._multiple * slowest)

    def started(self, session: Session) -> None:
        """A new session: its login time (connect to `welcome`) is the first round-trip sample."""
        self._rtts.clear()
        self._rtts.append(session.login_time)

    async def ping_every(self, session: Session, every: float) -> None:
        """Ping the server now and then every `every` seconds; end the session if an answer is overdue.

        Each ping gets its own check (`answer_deadline()` seconds after it), independent of the period: a
        server frozen right after an answer is noticed within `every` plus the deadline, whichever is longer.
        """
        checks: deque[tuple[float, float]] = deque()  # (sent, due) of each ping not yet answered
        next_ping = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_ping:
                token = next(self._tokens)
                self._sent = {token: now}  # only the newest ping is timed
                try:
                    session.send(Ping(token=token))
                except ConnectionLost:
                    return  # the run task is about to notice the end of the session
                checks.append((now, now + self.answer_deadline()))
                next_ping = now + every
            while checks and session.last_received >= checks[0][0]:
                checks.popleft()  # something arrived after that ping: the server is alive
            if checks and now >= checks[0][1]:
                sent, due = checks[0]
                session.abort(
                    ConnectionLost(f"server not answering (nothing for {due - sent:.1f} s)", NOT_ANSWERING)
                )
                return
            wake = min(next_ping, checks[0][1]) if checks else next_ping
            await asyncio.sleep(max(wake - time.monotonic(), 0.0))

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
            self._rtts.append(self.lag)
            self._emit(LagMeasured(self.lag))
