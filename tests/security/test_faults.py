"""Faults: a frozen client, slowloris clients, 200 connections that never log in, and a flood.

Each test runs a canary pair (tests/security/canary.py) next to the offender and asserts that the canary's own
messages kept arriving, in order, while the offender was dealt with; and that the offender was dealt with by
the rule docs/server.md documents (its error code, or the connection closed, and the sign-off reason the
others hear). Timeouts are configured short so every test takes seconds; no assertion is about speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chat_server.server import ChatServer
from shared import Ack, Error, Hello, Say, SignedOff, encode, frame
from shared.codec import encode_body
from tests.server.client import ChatTestClient, wait_until

from .canary import Canary

MakeServer = Callable[..., ChatServer]
StartCanary = Callable[..., Canary]
ROOT = Path(__file__).resolve().parents[2]

#: The pusher's pace in the send-queue test: 2,000 bytes every this many seconds (200 KB/s), so a live member
#: would have to stop reading for over two seconds to reach the 512 KiB limit; the frozen one reaches it.
PUSH_INTERVAL = 0.01
PUSH_LIMIT = 3000
#: The slowloris pace: one byte every this many seconds (the behaviour under test, not synchronisation).
TRICKLE_INTERVAL = 0.1


def error_codes(messages: list[object]) -> list[tuple[str, bool]]:
    """(code, fatal) of each error frame among `messages`."""
    return [(m.code, m.fatal) for m in messages if isinstance(m, Error)]


# -- A client frozen with SIGSTOP ----------------------------------------------------------------------------


class FrozenClient:
    """`tests/security/frozen_client.py` as a real process, logged in and then stopped with SIGSTOP."""

    def __init__(self, address: tuple[str, int], nick: str, room: str) -> None:
        self.nick = nick
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.security.frozen_client", address[0], str(address[1]), nick, room],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )

    def read_line(self, timeout: float) -> str:
        """The next line of the client's output, waiting at most `timeout` seconds."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"{self.nick} printed nothing within {timeout} s"
        return self.process.stdout.readline().strip()

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its socket but can neither read nor answer."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw_and_report(self, timeout: float = 10.0) -> list[tuple[str, bool]]:
        """SIGCONT, then the (code, fatal) pairs of the error frames it received while frozen."""
        os.kill(self.process.pid, signal.SIGCONT)
        return [(code, fatal) for code, fatal in json.loads(self.read_line(timeout))]

    def close(self) -> None:
        """Resume it (a stopped process still dies of SIGKILL, but say so plainly), kill it and reap it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def start_frozen() -> Iterator[Callable[[tuple[str, int], str, str], FrozenClient]]:
    """Start frozen-client processes; each is resumed, killed and reaped by PID after the test."""
    clients: list[FrozenClient] = []

    def start(address: tuple[str, int], nick: str, room: str) -> FrozenClient:
        """Start one client process and wait until it has logged in."""
        client = FrozenClient(address, nick, room)
        clients.append(client)
        assert client.read_line(15.0) == "ready"
        return client

    yield start
    for client in clients:
        client.close()


def test_frozen_client_is_dropped_by_ping_timeout(
    make_server: MakeServer, start_canary: StartCanary, start_frozen: Callable[..., FrozenClient]
) -> None:
    """A client frozen with SIGSTOP (half-open: its socket is alive, nobody answers) is pinged, then dropped
    with ping_timeout; the room hears "ping timeout"; the canary in the same room chats on throughout."""
    server = make_server(ping_interval=0.3, ping_timeout=1.0)
    # Paced, so what the room sends the frozen member meanwhile (a few KiB) fits the kernel's buffers, and the
    # final error frame reaches it; unpaced, the send queue rule below could be what drops it.
    canary = start_canary(server, interval=0.05)
    frozen = start_frozen(server.address, "frozen", canary.room)
    frozen.freeze()
    canary.wait_rounds(5)  # chatting while the frozen client is still a member
    sign_off = canary.heard_sign_off("frozen")
    assert sign_off.reason == "ping timeout"
    wait_until(lambda: server.stats().connections == 2, 10, "the frozen connection to be gone")
    canary.wait_rounds(5)
    # Once resumed, it finds what the server told it: a ping it could not answer, then the fatal error.
    assert frozen.thaw_and_report() == [("ping_timeout", True)]
    canary.stop()


def test_frozen_client_is_dropped_by_send_queue_limit(
    make_server: MakeServer, start_canary: StartCanary, start_frozen: Callable[..., FrozenClient]
) -> None:
    """A frozen client in a busy room (pings far away) fills its send queue and is dropped at sendq_hard with
    "send queue exceeded"; the canary and a sender pushing large messages into that room are unaffected."""
    server = make_server(sendq_soft=256 * 1024, sendq_hard=512 * 1024, send_buffer=4096, write_timeout=60.0)
    canary = start_canary(server)
    frozen = start_frozen(server.address, "frozen", canary.room)
    frozen.freeze()
    with ChatTestClient(server.address) as pusher:
        pusher.login("pusher", rooms=[canary.room])
        text = "p" * 2000
        pushed = 0
        next_push = time.monotonic()
        while not any(isinstance(m, SignedOff) and m.nick == "frozen" for m in list(canary.notices)):
            # Bounded: 512 KiB of queue plus the kernel's buffers is far less than PUSH_LIMIT messages.
            assert pushed < PUSH_LIMIT, "the frozen client was never dropped"
            pusher.drain(max(0.0, next_push - time.monotonic()))  # the pause, spent reading the room
            pusher.send(Say(room=canary.room, text=text, ref=pushed))
            pusher.recv(Ack, ref=pushed)  # every message is stored and acknowledged, frozen member or not
            pushed += 1
            next_push += PUSH_INTERVAL
        assert canary.heard_sign_off("frozen").reason == "send queue exceeded"
        wait_until(lambda: server.stats().connections == 3, 10, "the frozen connection to be gone")
        canary.wait_rounds(5)
        wait_until(lambda: len([m for m in canary.foreign if m.nick == "pusher"]) >= pushed, 15, "all pushed")
        assert [m.text for m in canary.foreign if m.nick == "pusher"] == [text] * pushed
    canary.stop()


# -- Slowloris -----------------------------------------------------------------------------------------------


def trickle(client: ChatTestClient, data: bytes) -> tuple[int, list[tuple[str, bool]]]:
    """Send `data` one byte every `TRICKLE_INTERVAL` seconds until the server closes the connection.

    Between bytes it listens for the server's answer. Returns how many bytes went out and the error codes.
    """
    sent = 0
    received: list[object] = []
    next_byte = time.monotonic()
    for byte in data:
        received += client.drain(max(0.0, next_byte - time.monotonic()))  # the pause, spent listening
        if client.closed:
            break
        try:
            client.send_raw(bytes([byte]))
        except OSError:
            break  # the server hung up between two bytes
        sent += 1
        next_byte += TRICKLE_INTERVAL
    if not client.closed:
        received += client.wait_closed(10)
    return sent, error_codes(received)


def test_slowloris_before_hello_is_closed_by_hello_timeout(
    make_server: MakeServer, start_canary: StartCanary
) -> None:
    """A hello trickled one byte per interval never completes: hello_timeout closes it, frame deadline or
    not; the canary chats on."""
    server = make_server(hello_timeout=1.0, frame_timeout=30.0)
    canary = start_canary(server)
    hello = frame(encode_body(Hello(proto="mpchat", version=1, nick="slowpoke" * 4)))
    with ChatTestClient(server.address) as slow:
        sent, codes = trickle(slow, hello)
    assert codes == [("hello_timeout", True)]
    assert sent < len(hello), "the whole hello went out: the deadline did not cut it off"
    canary.wait_rounds(5)
    canary.stop()


def test_slowloris_after_login_is_closed_by_frame_timeout(
    make_server: MakeServer, start_canary: StartCanary
) -> None:
    """A logged-in client trickling one frame a byte per interval is cut off by frame_timeout (bad_frame), and
    the room hears "frame timeout"; the canary chats on."""
    server = make_server(frame_timeout=1.0)
    canary = start_canary(server)
    say = frame(encode_body(Say(room=canary.room, text="s" * 200)))
    with ChatTestClient(server.address) as slow:
        slow.login("slowpoke", rooms=[canary.room])
        sent, codes = trickle(slow, say)
    assert codes == [("bad_frame", True)]
    assert sent < len(say)
    assert canary.heard_sign_off("slowpoke").reason == "frame timeout"
    canary.wait_rounds(5)
    canary.stop()


# -- 200 connections that never log in -----------------------------------------------------------------------

IDLE_HOSTS = [f"127.0.0.{n}" for n in range(2, 12)]  # ten "hosts" on one machine
PER_HOST = 20


def test_200_connections_that_never_log_in(make_server: MakeServer, start_canary: StartCanary) -> None:
    """200 silent connections from ten addresses: each address's 21st is too_many_connections, the canary
    still logs in and chats, the next one over max_clients is server_full, and every silent one is closed by
    hello_timeout; then only the canary is left, and those hosts can log in again."""
    server = make_server(max_clients=202, max_clients_per_ip=PER_HOST, hello_timeout=3.0)
    idle: list[ChatTestClient] = []
    try:
        for host in IDLE_HOSTS:
            idle += [ChatTestClient(server.address, source=host) for _ in range(PER_HOST)]
            with ChatTestClient(server.address, source=host) as extra:
                assert error_codes(extra.wait_closed()) == [("too_many_connections", True)]
        canary = start_canary(server)  # 200 silent connections do not keep a real client out
        canary.wait_rounds(5)
        with ChatTestClient(server.address, source="127.0.0.12") as over:
            assert error_codes(over.wait_closed()) == [("server_full", True)]
        for client in idle:
            assert error_codes(client.wait_closed(15)) == [("hello_timeout", True)]
    finally:
        for client in idle:
            client.close()
    wait_until(lambda: server.stats().connections == 2, 10, "only the canary left")
    canary.wait_rounds(5)
    with ChatTestClient(server.address, source=IDLE_HOSTS[0]) as back:
        assert back.login("back").nick == "back"
    canary.stop()


# -- Connection churn ---------------------------------------------------------------------------------------


def test_connection_churn_leaves_nothing_behind(make_server: MakeServer, start_canary: StartCanary) -> None:
    """300 connections from one address, each closed at once (half of them with a reset, half with a
    half-finished hello): every one frees its per-address slot (a limit of 8 still admits a login from that
    address afterwards), the server is back to the canary alone, and the canary chats on throughout."""
    server = make_server(max_clients_per_ip=8)
    canary = start_canary(server)
    hello = frame(encode_body(Hello(proto="mpchat", version=1, nick="churn")))
    for n in range(300):
        client = ChatTestClient(server.address, source="127.0.0.7")
        if n % 2:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        else:
            with contextlib.suppress(OSError):  # refused at the limit: the server may have closed already
                client.send_raw(hello[: n % len(hello)])
        client.close()
    canary.wait_rounds(5)
    wait_until(lambda: server.stats().connections == 2, 15, "only the canary left")

    def logs_in_again() -> bool:
        """One login from the churned address; False if refused (see below)."""
        with ChatTestClient(server.address, source="127.0.0.7") as again:
            try:
                return again.login("after-churn").nick == "after-churn"
            except AssertionError:
                return False

    # On a loaded machine the acceptor may still be taking the last churned connections out of the listen
    # backlog (each holds a slot for a moment): the slots must come free, so a login succeeds within the wait.
    wait_until(logs_in_again, 15, "a login from the churned address")
    canary.wait_rounds(5)
    canary.stop()


# -- A flood from one client ---------------------------------------------------------------------------------


def test_flood_is_delayed_then_disconnected(make_server: MakeServer, start_canary: StartCanary) -> None:
    """A client that keeps writing messages into the canary's room as fast as TCP lets it gets its burst
    through, then its messages are delayed (stored at the rate, none refused), until its reader has been
    behind it for max_fakelag_seconds: excess_flood (fatal), the only error it gets. The room gets exactly
    the acknowledged messages, in order, and hears "excess flood"; the canary, paced under the limit, chats
    on."""
    server = make_server(rate_messages=20.0, rate_burst=20, max_fakelag_seconds=1.5)
    canary = start_canary(server, interval=0.1)  # each canary client sends at most 5 per second
    with ChatTestClient(server.address) as flooder:
        flooder.login("flooder", rooms=[canary.room])
        batch = b"".join(encode(Say(room=canary.room, text=f"flood {n}", ref=n)) for n in range(100))

        def flood() -> None:
            """Write until the server hangs up (the bytes need not be numbered past the first batch)."""
            with contextlib.suppress(OSError):
                flooder.sock.sendall(batch)
                while True:
                    flooder.sock.sendall(encode(Say(room=canary.room, text="more flood", ref=99_999)) * 50)

        writer = threading.Thread(target=flood, name="flooder")
        writer.start()
        received = flooder.wait_closed(15)
        writer.join(10)
    assert error_codes(received) == [("excess_flood", True)]
    acked = [m.ref for m in received if isinstance(m, Ack)]
    assert 20 <= len(acked) <= 20 + 1 + 30  # the burst, then at 20/s for at most 1.5 s
    assert acked == list(range(len(acked)))
    assert canary.heard_sign_off("flooder").reason == "excess flood"
    relayed = [m.text for m in list(canary.foreign) if m.nick == "flooder"]
    assert relayed == [f"flood {ref}" for ref in acked]
    canary.wait_rounds(5)
    canary.stop()
