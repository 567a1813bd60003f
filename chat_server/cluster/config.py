"""Cluster settings: the ``[cluster]`` table of server.toml and the ``--cluster`` command-line option.

Cluster mode is off unless at least one NATS URL is given (docs/cluster.md). Every setting has a named
default below. Nothing here opens a connection: chat_server.cluster.link does.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: The JetStream stream holding the message log of rooms and direct messages.
DEFAULT_STREAM = "MPCHAT"
#: The subject prefix of everything the servers publish (the log is PREFIX.log).
DEFAULT_SUBJECT_PREFIX = "mpchat"
#: The prefix of the key-value buckets (nicks, rooms, accounts, moderation) the servers share.
DEFAULT_BUCKET_PREFIX = "mpchat"
#: Copies JetStream keeps of the stream and the buckets: 3 on a three-node NATS cluster (R3).
DEFAULT_REPLICAS = 3
#: Seconds JetStream remembers a message id (`Nats-Msg-Id`) to drop a resent message (its own default).
DEFAULT_DUPLICATE_WINDOW = 120.0
#: Seconds the server tries to reach NATS (and JetStream) at start before it refuses to start.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds a publish waits for JetStream's acknowledgement before the message is refused.
DEFAULT_PUBLISH_TIMEOUT = 5.0
#: Publishes sent to JetStream at once without waiting for their acknowledgements (the pipeline).
DEFAULT_MAX_IN_FLIGHT = 1024
#: The object store bucket of shared files is PREFIX-files (`bucket_prefix`) unless `files_bucket` names one.
FILES_BUCKET_SUFFIX = "files"
#: Seconds a download waits for a file this server does not hold to be fetched from the object store.
DEFAULT_FETCH_TIMEOUT = 60.0
#: Bytes of an upload in progress between two checkpoints of its confirmed prefix into the cluster (the
#: object store bucket ``FILES_BUCKET-partial``), so it can resume on another server (0: no checkpoints).
DEFAULT_UPLOAD_CHECKPOINT = 8 * 1024 * 1024
#: The object store bucket of checkpoints is the files bucket's name with this suffix.
PARTIAL_BUCKET_SUFFIX = "-partial"
#: Seconds a server's entry in the servers bucket lives without a refresh: a server that died without
#: saying goodbye stops being announced in `welcome` after at most this long (refreshed every third of it).
DEFAULT_SERVER_LEASE = 15.0

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """The cluster's settings (the ``[cluster]`` table); each default is named above."""

    #: NATS servers to connect to (``nats://HOST:PORT`` or ``tls://HOST:PORT``); empty: cluster mode off.
    urls: tuple[str, ...] = ()
    #: A NATS credentials file (JWT and NKey seed), for a NATS cluster that requires it.
    credentials: Path | None = None
    #: TLS to NATS: the CA file to verify the NATS servers with (setting it turns TLS on) ...
    tls_ca: Path | None = None
    #: ... and a client certificate and key, for NATS servers that verify their clients.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    stream: str = DEFAULT_STREAM
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    bucket_prefix: str = DEFAULT_BUCKET_PREFIX
    replicas: int = DEFAULT_REPLICAS
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    #: The address clients should use to reach this server, ``HOST:PORT``, announced to the other servers'
    #: clients in `welcome.servers`; None: the listening address, unless it is a wildcard (0.0.0.0, ::).
    announce: str | None = None
    server_lease: float = DEFAULT_SERVER_LEASE
    #: The JetStream object store bucket holding the shared files; None: ``PREFIX-files``.
    files_bucket: str | None = None
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    #: Bytes between two checkpoints of an upload in progress (chat_server.cluster.checkpoints); 0: none.
    upload_checkpoint: int = DEFAULT_UPLOAD_CHECKPOINT

    def __post_init__(self) -> None:
        urls: Any = self.urls  # from a TOML file or a caller: check before trusting the annotation
        if isinstance(urls, str) or not all(isinstance(url, str) for url in urls):
            raise ValueError("cluster urls must be a list of nats://HOST:PORT strings")
        object.__setattr__(self, "urls", tuple(urls))
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise ValueError(f"cluster url {url!r} is not nats://HOST:PORT (or tls://HOST:PORT)")
            try:
                parts.port  # noqa: B018 -- raises ValueError for a port out of range
            except ValueError:
                raise ValueError(f"cluster url {url!r} has a bad port") from None
        for name in ("credentials", "tls_ca", "tls_cert", "tls_key"):
            value: Any = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                if not isinstance(value, str):
                    raise ValueError(f"cluster {name} must be a file path, not {value!r}")
                object.__setattr__(self, name, Path(value))
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("cluster tls_cert and tls_key go together")
        for name in ("stream", "bucket_prefix", "files_bucket"):
            if name == "files_bucket" and self.files_bucket is None:
                continue
            if not isinstance(getattr(self, name), str) or not _NAME.match(getattr(self, name)):
                raise ValueError(f"cluster {name} must be 1-64 letters, digits, - or _")
        if not isinstance(self.subject_prefix, str) or not _SUBJECT_TOKEN.match(self.subject_prefix):
            raise ValueError("cluster subject_prefix must be 1-64 letters, digits, - or _")
        for name in ("replicas", "max_in_flight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"cluster {name} must be a positive whole number, not {value!r}")
        checkpoint: Any = self.upload_checkpoint
        if isinstance(checkpoint, bool) or not isinstance(checkpoint, int) or checkpoint < 0:
            raise ValueError(
                f"cluster upload_checkpoint must be a whole number of bytes (0: off), not {checkpoint!r}"
            )
        if self.replicas > 5:
            raise ValueError("cluster replicas must be 1 to 5 (JetStream's limit)")
        announce: Any = self.announce
        if announce is not None and (not isinstance(announce, str) or ":" not in announce):
            raise ValueError(f"cluster announce must be HOST:PORT, not {announce!r}")
        for name in (
            "duplicate_window",
            "connect_timeout",
            "publish_timeout",
            "server_lease",
            "fetch_timeout",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"cluster {name} must be a number of seconds, not {value!r}")
            if value <= 0:
                raise ValueError(f"cluster {name} must be positive, not {value!r}")

    @property
    def enabled(self) -> bool:
        """True if cluster mode is on (at least one NATS URL)."""
        return bool(self.urls)

    @property
    def files_bucket_name(self) -> str:
        """The object store bucket of shared files: `files_bucket`, else ``PREFIX-files``."""
        return self.files_bucket or f"{self.bucket_prefix}-{FILES_BUCKET_SUFFIX}"

    @property
    def partial_bucket_name(self) -> str:
        """The object store bucket of uploads' checkpoints: the files bucket's name and ``-partial``."""
        return self.files_bucket_name + PARTIAL_BUCKET_SUFFIX

    @property
    def log_subject(self) -> str:
        """The subject of the message log."""
        return f"{self.subject_prefix}.log"


def parse_urls(text: str) -> tuple[str, ...]:
    """``nats://H:P,nats://H:P`` (the ``--cluster`` value) as a tuple of URLs."""
    return tuple(url.strip() for url in text.split(",") if url.strip())


def cluster_config_from_table(table: Mapping[str, Any]) -> ClusterConfig:
    """Build a `ClusterConfig` from the ``[cluster]`` table; an unknown key or a bad value: ValueError."""
    known = {field.name for field in dataclasses.fields(ClusterConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"unknown cluster setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in table.items()
    }
    if isinstance(values.get("urls"), str):
        values["urls"] = parse_urls(values["urls"])
    return ClusterConfig(**values)


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--cluster`` to `parser`."""
    parser.add_argument(
        "--cluster",
        metavar="URLS",
        help="cluster mode: share rooms and history with other servers through these NATS JetStream"
        " servers, nats://HOST:PORT[,nats://HOST:PORT...] (docs/cluster.md; needs the 'cluster' extra)",
    )
    parser.add_argument(
        "--migrate",
        type=Path,
        metavar="FILE",
        help="with --cluster: publish the single-server history database FILE into the cluster's (empty)"
        " stream, then exit (docs/cluster.md)",
    )


def cluster_config_from_args(args: argparse.Namespace, base: ClusterConfig | None = None) -> ClusterConfig:
    """Return `base` (default: the defaults) with ``--cluster`` applied."""
    base = base or ClusterConfig()
    if getattr(args, "cluster", None):
        return dataclasses.replace(base, urls=parse_urls(args.cluster))
    return base
