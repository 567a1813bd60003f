"""Over-rate clients are delayed, not refused (docs/server.md, "Rate limits"; issue 14 item 5).

A client whose queued lines reach the server together (after a stall of its link, or of the client itself)
is above its burst through no fault of its own. The server must not refuse those messages (the refusals,
resends and refusals again used to end in `excess_flood`): it stops reading that connection until the
bucket has a token, so TCP holds the client back, and order is kept by construction. Each test runs the
canary next to the client and checks that every message is stored, acknowledged and relayed exactly once and
in order, that the client got no error and stayed connected, and that the canary chatted on meanwhile.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chat_lab.proxy import FaultProxy, ProxyThread
from chat_server.server import ChatServer
from shared import Ack, Error, Ping, Pong, Say, encode
from tests.server.client import ChatTestClient, wait_until

from .canary import Canary

MakeServer = Callable[..., ChatServer]
StartCanary = Callable[..., Canary]
ROOT = Path(__file__).resolve().parents[2]

#: The scaled limits: the default burst of 10 and 2 per second, the rate raised 25 times so a backlog of 200
#: drains in under 4 seconds. Pings every 0.5 s and dead after 1.5 s of silence: shorter than the drain.
SCALED = {"rate_burst": 10, "rate_messages": 50.0, "ping_interval": 0.5, "ping_timeout": 1.5}
#: The canary's pause between rounds, so it stays under the scaled rate itself.
CANARY_INTERVAL = 0.05


def says(room: str, count: int, start: int = 0) -> list[Say]:
    """`count` numbered messages with refs and client_msg_ids from `start`."""
    return [
        Say(room=room, text=f"line {n}", client_msg_id=f"m{n}", ref=n) for n in range(start, start + count)
    ]


def relayed_by(canary: Canary, nick: str) -> list[str]:
    """The texts the canary room heard from `nick`, in order."""
    return [m.text for m in list(canary.foreign) if m.nick == nick]


def acks_in_order(client: ChatTestClient, count: int, timeout: float) -> list[int]:
    """Read until `count` acks arrived (answering pings); fail on any error frame. The refs, in order."""
    refs: list[int] = []
    deadline = time.monotonic() + timeout
    while len(refs) < count:
        message = client.recv_until(lambda m: isinstance(m, Ack | Error | Ping), deadline - time.monotonic())
        assert not isinstance(message, Error), f"error after {len(refs)} acks: {message!r}"
        if isinstance(message, Ping):
            client.send(Pong(token=message.token))
        elif isinstance(message, Ack):
            assert message.ref is not None
            refs.append(message.ref)
    return refs


def still_connected(client: ChatTestClient) -> None:
    """The connection is alive: a ping is answered."""
    client.send(Ping(token=4242))
    client.recv(Pong, token=4242)


def test_200_messages_at_once_are_delayed_not_refused(
    make_server: MakeServer, start_canary: StartCanary
) -> None:
    """Burst 10, 50 per second: 200 messages in one write are all stored, acknowledged and relayed in order,
    with no refusal and no disconnect, and no faster than the rate (the first 10 at once, the other 190 at
    50/s: at least 3.8 s). The drain outlasts ping_timeout: a delayed client is not dead. The canary (in the
    same room) chats on while the backlog drains."""
    server = make_server(**SCALED)
    canary = start_canary(server, interval=CANARY_INTERVAL)
    with ChatTestClient(server.address) as client:
        client.login("backlog", rooms=[canary.room])
        started = time.monotonic()
        client.send_raw(b"".join(encode(say) for say in says(canary.room, 200)))
        canary.wait_rounds(3)
        assert len(relayed_by(canary, "backlog")) < 200  # the canary chatted while the backlog was held back
        assert acks_in_order(client, 200, 30) == list(range(200))
        elapsed = time.monotonic() - started
        assert elapsed >= 190 / 50.0 * 0.9, f"200 messages stored in {elapsed:.2f} s: faster than the rate"
        still_connected(client)
    wait_until(lambda: len(relayed_by(canary, "backlog")) == 200, 15, "all 200 relayed")
    assert relayed_by(canary, "backlog") == [f"line {n}" for n in range(200)]
    canary.wait_rounds(3)
    canary.stop()


def test_a_frozen_link_releasing_its_backlog_is_not_kicked(
    make_server: MakeServer, start_canary: StartCanary
) -> None:
    """A client sending steadily at 25 per second (under the 50) through a link that freezes until 40 of its
    messages are held, then delivers them at once: all stored and relayed in order, no error, no
    disconnect."""
    server = make_server(**{**SCALED, "ping_timeout": 5.0})  # the freeze itself must not look like death
    canary = start_canary(server, interval=CANARY_INTERVAL)
    total = 120
    sent = [0]
    stop = threading.Event()
    with ProxyThread(FaultProxy(server.address)) as proxy, ChatTestClient(proxy.address) as client:
        client.login("steady", rooms=[canary.room])

        def send_steadily() -> None:
            """One message every 40 ms (pacing the sender, not synchronising the test)."""
            for say in says(canary.room, total):
                client.send_unchecked(say)
                sent[0] += 1
                if stop.wait(0.04):
                    return

        sender = threading.Thread(target=send_steadily, name="steady-sender")
        sender.start()
        try:
            wait_until(lambda: sent[0] >= 20, 15, "20 messages sent before the freeze")
            proxy.call(lambda link: link.freeze("up"))  # held in the proxy, not lost
            held_from = sent[0]
            wait_until(lambda: sent[0] >= held_from + 40, 15, "40 messages held by the frozen link")
            canary.wait_rounds(2)
            assert proxy.call(lambda link: link.held("up")) > 0
            proxy.call(lambda link: link.thaw("up"))  # everything held goes out in one write
            assert acks_in_order(client, total, 30) == list(range(total))
        finally:
            stop.set()
            sender.join(10)
        still_connected(client)
    wait_until(lambda: len(relayed_by(canary, "steady")) == total, 15, "everything relayed")
    assert relayed_by(canary, "steady") == [f"line {n}" for n in range(total)]
    canary.wait_rounds(3)
    canary.stop()


class BacklogClient:
    """`tests/security/backlog_client.py` as a real process."""

    def __init__(self, address: tuple[str, int], nick: str, room: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.security.backlog_client", address[0], str(address[1]), nick, room],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )

    def read_line(self, timeout: float) -> str:
        """The next line of the client's output, waiting at most `timeout` seconds."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"the backlog client printed nothing within {timeout} s"
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        """Resume, kill and reap it (by its pid)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def backlog_client() -> Iterator[Callable[[tuple[str, int], str, str], BacklogClient]]:
    """Start backlog-client processes; each is killed and reaped after the test."""
    clients: list[BacklogClient] = []

    def start(address: tuple[str, int], nick: str, room: str) -> BacklogClient:
        client = BacklogClient(address, nick, room)
        clients.append(client)
        assert client.read_line(15.0) == "ready"
        return client

    yield start
    for client in clients:
        client.close()


def test_a_client_stopped_with_sigstop_sends_its_backlog_and_is_not_kicked(
    make_server: MakeServer,
    start_canary: StartCanary,
    backlog_client: Callable[[tuple[str, int], str, str], BacklogClient],
) -> None:
    """A client process frozen with SIGSTOP while 150 lines are typed into it (the server may ping it
    meanwhile) sends them all at once on SIGCONT, any pong queued behind them: every line stored and relayed
    in order, no error, no disconnect."""
    # The freeze must not look like death to the server (it lasts as long as the canary's rounds take).
    server = make_server(**{**SCALED, "ping_interval": 0.3, "ping_timeout": 10.0})
    canary = start_canary(server, interval=CANARY_INTERVAL)
    client = backlog_client(server.address, "stopped", canary.room)
    os.kill(client.process.pid, signal.SIGSTOP)
    assert client.process.stdin is not None
    client.process.stdin.write("".join(f"line {n}\n" for n in range(150)))
    client.process.stdin.flush()
    canary.wait_rounds(5)  # the room goes on while the client is frozen (and the server pings it)
    os.kill(client.process.pid, signal.SIGCONT)
    client.process.stdin.close()
    report = json.loads(client.read_line(40.0))
    assert report == {"acked": list(range(150)), "errors": [], "alive": True}
    wait_until(lambda: len(relayed_by(canary, "stopped")) == 150, 15, "all 150 relayed")
    assert relayed_by(canary, "stopped") == [f"line {n}" for n in range(150)]
    canary.wait_rounds(3)
    canary.stop()
