"""`ClientOptions`: every timeout and limit of the client library, each with its named default."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from chat_client.net.backoff import Backoff

CLIENT_NAME = "mpchat-client/0.1"
#: Seconds allowed to connect and receive the welcome.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds a request that waits for its answer (join, who, history...) waits at most.
DEFAULT_REQUEST_TIMEOUT = 10.0
#: The client pings at least this often (seconds), to measure the lag and notice a dead server.
DEFAULT_PING_EVERY = 5.0
#: A server that sends nothing within this many round-trip times after a ping is declared dead...
DEFAULT_PING_RTT_MULTIPLE = 4.0
#: ...but never within fewer than this many seconds (the floor of the answer deadline).
DEFAULT_PING_GRACE = 2.0
#: While waiting to reconnect after a connection failure, try a TCP connect this often (seconds) to learn
#: at once that the server is back (chat_client.net.connection).
DEFAULT_PROBE_INTERVAL = 0.25
#: Events kept for a consumer that does not read them; beyond this the oldest are dropped (and logged).
DEFAULT_EVENT_QUEUE_LIMIT = 20_000
#: How many recent direct messages are fetched at the first login (0: none).
DEFAULT_DM_BACKFILL = 50
#: Seconds `close()` waits for the server to close the connection after `quit`.
DEFAULT_CLOSE_TIMEOUT = 2.0
#: Uploads that run at once; more wait their turn (the server limits transfers per connection too).
DEFAULT_MAX_UPLOADS = 2
#: Seconds between two progress events of one transfer (state changes are reported at once).
DEFAULT_PROGRESS_INTERVAL = 0.25
#: The most messages that may wait for delivery at once (the outbox; see chat_client/net/outbox.py).
DEFAULT_OUTBOX_LIMIT = 500
#: Seconds of refill the pacing leaves in each of the server's rate-limit buckets, so that a message delayed
#: on its way still finds its tokens (see chat_client/net/pacing.py).
DEFAULT_PACING_SLACK = 1.0
#: --plain: once the input has ended, the last messages are waited for as long as the server acknowledges
#: one at least this often (seconds); the same bound applies while the outbox is full (`--drain-timeout`).
DEFAULT_DRAIN_TIMEOUT = 30.0
#: --plain: a lag (round-trip time, seconds) at or over this is announced, and its recovery too
#: (`--lag-warning`; 0 turns it off).
DEFAULT_LAG_WARNING = 2.0
#: Seconds between two `typing` starts the client sends to one room while the user goes on typing (the
#: server relays at most one per `typing_interval`, 3 s by default; receivers forget one after 6 s).
DEFAULT_TYPING_REPEAT = 3.0


class ConnectionState(enum.StrEnum):
    """Where the client is in its life."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """Timeouts and limits of a `ChatClient`; the defaults suit people, tests pass short ones."""

    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    reconnect: bool = True
    backoff: Backoff = field(default_factory=Backoff)
    ping_every: float = DEFAULT_PING_EVERY
    ping_grace: float = DEFAULT_PING_GRACE
    ping_rtt_multiple: float = DEFAULT_PING_RTT_MULTIPLE
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    outbox_limit: int = DEFAULT_OUTBOX_LIMIT
    event_queue_limit: int = DEFAULT_EVENT_QUEUE_LIMIT
    dm_backfill: int = DEFAULT_DM_BACKFILL
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    client_name: str = CLIENT_NAME
    #: Where downloads are saved; None: `chat_client.settings.downloads_dir()`.
    downloads_dir: Path | None = None
    max_uploads: int = DEFAULT_MAX_UPLOADS
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    #: Send messages no faster than the server's announced rate limits allow (False: as fast as typed).
    pacing: bool = True
    #: Tell the others when we type (`ChatClient.typing`); False sends nothing (privacy).
    send_typing: bool = True
    typing_repeat: float = DEFAULT_TYPING_REPEAT
    pacing_slack: float = DEFAULT_PACING_SLACK

    def __post_init__(self) -> None:
        for name in ("ping_every", "ping_grace", "probe_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if not self.ping_rtt_multiple >= 1:
            raise ValueError("ping_rtt_multiple must be at least 1")
        if not self.pacing_slack >= 0:
            raise ValueError("pacing_slack must be 0 or more seconds")
