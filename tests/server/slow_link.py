"""A private network namespace whose loopback slows the server's data down, for races that loopback is too
fast to show.

`run_in_namespace(body)` creates a network namespace (root is needed for `ip netns`), brings its loopback up,
and runs `body(namespace)` on a thread that has entered it (`setns`): every socket that thread creates, and
every thread it starts (a whole `ChatServer`), lives in the namespace. `slow_data_from(namespace, port)` then
shapes the TCP segments that carry data (PSH) from `port` to `rate` with HTB, while everything else (SYN,
ACK, FIN without data, RST) passes at once: exactly the situation where a reset overtakes a frame still on its
way, as on a real network with a slow or lossy path. The namespace is deleted afterwards whatever happens.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable

#: clone(2) flag for a network namespace (os.CLONE_NEWNET exists only from Python 3.12).
CLONE_NEWNET = 0x40000000
#: Longest a single `ip`/`tc` command may take.
COMMAND_TIMEOUT = 10.0
#: Byte offset of the TCP flags in an IPv4 packet without options (20-byte IP header + 13); PSH is 0x08.
TCP_FLAGS_OFFSET = 33
PSH = 0x08


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr.strip()}"


def _enter(namespace: str) -> None:
    """Move the calling thread into `namespace` (threads it starts afterwards follow it)."""
    fd = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)


def run_in_namespace(body: Callable[[str], None]) -> None:
    """Run `body(namespace)` on a thread inside a fresh network namespace; re-raise what it raised."""
    namespace = f"mpchat-{os.getpid()}-{threading.get_ident() % 100000}"
    _run("ip", "netns", "add", namespace)
    failure: list[BaseException] = []

    def main() -> None:
        try:
            _enter(namespace)
            body(namespace)
        except BaseException as error:  # reported on the test's thread
            failure.append(error)

    try:
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        thread = threading.Thread(target=main, name="in-namespace")
        thread.start()
        thread.join()
    finally:
        subprocess.run(
            ["ip", "netns", "del", namespace], capture_output=True, timeout=COMMAND_TIMEOUT, check=False
        )
    if failure:
        raise failure[0]


def slow_data_from(namespace: str, port: int, rate: str = "32kbit") -> None:
    """Shape the data-carrying segments sent from `port` on the namespace's loopback to `rate`."""
    tc = ("ip", "netns", "exec", namespace, "tc")
    _run(*tc, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10")
    _run(*tc, "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit")
    slow = ("classid", "1:20", "htb", "rate", rate, "burst", "1", "cburst", "1")
    _run(*tc, "class", "add", "dev", "lo", "parent", "1:", *slow)
    match = ("match", "ip", "sport", str(port), "0xffff", "match", "u8", hex(PSH), hex(PSH), "at")
    _run(
        *tc,
        "filter",
        "add",
        "dev",
        "lo",
        "parent",
        "1:",
        "protocol",
        "ip",
        "prio",
        "1",
        "u32",
        *match,
        str(TCP_FLAGS_OFFSET),
        "flowid",
        "1:20",
    )
