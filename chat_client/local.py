"""``chat-client --local``: start a chat server as a child process, for a one-command start.

The client speaks only the protocol: it never imports the server. `local_server` runs
``python -m chat_server`` (the same interpreter) on 127.0.0.1, with its history in the client's data folder
and its log in ``local-server.log`` there, reads the port it bound from its documented start-up line
(``mpchat server listening on HOST:PORT``), and stops it by its process id when the client exits: SIGTERM,
then SIGKILL after `DEFAULT_LOCAL_STOP_TIMEOUT`. On Linux the kernel also sends the server SIGTERM if the
client dies without stopping it. The server runs in its own session, so a Ctrl-C at the terminal reaches
the client only, and the client stops the server after saying goodbye.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from shared.limits import DEFAULT_MAX_NICK
from shared.text import nick_problem

log = logging.getLogger(__name__)


#: The nick `--local` uses when no nick was given or remembered and the login name makes none.
FALLBACK_NICK = "guest"
# What a nick may not hold, in an ASCII login name; other names are checked character by character.
_NOT_NICK = re.compile(r"[^A-Za-z0-9_.\-]+")


def login_nick(max_len: int = DEFAULT_MAX_NICK) -> str:
    """A nick made from the login name, for ``chat-client --local`` with no nick given or remembered.

    Characters a nick may not hold become ``_`` (``Bob Smith`` -> ``Bob_Smith``), the result is cut to
    `max_len`; `FALLBACK_NICK` when nothing usable is left.
    """
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor in the password database
        return FALLBACK_NICK
    if name.isascii():
        name = _NOT_NICK.sub("_", name)
    else:
        name = "".join(char if nick_problem(char, 1) is None else "_" for char in name)
    name = name.strip("_.-")[:max_len].strip("_.-")
    return name if name and nick_problem(name, max_len) is None else FALLBACK_NICK


#: How long ``--local`` waits for the server's start-up line before it gives up.
DEFAULT_LOCAL_START_TIMEOUT = 30.0
#: How long the server gets to stop after SIGTERM before it is killed.
DEFAULT_LOCAL_STOP_TIMEOUT = 10.0
#: The file in the data folder that receives the local server's log (its standard error).
LOCAL_SERVER_LOG = "local-server.log"
#: The server's start-up line (chat_server's `__main__` docstring), followed by ``HOST:PORT``.
LISTENING = "mpchat server listening on "
#: Environment variables the child server must not inherit: a password meant for a remote server
#: (``MPCHAT_SERVER_PASSWORD``) would lock the local one.
_NOT_INHERITED = ("MPCHAT_SERVER_PASSWORD",)
#: `prctl` option: the signal the kernel sends a child when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


class LocalServerError(RuntimeError):
    """The local server could not start (the port is taken, the server is missing, it did not answer)."""


def server_command(port: int, data_dir: Path) -> list[str]:
    """The command line of the local server: this interpreter, loopback only, history in `data_dir`."""
    return [
        sys.executable,
        "-m",
        "chat_server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]


@contextlib.contextmanager
def local_server(
    port: int,
    data_dir: Path,
    start_timeout: float = DEFAULT_LOCAL_START_TIMEOUT,
    stop_timeout: float = DEFAULT_LOCAL_STOP_TIMEOUT,
) -> Iterator[tuple[str, int]]:
    """Run a server process on 127.0.0.1:`port` (0: any free port), yield its address, then stop it.

    Raises `LocalServerError`, with the server's own words when it gave any, if it does not start.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / LOCAL_SERVER_LOG
    env = {name: value for name, value in os.environ.items() if name not in _NOT_INHERITED}
    with open(log_path, "ab") as server_log:
        try:
            process = subprocess.Popen(
                server_command(port, data_dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=server_log,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as error:
            raise LocalServerError(f"cannot start a local server: {error.strerror or error}") from None
    try:
        address = _wait_until_listening(process, start_timeout, log_path)
        log.info("local server pid %d listening on %s:%d, history in %s", process.pid, *address, data_dir)
        yield address
    finally:
        stop_process(process, stop_timeout)


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the client dies (Linux's `prctl`)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until_listening(
    process: subprocess.Popen[bytes], timeout: float, log_path: Path
) -> tuple[str, int]:
    """Read the server's start-up line within `timeout`; its address. Raises `LocalServerError`."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    output = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LocalServerError(
                    f"the local server did not start within {timeout:g} s (see {log_path})"
                )
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:  # it exited before listening: its last log line says why
                process.wait()
                raise LocalServerError(f"cannot start a local server: {_last_line(log_path)}")
            output += chunk
    line = output.split(b"\n", 1)[0].decode("utf-8", "replace")
    if not line.startswith(LISTENING):
        raise LocalServerError(f"the local server said {line!r} instead of where it listens")
    host, _, port = line.removeprefix(LISTENING).rpartition(":")
    return host, int(port)


def _last_line(log_path: Path) -> str:
    """The last non-empty line of the server's log (where it says why it did not start)."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return lines[-1].removeprefix("chat-server: cannot start: ") if lines else "it exited at once"


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop the server by its process id: SIGTERM, then SIGKILL after `timeout`; reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("local server pid %d did not stop within %g s: killed", process.pid, timeout)
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
