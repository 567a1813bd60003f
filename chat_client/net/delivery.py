"""Carrying the outbox to the server: pace, send, resend after a reconnect or a refusal, settle the answers.

`Delivery` owns the `MessageOutbox` and everything about one message's trip: the queue of messages waiting to
go (in the order they were typed), the `ref` of each attempt (so an `error` frame, which carries only the
`ref`, finds its message), the futures of callers waiting for the outcome, and the `Pacer` that keeps the
messages within the rate limits the server announced. Every path goes through one queue: a message typed
now, the outbox resent after a reconnect, a message refused with `rate_limited` (the last should not
happen once paced; if it does, that message and every later one wait, then go in order). It sends through
whatever the current session is (`begin`/`attach`), and reports each change of state as an `OutboxChanged`
event. No I/O of its own; it runs on the client's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chat_client.net.errors import ClientClosed, ConnectionLost, ServerError
from chat_client.net.events import Event, OutboxChanged
from chat_client.net.outbox import DeliveryState, MessageOutbox, OutboxEntry
from chat_client.net.pacing import Pacer
from shared import Ack, ErrorCode, Message
from shared import Error as ErrorFrame

if TYPE_CHECKING:  # the connection drives this module: its session is only an annotation here
    from chat_client.net.connection import Session

#: Seconds to wait before resending a message refused with `rate_limited` and no `retry_after_ms`.
RATE_LIMIT_RETRY = 1.0


class Delivery:
    """Paces, sends and settles outbox entries (see the module docstring)."""

    def __init__(
        self,
        limit: int,
        next_ref: Callable[[], int],
        emit: Callable[[Event], None],
        *,
        pacer: Pacer | None = None,
    ) -> None:
        self.outbox = MessageOutbox(limit)
        self.pacer = pacer or Pacer(0.0, enabled=False)
        self._next_ref = next_ref
        self._emit = emit
        self._send: Callable[[Message], None] | None = None  # the current session's send, while connected
        self._ref_owner: dict[int, str] = {}  # ref of a say/tell attempt -> its client_msg_id
        self._refs_of: dict[str, list[int]] = {}  # client_msg_id -> the refs of its attempts
        self._latest_ref: dict[str, int] = {}  # client_msg_id -> the ref of its newest attempt
        self._futures: dict[str, asyncio.Future[OutboxEntry]] = {}
        # The order entries were typed in: the queue sends the oldest first.
        self._order = itertools.count()
        self._seq: dict[str, int] = {}
        self._queue: list[tuple[int, str]] = []  # a heap of (seq, client_msg_id) waiting to be sent
        self._queued: set[str] = set()
        self._held_until = 0.0  # after a `rate_limited` refusal, nothing goes before this (monotonic)
        self._timer: asyncio.TimerHandle | None = None
        self._empty = asyncio.Event()
        self._empty.set()
        self._progress = asyncio.Event()  # set whenever an entry settles
        #: Totals of this client's life: messages queued, acknowledged by the server, refused by it.
        self.added = 0
        self.acknowledged = 0
        self.failed = 0

    # -- Sessions ----------------------------------------------------------------------------------------

    def begin(self, session: Session) -> None:
        """A session is logged in: meter everything it sends from now on, with the rates it announced."""
        self.pacer.restart(session.welcome.rates)
        session.on_send = self.pacer.note

    def attach(self, send: Callable[[Message], None]) -> None:
        """The session has caught up: send every waiting message through it, in order, paced."""
        self._send = send
        self._held_until = 0.0
        self._queue = []
        self._queued = set()
        for entry in self.outbox:
            self._enqueue(entry.client_msg_id)
        self._pump()

    def detach(self) -> None:
        """The session ended: keep everything for the next one."""
        self._send = None
        self._cancel_timer()

    def close(self) -> None:
        """The client is closed: nothing more will be delivered; wake everyone waiting."""
        self._cancel_timer()
        self._empty.set()
        self._progress.set()
        for future in self._futures.values():
            if not future.done():
                future.set_exception(ClientClosed("the client is closed"))

    # -- Sending -----------------------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """True when the outbox holds as many messages as it may."""
        return len(self.outbox) >= self.outbox.limit

    def add(
        self,
        *,
        text: str,
        action: bool,
        room: str | None = None,
        peer: str | None = None,
        reply_to: int | None = None,
    ) -> OutboxEntry:
        """Queue a new message (raises `OutboxFull`) and report it as pending."""
        entry = self.outbox.add(text=text, action=action, room=room, peer=peer, reply_to=reply_to)
        self._seq[entry.client_msg_id] = next(self._order)
        self.added += 1
        self._empty.clear()
        self._emit(OutboxChanged(entry))
        return entry

    async def submit(self, entry: OutboxEntry, *, wait: bool) -> OutboxEntry:
        """Send `entry` as soon as the pacing allows; with `wait`, return its final state (`ServerError` if
        refused)."""
        future: asyncio.Future[OutboxEntry] | None = None
        if wait:
            future = asyncio.get_running_loop().create_future()
            self._futures[entry.client_msg_id] = future
        self._enqueue(entry.client_msg_id)
        self._pump()
        if future is None:
            return entry
        settled = await future
        if settled.state is DeliveryState.FAILED:
            raise ServerError(
                ErrorFrame(code=settled.error_code or "", message=settled.error_message or "", fatal=False)
            )
        return settled

    def _enqueue(self, client_msg_id: str) -> None:
        if client_msg_id not in self._queued and client_msg_id in self._seq:
            self._queued.add(client_msg_id)
            heapq.heappush(self._queue, (self._seq[client_msg_id], client_msg_id))

    def _pump(self) -> None:
        """Send the queued messages, oldest first, as fast as the pacing allows; come back when it does."""
        self._cancel_timer()
        if self._send is None:
            return
        now = time.monotonic()
        if now < self._held_until:
            self._wake_in(self._held_until - now)
            return
        while self._queue and self._send is not None:
            client_msg_id = self._queue[0][1]
            entry = self.outbox.get(client_msg_id)
            if entry is None:  # settled meanwhile (the ack of an earlier attempt)
                heapq.heappop(self._queue)
                self._queued.discard(client_msg_id)
                continue
            wait = self.pacer.message_wait(entry.text)
            if wait > 0:
                self._wake_in(wait)
                return
            heapq.heappop(self._queue)
            self._queued.discard(client_msg_id)
            self._transmit(entry)

    def _wake_in(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._pump)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _transmit(self, entry: OutboxEntry) -> None:
        assert self._send is not None
        ref = self._next_ref()
        self._ref_owner[ref] = entry.client_msg_id
        self._refs_of.setdefault(entry.client_msg_id, []).append(ref)
        self._latest_ref[entry.client_msg_id] = ref
        self.outbox.mark_sent(entry.client_msg_id)
        # ConnectionLost: the session is ending; the entry stays pending and goes out after the reconnect.
        with contextlib.suppress(ConnectionLost):
            self._send(entry.request(ref))

    async def wait_delivered(self, timeout: float) -> bool:
        """Wait until every queued message is acknowledged or refused; False if `timeout` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            return False
        return not self.outbox

    async def drain(self, idle_timeout: float) -> bool:
        """Wait until every queued message is acknowledged or refused, for as long as messages keep being
        settled: False once none was for `idle_timeout` seconds (the server is gone, or stopped answering)."""
        return await self._while_settling(lambda: bool(self.outbox), idle_timeout)

    async def wait_room(self, idle_timeout: float | None = None) -> bool:
        """Wait until the outbox has room for one more message; False if none was settled for
        `idle_timeout` seconds (None: wait as long as it takes)."""
        return await self._while_settling(lambda: self.full, idle_timeout)

    async def _while_settling(self, waiting: Callable[[], bool], idle_timeout: float | None) -> bool:
        """Wait while `waiting()` holds and messages keep being settled (acked or refused); True once it no
        longer holds, False if no message was settled for `idle_timeout` seconds."""
        while waiting() and not self._empty.is_set():
            self._progress.clear()
            try:
                async with asyncio.timeout(idle_timeout):
                    await self._progress.wait()
            except TimeoutError:
                return False
        return not waiting()

    # -- Answers -----------------------------------------------------------------------------------------

    def on_ack(self, ack: Ack) -> OutboxEntry | None:
        """Settle the entry `ack` answers; return it (None for an unknown or already settled one)."""
        client_msg_id = ack.client_msg_id or (self._ref_owner.get(ack.ref) if ack.ref is not None else None)
        if client_msg_id is None:
            return None
        entry = self.outbox.acknowledge(client_msg_id, ack)
        if entry is not None:  # (None: the ack of an earlier attempt of an entry already acknowledged)
            self.acknowledged += 1
            self._settle(entry)
        return entry

    def on_error(self, error: ErrorFrame) -> bool:
        """Apply a refusal to the entry it answers; True if it answered one."""
        client_msg_id = self._ref_owner.get(error.ref) if error.ref is not None else None
        if client_msg_id is None:
            return False
        if self._latest_ref.get(client_msg_id) != error.ref:
            return True  # the answer to an attempt already superseded: the newest attempt's answer decides
        if error.code == ErrorCode.RATE_LIMITED:
            self._hold(client_msg_id, (error.retry_after_ms or 0) / 1000 or RATE_LIMIT_RETRY)
            return True
        entry = self.outbox.fail(client_msg_id, error.code, error.message)
        if entry is not None:
            self.failed += 1
            self._settle(entry)
        return True

    def _settle(self, entry: OutboxEntry) -> None:
        client_msg_id = entry.client_msg_id
        for ref in self._refs_of.pop(client_msg_id, ()):
            self._ref_owner.pop(ref, None)
        self._latest_ref.pop(client_msg_id, None)
        self._seq.pop(client_msg_id, None)
        if not self.outbox:
            self._empty.set()
        self._progress.set()
        self._emit(OutboxChanged(entry))
        future = self._futures.pop(client_msg_id, None)
        if future is not None and not future.done():
            future.set_result(entry)

    # -- Rate limits -------------------------------------------------------------------------------------

    def _hold(self, client_msg_id: str, delay: float) -> None:
        """The server refused a message for its rate: hold it and every later one, then send them in order.

        The server refuses every later message until this one comes back (docs/protocol.md,
        `rate_limited`), so the later ones already on their way are queued again at once: sent before it,
        they could only be refused, and a resend racing their refusals could reorder the messages.
        """
        self._held_until = max(self._held_until, time.monotonic() + delay)
        refused = self._seq.get(client_msg_id)
        for entry in self.outbox:
            seq = self._seq.get(entry.client_msg_id)
            if refused is not None and seq is not None and seq >= refused:
                self._latest_ref.pop(entry.client_msg_id, None)  # their pending answers are superseded
                self._enqueue(entry.client_msg_id)
        self._pump()
