"""`EventQueue`: the events a `ChatClient` hands to its caller, bounded, in batches, ended by `Closed`.

The run task puts events in (`emit`), and never waits doing so: a consumer that does not read its events
must not stop the client reading the socket, which would stall the pings and get it disconnected. When the
queue is full the oldest event is dropped instead, and a warning says so. The caller takes events out in
batches (`next_batch`), so a UI can render a burst in one go; after the final `Closed` there are no more.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from chat_client.net.events import Closed, Event

log = logging.getLogger(__name__)


class EventQueue:
    """A bounded queue of client events (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._dropped = 0
        self._closed_seen = False

    @property
    def closed_seen(self) -> bool:
        """True once the caller has taken the final `Closed` event."""
        return self._closed_seen

    def emit(self, event: Event) -> None:
        """Queue `event` for the caller, dropping the oldest one if the queue is full."""
        if len(self._events) >= self._limit:
            # Never stop reading the socket for a consumer that does not read its events: that would
            # stall pings and get us disconnected. Drop the oldest instead, and say so.
            self._events.popleft()
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("events are not being read: %d dropped so far", self._dropped)
        self._events.append(event)
        self._ready.set()

    async def next_batch(self, limit: int) -> list[Event]:
        """Wait for at least one event and return up to `limit` of those ready (empty once closed)."""
        while not self._events:
            if self._closed_seen:
                return []
            self._ready.clear()
            await self._ready.wait()
        batch = [self._events.popleft() for _ in range(min(limit, len(self._events)))]
        if any(isinstance(event, Closed) for event in batch):
            self._closed_seen = True
        return batch
