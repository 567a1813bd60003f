"""What `ChatClient.events()` yields: the server's notifications plus a few events of the client's own.

Server notifications arrive as the `shared` message classes (`Said`, `Joined`, `History`, `Error`...).
The client adds events for what only it knows: the connection came up or went down, a reconnect is
scheduled, a sent message changed state, a file transfer progressed (`TransferUpdate`, defined with the
transfer snapshot in `chat_client.net.progress`), the round-trip time was measured, the client closed for
good. `Ping`, `Pong`, `Welcome` and `Ack` are consumed by the client and turned into these events.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat_client.net.outbox import OutboxEntry
from chat_client.net.progress import TransferUpdate
from chat_client.net.trust import ServerIdentity
from shared import Message, Welcome


@dataclass(frozen=True, slots=True)
class Connected:
    """Logged in. `resumed` is False for the first login and True after a reconnect. `identity` is the
    server's verified TLS key (None for a plaintext connection)."""

    welcome: Welcome
    resumed: bool
    identity: ServerIdentity | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended. `code` is the server's error code when it said why; `will_retry` says
    whether the client will reconnect by itself."""

    reason: str
    code: str | None
    will_retry: bool


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The next connection attempt (number `attempt`, from 1) starts in `delay` seconds. `server` names the
    server it goes to when the client fails over to another one of its list (else None: the same one)."""

    delay: float
    attempt: int
    reason: str
    server: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxChanged:
    """A message the user sent was queued, acknowledged or refused (see `OutboxEntry.state`)."""

    entry: OutboxEntry


@dataclass(frozen=True, slots=True)
class LagMeasured:
    """The round trip of the client's last ping took `seconds`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Closed:
    """The client stopped for good: the last event. `error` says why when it was not `close()`."""

    error: Exception | None


ClientEvent = Connected | Disconnected | Reconnecting | OutboxChanged | LagMeasured | Closed | TransferUpdate
#: Anything `ChatClient.events()` yields.
Event = Message | ClientEvent
