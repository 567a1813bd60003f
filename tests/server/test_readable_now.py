"""`readable_now`: is input waiting on a socket, without waiting (a login's nick holder, fakelag's check)."""

from __future__ import annotations

import os
import resource
import select
import socket
from collections.abc import Iterator

import pytest

from chat_server.reader.connection import readable_now

HIGH_FD = 1500  # past select()'s FD_SETSIZE (1024): a server with over a thousand connections has such fds


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)  # as a reader's socket: a timeout, so a plain recv would wait
    yield ours, theirs
    ours.close()
    theirs.close()


def check(ours: socket.socket, theirs: socket.socket) -> None:
    assert not readable_now(ours)
    theirs.sendall(b"x")
    assert readable_now(ours)
    assert ours.recv(1) == b"x"
    assert not readable_now(ours)
    theirs.close()
    assert readable_now(ours), "the end of the stream counts as input waiting"


def test_input_and_end_of_stream_are_seen_without_waiting(pair: tuple[socket.socket, socket.socket]) -> None:
    check(*pair)


def test_a_descriptor_past_1023_works(pair: tuple[socket.socket, socket.socket]) -> None:
    """select.select refuses descriptors past 1023 (it raised, and the caller took that for "leaving")."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard > HIGH_FD, "this test needs a descriptor limit above 1500"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, HIGH_FD + 1), hard))
    ours, theirs = pair
    high = socket.socket(fileno=os.dup2(ours.fileno(), HIGH_FD))
    try:
        high.settimeout(5)
        with pytest.raises(ValueError, match="filedescriptor out of range"):
            select.select([high], [], [], 0)
        check(high, theirs)
    finally:
        high.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
