"""A process in a real pseudo-terminal, for the tests that need a terminal rather than pipes: what the
program draws or echoes is read back from the pty's master side, keys are written to it."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path

from tests.waiting import DEADLINE


def _take_terminal() -> None:
    """In the child, between fork and exec: make the pty (its stdin) the session's controlling terminal, as a
    shell does, so that Ctrl-C typed on it sends SIGINT, and give SIGINT its default action, as a shell
    does for a foreground job. (An ignored SIGINT survives exec: a test run started in the background by a
    non-interactive shell ignores it, and so would every program it starts, Ctrl-C included.)"""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class PtyProcess:
    """`command` running with a pty as its stdin, stdout and stderr; everything it writes is kept."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        rows: int = 30,
        columns: int = 100,
    ) -> None:
        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process = subprocess.Popen(
            list(command),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        self.output = b""

    def _read(self, timeout: float) -> bool:
        """Read what is there (waiting at most `timeout`); False once the terminal is closed."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: the process and its children closed the terminal
            return False
        self.output += data
        return bool(data)

    def read_until(self, text: bytes, timeout: float = DEADLINE) -> None:
        """Read until `text` has been written (AssertionError with the output so far after `timeout`)."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not written within {timeout} s; output: {self.output[-2000:]!r}"
            if not self._read(min(left, 0.5)) and text not in self.output:
                raise AssertionError(f"terminal closed before {text!r}; output: {self.output[-2000:]!r}")

    def echoes(self) -> bool:
        """True if the terminal echoes what is typed (its ECHO flag, as the program left it)."""
        return bool(termios.tcgetattr(self._master)[3] & termios.ECHO)

    def write(self, data: bytes) -> None:
        """Type `data`."""
        os.write(self._master, data)

    def wait(self, timeout: float = DEADLINE) -> int:
        """Read everything until the process exits; its exit status."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            left = deadline - time.monotonic()
            assert left > 0, f"still running after {timeout} s; output: {self.output[-2000:]!r}"
            if not self._read(min(left, 0.1)):
                break
        return self.process.wait(timeout=max(deadline - time.monotonic(), 1.0))

    def close(self) -> None:
        """Kill the process if it still runs, and close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)
        os.close(self._master)
