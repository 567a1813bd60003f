"""Start the servers under test as processes: ours (history on, in a fresh data folder) or the baseline.

Each server runs in its own process so the load generator can read its CPU time and memory from /proc, and
so it can be pinned to its own CPU. The benchmark raises only the limits that every client coming from
127.0.0.1 would otherwise hit, through the server's normal configuration file (see `BENCH_SETTINGS`);
every other limit (queue sizes, frame and text limits, history on with `synchronous=FULL`) keeps its default.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: Settings written to the benchmark's server.toml: the per-connection rate limit (a load generator's sender
#: sends up to thousands of messages a second) and the connection limits (all clients share one address).
BENCH_SETTINGS: dict[str, int | float] = {
    "max_clients": 10_000,
    "max_clients_per_ip": 10_000,
    "rate_messages": 1_000_000.0,
    "rate_burst": 1_000_000,
    "rate_bytes": 1_000_000_000.0,
    "rate_bytes_burst": 1_000_000_000,
    "rate_joins": 1_000_000.0,
    "rate_joins_burst": 1_000_000,
    "rate_nicks": 1_000_000.0,
    "rate_nicks_burst": 1_000_000,
    "max_connections_per_minute": 1_000_000,
}
#: Which servers the suite knows.
SERVERS = ("mpchat", "tutorial")
#: Seconds a server has to print its "listening on" line, and to exit after SIGTERM.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
#: Open files the server may use (one per client, and two threads' worth of nothing else).
FD_LIMIT = 20_000

#: The checkout this module belongs to (`python -m` imports the servers from the working directory).
CHECKOUT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on (\S+):(\d+)")


class ServerError(RuntimeError):
    """The server under test did not start, or died."""


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started server: its name, process id and address."""

    name: str
    pid: int
    host: str
    port: int
    log: Path


def toml_text(settings: dict[str, int | float | str]) -> str:
    """The server.toml lines for `settings`."""
    return "".join(f"{key} = {value!r}\n" for key, value in settings.items())


def command(
    name: str,
    workdir: Path,
    settings: dict[str, int | float | str] | None = None,
    arguments: tuple[str, ...] = (),
) -> list[str]:
    """The command line that starts server `name` on a free port, its files in `workdir`.

    `settings` are written to our server's server.toml after `BENCH_SETTINGS` (e.g. a `history_sync` to
    compare); the tutorial server has no settings.
    """
    if name == "mpchat":
        config = workdir / "server.toml"
        config.write_text(
            "# written by benchmarks/servers.py: limits raised for the benchmark\n"
            + toml_text({**BENCH_SETTINGS, **(settings or {})})
        )
        return [
            sys.executable,
            "-m",
            "chat_server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(workdir),
            "--config",
            str(config),
            "--log-level",
            "WARNING",
            *arguments,
        ]
    if name == "tutorial":
        return [
            sys.executable,
            "-m",
            "chat_lab.lessons.tutorial_server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]
    raise ValueError(f"unknown server {name!r}; known: {', '.join(SERVERS)}")


def _pinned_to(cpu: int | None) -> Callable[[], None]:
    def setup() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = FD_LIMIT if hard == resource.RLIM_INFINITY else min(FD_LIMIT, hard)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return setup


@contextlib.contextmanager
def started(
    name: str,
    cpu: int | None = None,
    source: Path | None = None,
    settings: dict[str, int | float | str] | None = None,
    arguments: tuple[str, ...] = (),
) -> Iterator[RunningServer]:
    """Start server `name` (pinned to `cpu` if given) in a fresh temporary folder; stop it on exit.

    `source` is the folder the server's packages are imported from (default: this checkout); point it at
    an exported commit (`git archive`) to measure that version while the checkout is being edited.
    `settings` go to our server's server.toml on top of `BENCH_SETTINGS`; `arguments` are added to our
    server's command line (e.g. ``--cluster URLS``).
    """
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        workdir = Path(folder)
        log = workdir / "server.log"
        with log.open("wb") as errors:
            process = subprocess.Popen(
                command(name, workdir, settings, arguments),
                stdout=subprocess.PIPE,
                stderr=errors,
                stdin=subprocess.DEVNULL,
                preexec_fn=_pinned_to(cpu),
                # The LAN beacon is off by default; should a config turn it on, it stays on loopback.
                env={**os.environ, "MPCHAT_DISCOVERY_LOOPBACK_ONLY": "1"},
                cwd=source if source is not None and name == "mpchat" else CHECKOUT,
            )
        try:
            host, port = _wait_listening(process, log)
            yield RunningServer(name=name, pid=process.pid, host=host, port=port, log=log)
            if process.poll() is not None:
                raise ServerError(
                    f"{name} server exited with {process.returncode} during the run: {tail(log)}"
                )
        finally:
            _stop(process)


def _wait_listening(process: subprocess.Popen[bytes], log: Path) -> tuple[str, int]:
    """Read the server's stdout until its "listening on HOST:PORT" line, within `START_TIMEOUT`."""
    assert process.stdout is not None
    stream = process.stdout.fileno()
    deadline = time.monotonic() + START_TIMEOUT
    seen = b""
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([stream], [], [], remaining)
        chunk = os.read(stream, 4096) if readable else b""
        seen += chunk
        match = _LISTENING.search(seen.decode(errors="replace"))
        if match:
            return match.group(1), int(match.group(2))
        if readable and not chunk:
            process.wait(STOP_TIMEOUT)
            raise ServerError(f"server exited with {process.returncode} before listening: {tail(log)}")
    raise ServerError(f"server did not print its address within {START_TIMEOUT} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
    if process.stdout is not None:
        process.stdout.close()


def tail(log: Path, lines: int = 5) -> str:
    """The last `lines` lines of a server log, joined with " | " (for error messages and results)."""
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
