"""Server configuration: every limit and timeout, with its named default, in one frozen dataclass.

The same field names are used by the `server.toml` config file and (for the main limits) by the command line,
so docs/server.md can describe each setting once. Nothing here opens a file except `load_toml`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from shared.limits import (
    DEFAULT_MAX_FRAME,
    DEFAULT_MAX_LIST,
    DEFAULT_MAX_NICK,
    DEFAULT_MAX_REASON,
    DEFAULT_MAX_ROOM,
    DEFAULT_MAX_TEXT,
    DEFAULT_MAX_TOPIC,
    Limits,
)
from shared.text import nick_problem, room_problem

from .beacon.config import BeaconConfig, beacon_config_from_table
from .cluster.config import ClusterConfig, cluster_config_from_table
from .filesconfig import FilesConfig, files_config_from_table
from .metrics import parse_metrics_address
from .passwords import DEFAULT_SCRYPT_N, DEFAULT_SCRYPT_P, DEFAULT_SCRYPT_R, ScryptCost
from .tls import TlsConfig, tls_config_from_table

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7878
DEFAULT_SERVER_NAME = "mpchat"
DEFAULT_ROOM = "lobby"
HISTORY_FILE_NAME = "history.sqlite3"

log = logging.getLogger(__name__)

#: Connections allowed at once, in total and from one IP address (each costs one reader thread).
DEFAULT_MAX_CLIENTS = 256
DEFAULT_MAX_CLIENTS_PER_IP = 8
#: Rooms one connection may be in at once.
DEFAULT_MAX_ROOMS_PER_CLIENT = 64
#: Sessions (connections) a registered nick may have at once; one more login with its password is refused
#: with `too_many_sessions`. An unregistered nick has one session (nothing proves who a second one is).
DEFAULT_MAX_SESSIONS_PER_NICK = 4
#: Always-on presence: a registered nick stays a member of its rooms while none of its sessions is connected,
#: and direct messages to it are stored for its next login. Off by default: others then see who is really
#: there, and the server keeps nothing for people who left (docs/server.md, "Always-on").
DEFAULT_ALWAYS_ON = False
#: Seconds a new connection has to send a valid `hello`, counted from accept.
DEFAULT_HELLO_TIMEOUT = 10.0
#: Seconds a started frame has to arrive completely (slowloris guard).
DEFAULT_FRAME_TIMEOUT = 10.0
#: Seconds without any inbound data before the server sends a `ping`.
DEFAULT_PING_INTERVAL = 60.0
#: Seconds without any inbound data before the connection is declared dead (`ping_timeout`).
DEFAULT_PING_TIMEOUT = 90.0
#: Seconds a client with output pending may go without accepting a single byte before the connection is
#: closed ("write timeout"). Progress, not writability: a client that reads slowly but steadily never meets
#: it (the send queue limits deal with that one).
DEFAULT_WRITE_TIMEOUT = 10.0
#: Outbound queue: above the soft limit for `sendq_soft_seconds`, or above the hard limit -> `sendq_exceeded`.
DEFAULT_SENDQ_SOFT = 256 * 1024
DEFAULT_SENDQ_SOFT_SECONDS = 10.0
DEFAULT_SENDQ_HARD = 1024 * 1024
#: Kernel send buffer per client socket in bytes (SO_SNDBUF). Linux reserves twice the value (part of it
#: for its own bookkeeping), so a stalled client holds at most 256 KiB in the kernel besides its send queue
#: (measured: ~186 KiB of data). 0 keeps the system's auto-tuned default, which grows to 4 MiB per client on
#: Linux and hides a backlog from the send queue limits (docs/architecture.md). 64 KiB bounded it more
#: tightly but cost W1 throughput under load; the figures are in docs/performance.md.
DEFAULT_SEND_BUFFER = 128 * 1024
#: Seconds a client dropped for its send queue gets to receive the reason: everything queued for it is
#: discarded, `sendq_exceeded` goes out right after the frame in progress, and the socket is closed once the
#: client's kernel has acknowledged it, or when this deadline passes (docs/architecture.md).
DEFAULT_DROP_LINGER = 5.0
#: Per-connection request rate: a token bucket of `rate_burst` requests, refilled at `rate_messages`/s. A
#: request without a token waits for it: the reader stops reading that connection meanwhile (fakelag).
DEFAULT_RATE_MESSAGES = 2.0
DEFAULT_RATE_BURST = 10
#: Per-connection message text rate, in bytes of UTF-8: burst and refill per second (waited for the same way).
DEFAULT_RATE_BYTES = 8 * 1024.0
DEFAULT_RATE_BYTES_BURST = 32 * 1024
#: Seconds a connection's reader may stay behind its client, waiting for tokens without ever finding the
#: socket empty, before the connection is closed with `excess_flood`. Long enough for the backlog of an
#: honest client after an outage (90 s of one line a second drains in about 80 s at the default rate).
DEFAULT_MAX_FAKELAG_SECONDS = 120.0
#: Refused requests (over the join or nick bucket, or file requests refused) a client may keep sending (a
#: bucket refilled at `rate_messages`) before it is disconnected with `excess_flood`.
DEFAULT_FLOOD_REFUSALS = 50
#: Joins per connection: a bucket of `rate_joins_burst`, refilled at `rate_joins` per second (join/leave
#: cycling makes every member of a room see a `joined` and a `left`).
DEFAULT_RATE_JOINS = 0.2
DEFAULT_RATE_JOINS_BURST = 10
#: Nick changes, registrations and unregistrations per connection: each is announced to every neighbour or
#: costs a password hash. A bucket of `rate_nicks_burst`, refilled at `rate_nicks` per second.
DEFAULT_RATE_NICKS = 0.05
DEFAULT_RATE_NICKS_BURST = 5
#: New connections admitted from one address per minute (a bucket of that many, refilled over a minute).
DEFAULT_MAX_CONNECTIONS_PER_MINUTE = 30
#: Seconds a connection refused at accept (`server_full`, `too_many_connections`) is kept half-closed after
#: its error frame, its input read and thrown away, so that closing never resets the frame away.
DEFAULT_REFUSAL_LINGER = 2.0
#: Refused connections kept lingering at once; past it the oldest is closed at once (bounded descriptors).
DEFAULT_MAX_LINGERING = 64
#: Messages replayed on a join without `backfill`, and the most any history reply carries.
DEFAULT_BACKFILL = 50
DEFAULT_MAX_BACKFILL = 500
#: SQLite `synchronous` mode for the history: FULL survives power loss, NORMAL only process crashes.
DEFAULT_HISTORY_SYNC = "FULL"
#: Seconds a history write waits for a lock held by another process (a backup, a sqlite3 shell) before the
#: messages of that batch are refused with `history_unavailable`.
DEFAULT_HISTORY_BUSY_TIMEOUT = 5.0
#: Most requests the history thread applies in one transaction (group commit).
DEFAULT_COMMIT_BATCH = 1024
#: Requests waiting for the history thread before readers are held back (back-pressure).
DEFAULT_HISTORY_QUEUE = 10_000
#: Seconds a reader waits for room in that queue before the request is refused ("server busy").
DEFAULT_HISTORY_WAIT = 5.0
#: Read markers a nick keeps (rooms and direct conversations); past it the least recently moved is dropped.
DEFAULT_READ_MARKERS_PER_NICK = 256
#: Conversations a nick may give a notification level other than the default (more: `too_long`).
DEFAULT_NOTIFY_LEVELS_PER_NICK = 256
#: Keywords a nick may have (more: `too_long`).
DEFAULT_MAX_KEYWORDS = 32
#: Seconds a closing connection (or a stopping server) gives the sender to write its last frames.
DEFAULT_LINGER = 1.0
#: Seconds a login waits for a nick whose holder is leaving (its client quit or closed, and the server has
#: not yet applied it) before it is refused with `nick_taken`.
DEFAULT_NICK_RELEASE_WAIT = 2.0
#: Wrong passwords (server password or a registered nick's) one address may try at once; after that it gets
#: one more try every `password_failure_seconds`, and is refused with `too_many_attempts` meanwhile.
DEFAULT_PASSWORD_FAILURES = 5
DEFAULT_PASSWORD_FAILURE_SECONDS = 60.0
#: Password hashes (scrypt, 16 MiB and tens of ms each) computed at once; more wait their turn.
DEFAULT_MAX_CONCURRENT_HASHES = 2
#: Source addresses whose per-address buckets (failed passwords, new connections) are remembered at once.
DEFAULT_MAX_TRACKED_ADDRESSES = 4096
#: Most entries a room keeps in each of its moderation lists (bans, mutes, stored operators, invitations).
DEFAULT_MAX_MODERATION_ENTRIES = 500
#: Seconds after sending during which its author may edit a message; 0: no window, always (the default).
DEFAULT_EDIT_WINDOW = 0.0
#: Different reactions one message may carry (a new one past it: `too_many_reactions`).
DEFAULT_MAX_REACTIONS_PER_MESSAGE = 20
#: Different reactions one nick may put on one message.
DEFAULT_MAX_REACTIONS_PER_USER = 5
#: Edits and deletions per connection: a bucket of `rate_edits_burst`, refilled at `rate_edits` per second;
#: past it they are refused with `rate_limited` (each is announced to the whole room).
DEFAULT_RATE_EDITS = 0.5
DEFAULT_RATE_EDITS_BURST = 10
#: Reactions (react and unreact) per connection, likewise.
DEFAULT_RATE_REACTIONS = 1.0
DEFAULT_RATE_REACTIONS_BURST = 20
#: Keep the previous text of an edited or deleted message (in the `message_revisions` table, never served
#: over the protocol). Off by default: an edit replaces the text, a deletion erases it (docs/security.md).
DEFAULT_KEEP_EDITS = False

#: Search (`search`): the longest query in bytes of UTF-8 (longer: `too_long`); the hits in a page when the
#: request gives no `limit`, and the most it may ask for (more: `invalid_field`); how many of the newest
#: matching messages are ranked (a page past them is empty: docs/performance.md, "Search").
DEFAULT_SEARCH_MAX_QUERY = 200
DEFAULT_SEARCH_PAGE = 20
DEFAULT_SEARCH_MAX_PAGE = 50
DEFAULT_SEARCH_SCAN = 1000
#: Searches per connection: a bucket of `rate_searches_burst`, refilled at `rate_searches` per second; over
#: it, refused with `rate_limited` (each search reads the index: far more work than a chat message).
DEFAULT_RATE_SEARCHES = 0.5
DEFAULT_RATE_SEARCHES_BURST = 5
#: Seconds between two `typing` starts of one connection in one room that the server relays; a start sooner
#: than that after the last one relayed is dropped silently (docs/protocol.md, `typing`).
DEFAULT_TYPING_INTERVAL = 3.0

_SYNC_MODES = ("FULL", "NORMAL")
#: The longest text the server itself writes into a reason field (error messages, sign-off reasons), in
#: bytes of UTF-8; `max_reason` may not be lower, or clients would refuse the server's own frames.
SERVER_TEXT_MAX = 128
#: Room a frame needs besides its longest text (room name, nick, ids, keys), so any valid message fits.
FRAME_OVERHEAD = 1024
#: Settings where 0 means something (any free port; the system's default buffer size).
_ZERO_ALLOWED = ("port", "send_buffer", "edit_window")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Everything the server can be told; each field's default is the named constant above."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: Folder for the history file; None means the platform's user data folder for "mpchat".
    data_dir: Path | None = None
    #: History database file; None means `history.sqlite3` in `data_dir`.
    db: Path | None = None
    server_name: str = DEFAULT_SERVER_NAME
    motd: str | None = None
    default_room: str = DEFAULT_ROOM

    max_frame: int = DEFAULT_MAX_FRAME
    max_text: int = DEFAULT_MAX_TEXT
    max_nick: int = DEFAULT_MAX_NICK
    max_room: int = DEFAULT_MAX_ROOM
    max_topic: int = DEFAULT_MAX_TOPIC
    max_reason: int = DEFAULT_MAX_REASON
    max_list: int = DEFAULT_MAX_LIST

    max_clients: int = DEFAULT_MAX_CLIENTS
    max_clients_per_ip: int = DEFAULT_MAX_CLIENTS_PER_IP
    max_connections_per_minute: int = DEFAULT_MAX_CONNECTIONS_PER_MINUTE
    refusal_linger: float = DEFAULT_REFUSAL_LINGER
    max_lingering: int = DEFAULT_MAX_LINGERING
    max_rooms_per_client: int = DEFAULT_MAX_ROOMS_PER_CLIENT
    max_sessions_per_nick: int = DEFAULT_MAX_SESSIONS_PER_NICK
    always_on: bool = DEFAULT_ALWAYS_ON
    hello_timeout: float = DEFAULT_HELLO_TIMEOUT
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT
    ping_interval: float = DEFAULT_PING_INTERVAL
    ping_timeout: float = DEFAULT_PING_TIMEOUT
    write_timeout: float = DEFAULT_WRITE_TIMEOUT
    sendq_soft: int = DEFAULT_SENDQ_SOFT
    sendq_soft_seconds: float = DEFAULT_SENDQ_SOFT_SECONDS
    sendq_hard: int = DEFAULT_SENDQ_HARD
    send_buffer: int = DEFAULT_SEND_BUFFER
    drop_linger: float = DEFAULT_DROP_LINGER
    rate_messages: float = DEFAULT_RATE_MESSAGES
    rate_burst: int = DEFAULT_RATE_BURST
    rate_bytes: float = DEFAULT_RATE_BYTES
    rate_bytes_burst: int = DEFAULT_RATE_BYTES_BURST
    max_fakelag_seconds: float = DEFAULT_MAX_FAKELAG_SECONDS
    flood_refusals: int = DEFAULT_FLOOD_REFUSALS
    rate_joins: float = DEFAULT_RATE_JOINS
    rate_joins_burst: int = DEFAULT_RATE_JOINS_BURST
    rate_nicks: float = DEFAULT_RATE_NICKS
    rate_nicks_burst: int = DEFAULT_RATE_NICKS_BURST
    backfill: int = DEFAULT_BACKFILL
    max_backfill: int = DEFAULT_MAX_BACKFILL
    search_max_query: int = DEFAULT_SEARCH_MAX_QUERY
    search_page: int = DEFAULT_SEARCH_PAGE
    search_max_page: int = DEFAULT_SEARCH_MAX_PAGE
    search_scan: int = DEFAULT_SEARCH_SCAN
    rate_searches: float = DEFAULT_RATE_SEARCHES
    rate_searches_burst: int = DEFAULT_RATE_SEARCHES_BURST
    typing_interval: float = DEFAULT_TYPING_INTERVAL
    history_sync: str = DEFAULT_HISTORY_SYNC
    history_busy_timeout: float = DEFAULT_HISTORY_BUSY_TIMEOUT
    commit_batch: int = DEFAULT_COMMIT_BATCH
    history_queue: int = DEFAULT_HISTORY_QUEUE
    history_wait: float = DEFAULT_HISTORY_WAIT
    read_markers_per_nick: int = DEFAULT_READ_MARKERS_PER_NICK
    notify_levels_per_nick: int = DEFAULT_NOTIFY_LEVELS_PER_NICK
    max_keywords: int = DEFAULT_MAX_KEYWORDS
    linger: float = DEFAULT_LINGER
    nick_release_wait: float = DEFAULT_NICK_RELEASE_WAIT
    #: The server password a `hello` must carry; None lets anyone in. Never shown in a repr or a log.
    password: str | None = dataclasses.field(default=None, repr=False)
    password_failures: int = DEFAULT_PASSWORD_FAILURES
    password_failure_seconds: float = DEFAULT_PASSWORD_FAILURE_SECONDS
    max_concurrent_hashes: int = DEFAULT_MAX_CONCURRENT_HASHES
    max_tracked_addresses: int = DEFAULT_MAX_TRACKED_ADDRESSES
    #: scrypt cost for newly registered nick passwords (stored with each hash, so it can be raised later).
    scrypt_n: int = DEFAULT_SCRYPT_N
    scrypt_r: int = DEFAULT_SCRYPT_R
    scrypt_p: int = DEFAULT_SCRYPT_P
    #: Nicks with operator rights in every room, once registered and verified (docs/security.md).
    admins: tuple[str, ...] = ()
    max_moderation_entries: int = DEFAULT_MAX_MODERATION_ENTRIES
    edit_window: float = DEFAULT_EDIT_WINDOW
    max_reactions_per_message: int = DEFAULT_MAX_REACTIONS_PER_MESSAGE
    max_reactions_per_user: int = DEFAULT_MAX_REACTIONS_PER_USER
    rate_edits: float = DEFAULT_RATE_EDITS
    rate_edits_burst: int = DEFAULT_RATE_EDITS_BURST
    rate_reactions: float = DEFAULT_RATE_REACTIONS
    rate_reactions_burst: int = DEFAULT_RATE_REACTIONS_BURST
    keep_edits: bool = DEFAULT_KEEP_EDITS
    #: The LAN beacon (off by default; the ``[beacon]`` table of server.toml, see docs/discovery.md).
    beacon: BeaconConfig = dataclasses.field(default_factory=BeaconConfig)
    #: TLS (off by default; the ``[tls]`` table of server.toml, ``--tls`` and friends; see chat_server.tls).
    tls: TlsConfig = dataclasses.field(default_factory=TlsConfig)
    #: File sharing (the ``[files]`` table of server.toml, see docs/server.md).
    files: FilesConfig = dataclasses.field(default_factory=FilesConfig)
    #: Cluster mode (off by default; the ``[cluster]`` table of server.toml, ``--cluster``; docs/cluster.md).
    cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
    #: Where to serve Prometheus metrics, "HOST:PORT" (or "PORT": loopback); None: no endpoint (the default).
    metrics: str | None = None

    def __post_init__(self) -> None:
        # Accept str paths too (from TOML or a caller): store them as Path.
        for name in ("data_dir", "db"):
            value: object = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(str(value)))
        numbers = [f.name for f in dataclasses.fields(self) if f.type in ("int", "float")]
        for name in numbers:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number, not {value!r}")
            if value <= 0 and name not in _ZERO_ALLOWED:
                raise ValueError(f"{name} must be positive, not {value!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, not {self.port}")
        if self.send_buffer < 0:
            raise ValueError("send_buffer must be 0 (system default) or a size in bytes")
        if self.history_sync.upper() not in _SYNC_MODES:
            raise ValueError(f"history_sync must be one of {_SYNC_MODES}, not {self.history_sync!r}")
        if self.sendq_soft > self.sendq_hard:
            raise ValueError("sendq_soft must not be larger than sendq_hard")
        if self.ping_timeout <= self.ping_interval:
            raise ValueError("ping_timeout must be longer than ping_interval")
        if self.max_reason < SERVER_TEXT_MAX:
            raise ValueError(f"max_reason must be at least {SERVER_TEXT_MAX} (the server's own messages)")
        for name in ("server_name", "motd"):
            text = getattr(self, name)
            if text is not None and len(text.encode()) > self.max_reason:
                raise ValueError(f"{name} is longer than max_reason ({self.max_reason} bytes)")
        largest_text = max(self.max_text, self.max_topic, self.max_reason)
        if self.max_frame < largest_text + FRAME_OVERHEAD:
            # A `said` carries the text plus the room, the nick and a few numbers: it must fit one frame.
            raise ValueError(f"max_frame must be at least {FRAME_OVERHEAD} bytes more than max_text")
        problem = room_problem(self.default_room, self.max_room)
        if problem is not None:
            raise ValueError(f"default_room: {problem}")
        if self.max_backfill > self.max_list or self.backfill > self.max_backfill:
            raise ValueError("backfill <= max_backfill <= max_list is required")
        if self.search_page > self.search_max_page:
            raise ValueError("search_page <= search_max_page is required")
        admins: object = self.admins  # from TOML or a caller: check before trusting the annotation
        if isinstance(admins, str) or not all(isinstance(nick, str) for nick in self.admins):
            raise ValueError("admins must be a list of nicks")
        object.__setattr__(self, "admins", tuple(self.admins))
        for nick in self.admins:
            if (problem := nick_problem(nick, self.max_nick)) is not None:
                raise ValueError(f"admins: {nick!r}: {problem}")
        if not isinstance(self.beacon, BeaconConfig):
            raise ValueError("beacon must be a BeaconConfig (the [beacon] table of the config file)")
        if self.password is not None and (not isinstance(self.password, str) or not self.password):
            raise ValueError("password must be a non-empty string (or unset)")
        if self.password is not None and len(self.password.encode()) > self.max_reason:
            raise ValueError(f"password is longer than max_reason ({self.max_reason} bytes)")
        self.scrypt_cost  # noqa: B018 -- validates the scrypt parameters now
        if not isinstance(self.tls, TlsConfig):
            raise ValueError("tls must be a TlsConfig (the [tls] table of the config file)")
        if self.tls.port and self.tls.port == self.port:
            raise ValueError(
                "the tls port must differ from the plaintext port (or leave it out: --tls alone)"
            )
        if not isinstance(self.files, FilesConfig):
            raise ValueError("files must be a FilesConfig (the [files] table of the config file)")
        if not isinstance(self.cluster, ClusterConfig):
            raise ValueError("cluster must be a ClusterConfig (the [cluster] table of the config file)")
        if self.metrics is not None:
            if not isinstance(self.metrics, str):
                raise ValueError(f"metrics must be a string HOST:PORT, not {self.metrics!r}")
            parse_metrics_address(self.metrics)
        # A smaller max_frame lowers the chunk size (announced in welcome.files) so a chunk frame fits.
        object.__setattr__(self, "files", self.files.fitted(self.max_frame))
        self.limits  # noqa: B018 -- validates the protocol limits now, not at the first connection

    @property
    def scrypt_cost(self) -> ScryptCost:
        """The scrypt cost new nick passwords are hashed with."""
        return ScryptCost(n=self.scrypt_n, r=self.scrypt_r, p=self.scrypt_p)

    @property
    def limits(self) -> Limits:
        """The protocol limits this server enforces and announces in `welcome`."""
        return Limits(
            max_frame=self.max_frame,
            max_text=self.max_text,
            max_nick=self.max_nick,
            max_room=self.max_room,
            max_topic=self.max_topic,
            max_reason=self.max_reason,
            max_list=self.max_list,
        )

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """The (host, port) of the metrics endpoint; None when it is off."""
        return None if self.metrics is None else parse_metrics_address(self.metrics)

    @property
    def files_folder(self) -> Path:
        """Where stored and partial files live (``files`` next to the history unless configured)."""
        return self.files.folder if self.files.folder is not None else self.history_path.parent / "files"

    @property
    def history_path(self) -> Path:
        """Where the history database lives."""
        if self.db is not None:
            return self.db
        folder = self.data_dir if self.data_dir is not None else Path(platformdirs.user_data_dir("mpchat"))
        return folder / HISTORY_FILE_NAME


def field_names() -> tuple[str, ...]:
    """The names accepted in a config file."""
    return tuple(field.name for field in dataclasses.fields(ServerConfig))


#: Settings renamed since a release, by their old name: a config file may still use the old one (a warning
#: is logged), never both.
RENAMED_SETTINGS = {"sequencer_queue": "history_queue", "sequencer_wait": "history_wait"}


def load_toml(path: Path) -> dict[str, Any]:
    """Read a `server.toml` file and return its settings, checked against the known field names.

    Raises `ValueError` with a clear message for an unknown key or unreadable file. An old name of a
    renamed setting (`RENAMED_SETTINGS`) is read as its new name, with a warning.
    """
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ValueError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config file {path} is not valid TOML: {error}") from None
    for old, new in RENAMED_SETTINGS.items():
        if old in data:
            if new in data:
                raise ValueError(f"config file {path}: {old} is the old name of {new}: give only {new}")
            log.warning("config file %s: %s is now called %s (the old name still works)", path, old, new)
            data[new] = data.pop(old)
    unknown = sorted(set(data) - set(field_names()))
    if unknown:
        raise ValueError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    for key in ("data_dir", "db"):
        if key in data:
            data[key] = Path(data[key])
    if "beacon" in data:
        if not isinstance(data["beacon"], dict):
            raise ValueError(f"config file {path}: beacon must be a table ([beacon])")
        data["beacon"] = beacon_config_from_table(data["beacon"])
    if "tls" in data:
        if not isinstance(data["tls"], dict):
            raise ValueError(f"config file {path}: tls must be a table ([tls])")
        try:
            data["tls"] = tls_config_from_table(data["tls"])
        except TypeError as error:
            raise ValueError(f"config file {path}: [tls]: {error}") from None
    if "cluster" in data:
        if not isinstance(data["cluster"], dict):
            raise ValueError(f"config file {path}: cluster must be a table ([cluster])")
        try:
            data["cluster"] = cluster_config_from_table(data["cluster"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"config file {path}: [cluster]: {error}") from None
    if "files" in data:
        if not isinstance(data["files"], dict):
            raise ValueError(f"config file {path}: files must be a table ([files])")
        data["files"] = files_config_from_table(data["files"])
    return data
