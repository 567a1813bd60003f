"""The outbox: every message the user sends, from the moment it is typed until the server stores it.

A message gets a `client_msg_id` when it is created and keeps it for life. It is sent at once when
connected, and again after every reconnect until the server acknowledges it; the server recognises the
`client_msg_id` of a message it already stored and answers `ack(duplicate=True)` with the original id,
so a message is stored once even when the first attempt reached the server but its ack was lost.

Entries are immutable snapshots: each change of state replaces the entry, so a snapshot handed to the UI
(in an `OutboxChanged` event) never changes under it.
"""

from __future__ import annotations

import enum
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

from chat_client.net.errors import OutboxFull
from chat_client.net.options import DEFAULT_OUTBOX_LIMIT
from shared import Ack, Say, Tell


class DeliveryState(enum.StrEnum):
    """Where a sent message is: waiting for the server, stored by it, or refused."""

    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEntry:
    """One message the user sent, with its delivery state.

    Exactly one of `room` and `peer` is set: a room message or a direct message to `peer`.
    """

    client_msg_id: str
    text: str
    action: bool = False
    room: str | None = None
    peer: str | None = None
    state: DeliveryState = DeliveryState.PENDING
    #: Local time (seconds since the epoch) when the message was typed.
    created: float = 0.0
    #: The server's message id and timestamp (milliseconds), once acknowledged.
    id: int | None = None
    ts: int | None = None
    #: True when the server had already stored this message from an earlier attempt.
    duplicate: bool = False
    #: Why the server refused it (an `ErrorCode` value and its message), once failed.
    error_code: str | None = None
    error_message: str | None = None
    #: How many times it was put on the wire.
    attempts: int = 0
    #: For a direct message: the recipient's away message, when the server said they are away.
    away: str | None = None
    #: A reply: the id of the message it answers (in the same room or conversation).
    reply_to: int | None = None

    def request(self, ref: int) -> Say | Tell:
        """The frame that sends this message."""
        if self.room is not None:
            return Say(
                room=self.room,
                text=self.text,
                action=self.action,
                client_msg_id=self.client_msg_id,
                ref=ref,
                reply_to=self.reply_to,
            )
        assert self.peer is not None
        return Tell(
            to=self.peer,
            text=self.text,
            action=self.action,
            client_msg_id=self.client_msg_id,
            ref=ref,
            reply_to=self.reply_to,
        )


class MessageOutbox:
    """The entries not yet acknowledged or failed, in the order they were typed."""

    def __init__(self, limit: int = DEFAULT_OUTBOX_LIMIT) -> None:
        self.limit = limit
        self._pending: dict[str, OutboxEntry] = {}
        # A per-process prefix keeps ids unique across client restarts; the counter keeps them short.
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[OutboxEntry]:
        return iter(list(self._pending.values()))

    def get(self, client_msg_id: str) -> OutboxEntry | None:
        """The pending entry with this id, if any."""
        return self._pending.get(client_msg_id)

    def add(
        self,
        *,
        text: str,
        action: bool,
        room: str | None = None,
        peer: str | None = None,
        reply_to: int | None = None,
    ) -> OutboxEntry:
        """Queue a new message; raises `OutboxFull` when `limit` messages are already waiting."""
        if len(self._pending) >= self.limit:
            raise OutboxFull(f"{self.limit} messages are already waiting to be delivered")
        entry = OutboxEntry(
            client_msg_id=f"{self._prefix}-{next(self._counter)}",
            text=text,
            action=action,
            room=room,
            peer=peer,
            created=time.time(),
            reply_to=reply_to,
        )
        self._pending[entry.client_msg_id] = entry
        return entry

    def mark_sent(self, client_msg_id: str) -> OutboxEntry | None:
        """Count one more attempt at sending the entry."""
        entry = self._pending.get(client_msg_id)
        if entry is None:
            return None
        entry = replace(entry, attempts=entry.attempts + 1)
        self._pending[client_msg_id] = entry
        return entry

    def acknowledge(self, client_msg_id: str, ack: Ack) -> OutboxEntry | None:
        """The server stored the entry: remove it and return its final state (None if unknown)."""
        entry = self._pending.pop(client_msg_id, None)
        if entry is None:
            return None
        return replace(
            entry,
            state=DeliveryState.ACKNOWLEDGED,
            id=ack.id,
            ts=ack.ts,
            duplicate=ack.duplicate,
            away=ack.away,
        )

    def fail(self, client_msg_id: str, code: str, message: str) -> OutboxEntry | None:
        """The server refused the entry: remove it and return its final state (None if unknown)."""
        entry = self._pending.pop(client_msg_id, None)
        if entry is None:
            return None
        return replace(entry, state=DeliveryState.FAILED, error_code=code, error_message=message)
