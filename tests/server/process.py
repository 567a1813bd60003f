"""Run `chat-server` as a real subprocess (for kill -9, signals and the command line)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

LISTENING = "mpchat server listening on "


class ServerProcess:
    """`python -m chat_server ...` with its stdout parsed for the listening address."""

    def __init__(self, *arguments: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chat_server", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd or Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        # The log goes to stderr: read it as it comes, or a long run fills the pipe (64 KiB) and the server's
        # next log line blocks whichever thread writes it (the conformance suite did, after 84 cases).
        self._stderr: list[str] = []
        self._drain = threading.Thread(
            target=self._stderr.extend, args=(self.process.stderr,), name="server-stderr", daemon=True
        )
        self._drain.start()
        self.first_line = self.process.stdout.readline()  # bounded: the process prints it or exits
        self.address: tuple[str, int] | None = None
        if self.first_line.startswith(LISTENING):
            host, port = self.first_line[len(LISTENING) :].strip().rsplit(":", 1)
            self.address = (host.removeprefix("[").removesuffix("]"), int(port))  # [::1]:PORT for IPv6

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10) -> int:
        """Send `sig` and return the exit code."""
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def close(self) -> tuple[str, str]:
        """Make sure the process is gone; return the rest of its stdout and its stderr."""
        if self.process.poll() is None:
            self.process.kill()
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        self.process.wait(10)
        self._drain.join(10)
        return out, "".join(self._stderr)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
