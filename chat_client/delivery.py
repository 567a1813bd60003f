"""Carrying the outbox to the server: send, resend after a reconnect or a rate limit, settle on ack or error.

`Delivery` owns the `Outbox` and everything about one message's trip: the `ref` of each attempt (so an
`error` frame, which carries only the `ref`, finds its message), the futures of callers waiting for the
outcome, and the hold after a `rate_limited` refusal (that message and every later one wait, then go in
the order they were typed). It sends through whatever the current session is (`attach`), and reports each
change of state as an `OutboxChanged` event. No I/O of its own; it runs on the client's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from shared import Ack, ErrorCode, Message
from shared import Error as ErrorFrame

from .errors import ClientClosed, ConnectionLost, ServerError
from .events import Event, OutboxChanged
from .outbox import DeliveryState, Outbox, OutboxEntry

#: Seconds to wait before resending a message refused with `rate_limited` and no `retry_after_ms`.
RATE_LIMIT_RETRY = 1.0


class Delivery:
    """Sends outbox entries and settles them (see the module docstring)."""

    def __init__(self, limit: int, next_ref: Callable[[], int], emit: Callable[[Event], None]) -> None:
        self.outbox = Outbox(limit)
        self._next_ref = next_ref
        self._emit = emit
        self._send: Callable[[Message], None] | None = None  # the current session's send, while connected
        self._ref_owner: dict[int, str] = {}  # ref of a say/tell attempt -> its client_msg_id
        self._futures: dict[str, asyncio.Future[OutboxEntry]] = {}
        self._empty = asyncio.Event()
        self._empty.set()
        # Messages held back after a `rate_limited` refusal, until `_held_until` (monotonic time).
        self._held: set[str] = set()
        self._held_until = 0.0
        self._release_handle: asyncio.TimerHandle | None = None

    # -- Sessions ----------------------------------------------------------------------------------------

    def attach(self, send: Callable[[Message], None]) -> None:
        """A session is up: send every waiting message through it, in order."""
        self._send = send
        self._held.clear()
        self._held_until = 0.0
        for entry in self.outbox:
            self._transmit(entry)

    def detach(self) -> None:
        """The session ended: keep everything for the next one."""
        self._send = None

    def close(self) -> None:
        """The client is closed: nothing more will be delivered; wake everyone waiting."""
        if self._release_handle is not None:
            self._release_handle.cancel()
        self._empty.set()
        for future in self._futures.values():
            if not future.done():
                future.set_exception(ClientClosed("the client is closed"))

    # -- Sending -----------------------------------------------------------------------------------------

    def add(
        self, *, text: str, action: bool, room: str | None = None, peer: str | None = None
    ) -> OutboxEntry:
        """Queue a new message (raises `OutboxFull`) and report it as pending."""
        entry = self.outbox.add(text=text, action=action, room=room, peer=peer)
        self._empty.clear()
        self._emit(OutboxChanged(entry))
        return entry

    async def submit(self, entry: OutboxEntry, *, wait: bool) -> OutboxEntry:
        """Send `entry` now if possible; with `wait`, return its final state (`ServerError` if refused)."""
        future: asyncio.Future[OutboxEntry] | None = None
        if wait:
            future = asyncio.get_running_loop().create_future()
            self._futures[entry.client_msg_id] = future
        if time.monotonic() < self._held_until:
            self._held.add(entry.client_msg_id)  # sent, in order, when the hold ends
        elif self._send is not None:
            self._transmit(entry)
        if future is None:
            return entry
        settled = await future
        if settled.state is DeliveryState.FAILED:
            raise ServerError(
                ErrorFrame(code=settled.error_code or "", message=settled.error_message or "", fatal=False)
            )
        return settled

    def _transmit(self, entry: OutboxEntry) -> None:
        assert self._send is not None
        ref = self._next_ref()
        self._ref_owner[ref] = entry.client_msg_id
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

    # -- Answers -----------------------------------------------------------------------------------------

    def on_ack(self, ack: Ack) -> OutboxEntry | None:
        """Settle the entry `ack` answers; return it (None for an unknown or already settled one)."""
        client_msg_id = ack.client_msg_id or (self._ref_owner.get(ack.ref) if ack.ref is not None else None)
        if client_msg_id is None:
            return None
        entry = self.outbox.acknowledge(client_msg_id, ack)
        if entry is not None:  # (None: the ack of an earlier attempt of an entry already acknowledged)
            self._settle(entry)
        return entry

    def on_error(self, error: ErrorFrame) -> bool:
        """Apply a refusal to the entry it answers; True if it answered one."""
        client_msg_id = self._ref_owner.get(error.ref) if error.ref is not None else None
        if client_msg_id is None:
            return False
        if error.code == ErrorCode.RATE_LIMITED:
            self._hold(client_msg_id, (error.retry_after_ms or 0) / 1000 or RATE_LIMIT_RETRY)
            return True
        entry = self.outbox.fail(client_msg_id, error.code, error.message)
        if entry is not None:
            self._settle(entry)
        return True

    def _settle(self, entry: OutboxEntry) -> None:
        for ref in [ref for ref, owner in self._ref_owner.items() if owner == entry.client_msg_id]:
            del self._ref_owner[ref]
        if not self.outbox:
            self._empty.set()
        self._emit(OutboxChanged(entry))
        future = self._futures.pop(entry.client_msg_id, None)
        if future is not None and not future.done():
            future.set_result(entry)

    # -- Rate limits -------------------------------------------------------------------------------------

    def _hold(self, client_msg_id: str, delay: float) -> None:
        """The server asked us to slow down: hold this message and every later one, then send them in order.

        Sending the later ones meanwhile would only get them refused too, and could reorder the messages.
        """
        self._held.add(client_msg_id)
        self._held_until = max(self._held_until, time.monotonic() + delay)
        if self._release_handle is None:
            self._release_handle = asyncio.get_running_loop().call_later(delay, self._release_held)

    def _release_held(self) -> None:
        self._release_handle = None
        wait = self._held_until - time.monotonic()
        if wait > 0:  # another refusal extended the hold
            self._release_handle = asyncio.get_running_loop().call_later(wait, self._release_held)
            return
        held, self._held = self._held, set()
        if self._send is not None:
            for entry in self.outbox:
                if entry.client_msg_id in held:
                    self._transmit(entry)
