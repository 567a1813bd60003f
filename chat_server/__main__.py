"""`chat-server`: run the chat server from the command line until SIGINT or SIGTERM.

After binding it prints one line to stdout, ``mpchat server listening on HOST:PORT`` (an IPv6 host in
brackets: ``[::1]:7878``), so scripts and tests can read the real port (with ``--port 0``). With TLS a
second line follows, ``mpchat server tls on HOST:PORT fingerprint HEX``: the TLS port (the same one with
``--tls`` alone) and the SHA-256 of the server's public key, which clients show and pin on first use. With
``--metrics`` a line ``mpchat server metrics on http://HOST:PORT/metrics`` follows (the real port with
``--metrics HOST:0``). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from shared.addresses import host_port

from .beacon.config import add_beacon_arguments, beacon_config_from_args
from .cluster.config import add_cluster_arguments, cluster_config_from_args
from .cluster.link import ClusterUnavailable
from .config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, load_toml
from .filesconfig import add_files_arguments, files_config_from_args
from .metrics import MetricsUnavailable
from .recorder import DEFAULT_RECORD_FILES, DEFAULT_RECORD_MAX_BYTES, start_recording
from .server import ChatServer
from .storage import HistoryError
from .tls import TlsSetupError, add_tls_arguments, tls_config_from_args

#: Limits that can be overridden on the command line (all of them can be set in the config file).
CLI_LIMITS: dict[str, type] = {
    "max_clients": int,
    "max_clients_per_ip": int,
    "max_connections_per_minute": int,
    "max_sessions_per_nick": int,
    "rate_messages": float,
    "rate_burst": int,
    "rate_bytes": float,
    "rate_bytes_burst": int,
    "rate_joins": float,
    "rate_joins_burst": int,
    "rate_nicks": float,
    "rate_nicks_burst": int,
    "rate_searches": float,
    "rate_searches_burst": int,
    "rate_edits": float,
    "rate_edits_burst": int,
    "rate_reactions": float,
    "rate_reactions_burst": int,
    "edit_window": float,
    "max_reactions_per_message": int,
    "max_reactions_per_user": int,
    "hello_timeout": float,
    "nick_release_wait": float,
    "ping_interval": float,
    "ping_timeout": float,
    "sendq_soft": int,
    "sendq_hard": int,
    "history_sync": str,
    "password_failures": int,
    "password_failure_seconds": float,
}
#: Environment variable that may hold the server password (a password on the command line shows in `ps`).
PASSWORD_ENV = "MPCHAT_SERVER_PASSWORD"

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(threadName)s %(message)s"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="chat-server", description="Run the mpchat chat server.")
    parser.add_argument(
        "--host",
        help="address to listen on: IPv4, IPv6 (:: is dual-stack: IPv4 too) or a name "
        f"(default {DEFAULT_HOST})",
    )
    parser.add_argument("--port", type=int, help=f"TCP port, 0 for any free one (default {DEFAULT_PORT})")
    parser.add_argument(
        "--data-dir", type=Path, help="folder for the history (default: the user data folder)"
    )
    parser.add_argument("--db", type=Path, help="history database file (default: DATA_DIR/history.sqlite3)")
    parser.add_argument("--config", type=Path, help="a server.toml file (same names as the settings below)")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO"
    )
    parser.add_argument("--trace", action="store_true", help="log every frame in and out, decoded")
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write every frame in and out to FILE, one JSON line each, passwords redacted (chat-lab replay)",
    )
    parser.add_argument(
        "--record-max-bytes",
        type=int,
        default=DEFAULT_RECORD_MAX_BYTES,
        metavar="BYTES",
        help=f"rotate the recording past this size (default {DEFAULT_RECORD_MAX_BYTES})",
    )
    parser.add_argument(
        "--record-files",
        type=int,
        default=DEFAULT_RECORD_FILES,
        metavar="N",
        help=f"older recording files kept: FILE.1 ... FILE.N (default {DEFAULT_RECORD_FILES})",
    )
    for name, kind in CLI_LIMITS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, metavar=name.upper())
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="PATH",
        help=f"require the server password in this file (first line); or set {PASSWORD_ENV}",
    )
    parser.add_argument(
        "--admin",
        action="append",
        metavar="NICK",
        help="a server admin: operator in every room once NICK is registered and verified (repeatable)",
    )
    parser.add_argument(
        "--keep-edits",
        action="store_true",
        default=None,
        help="keep the previous text of edited and deleted messages in the database (default: an edit"
        " replaces the text, a deletion erases it)",
    )
    parser.add_argument(
        "--always-on",
        action="store_true",
        default=None,
        help="keep a registered nick in its rooms while none of its sessions is connected, and store direct"
        " messages to it for its next login (default: off)",
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (a port alone: on 127.0.0.1; off by"
        " default; needs the 'metrics' extra)",
    )
    add_beacon_arguments(parser)
    add_tls_arguments(parser)
    add_files_arguments(parser)
    add_cluster_arguments(parser)
    return parser


def read_password_file(path: Path) -> str:
    """The password in `path`: its first line, without the line break. Raises `ValueError` with a reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read password file {path}: {error}") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise ValueError(f"password file {path} is empty")
    if path.stat().st_mode & 0o077:
        log.warning("event=password_file_readable_by_others path=%s (chmod 600 it)", path)
    return password


def config_from(arguments: argparse.Namespace) -> ServerConfig:
    """Merge defaults, the config file, then command-line options (later wins)."""
    settings: dict[str, Any] = load_toml(arguments.config) if arguments.config else {}
    for name in ("host", "port", "data_dir", "db", *CLI_LIMITS):
        value = getattr(arguments, name)
        if value is not None:
            settings[name] = value
    if arguments.admin:
        settings["admins"] = tuple(arguments.admin)
    if arguments.metrics is not None:
        settings["metrics"] = arguments.metrics
    if arguments.keep_edits:
        settings["keep_edits"] = True
    if arguments.always_on:
        settings["always_on"] = True
    settings["beacon"] = beacon_config_from_args(arguments, settings.get("beacon"))
    if arguments.password_file is not None:
        settings["password"] = read_password_file(arguments.password_file)
    elif os.environ.get(PASSWORD_ENV):
        settings["password"] = os.environ[PASSWORD_ENV]
    settings["tls"] = tls_config_from_args(arguments, settings.get("tls"))
    settings["files"] = files_config_from_args(arguments, settings.get("files"))
    settings["cluster"] = cluster_config_from_args(arguments, settings.get("cluster"))
    return ServerConfig(**settings)


def setup_logging(level: str, trace: bool) -> None:
    """Log lines to stderr; `--trace` adds the frame-by-frame trace logger at DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    trace_logger = logging.getLogger("chat_server.trace")
    if trace:
        trace_logger.setLevel(logging.DEBUG)
        if root.level > logging.DEBUG:
            # Only the trace logger speaks at DEBUG; other loggers keep --log-level.
            trace_logger.addHandler(handler)
            trace_logger.propagate = False
    else:
        trace_logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM; exit code 0 after a clean stop, 2 for bad settings."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        config = config_from(arguments)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    setup_logging(arguments.log_level, arguments.trace)
    if arguments.migrate is not None:
        if not config.cluster.enabled:
            parser.error("--migrate needs --cluster (or a [cluster] table with urls)")
        return _migrate(arguments.migrate, config)
    if arguments.record is not None:  # before the server starts: its threads read the trace's level then
        try:
            start_recording(arguments.record, arguments.record_max_bytes, arguments.record_files)
        except (OSError, ValueError) as error:
            parser.error(f"--record: {error}")
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        """Ask the main loop to stop (the signal handler does nothing else)."""
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server = ChatServer(config)
    try:
        server.start()
    except (OSError, HistoryError, TlsSetupError, MetricsUnavailable, ClusterUnavailable) as error:
        print(f"chat-server: cannot start: {error}", file=sys.stderr)
        return 1
    try:
        print(f"mpchat server listening on {host_port(*server.address)}", flush=True)
        if server.tls_address is not None:
            tls_at = host_port(*server.tls_address)
            print(f"mpchat server tls on {tls_at} fingerprint {server.fingerprint}", flush=True)
        if server.metrics_address is not None:
            metrics_host, metrics_port = server.metrics_address
            print(f"mpchat server metrics on {_url(metrics_host, metrics_port)}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


def _migrate(path: Path, config: ServerConfig) -> int:
    """`--migrate FILE`: the single-server history into the cluster's stream (chat_server.cluster.migrate)."""
    from .cluster.migrate import MigrationError, migrate

    try:
        report = migrate(path, config.cluster)
    except MigrationError as error:
        print(f"chat-server: cannot migrate: {error}", file=sys.stderr)
        return 1
    print(report.describe(config.cluster.stream), flush=True)
    return 0


def _url(host: str, port: int) -> str:
    """The metrics URL (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


if __name__ == "__main__":
    sys.exit(main())
