"""A client that stops reading is dropped (sendq_exceeded or write timeout); nobody else notices."""

from __future__ import annotations

import time
from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Ack, Said, Say, SignedOff

from .client import ChatTestClient

TEXT = "x" * 4000


def stalled_client(server: ChatServer, nick: str) -> ChatTestClient:
    """Log in with a tiny receive buffer; the test never reads from it again."""
    client = ChatTestClient(server.address, receive_buffer=4096)
    try:
        client.login(nick)
    except BaseException:
        client.close()
        raise
    return client


def say_big(alice: ChatTestClient, ref: int) -> None:
    """Alice says one `TEXT` and waits for its ack: by then the server has queued it for every member."""
    alice.send(Say(room="lobby", text=TEXT, ref=ref))
    alice.recv(Ack, ref=ref)


def test_stalled_reader_is_dropped_at_hard_limit(make_server: Callable[..., ChatServer]) -> None:
    """Past the hard limit the stalled client is dropped with sendq_exceeded; others get every message."""
    hard = 64 * 1024
    server = make_server(
        send_buffer=16 * 1024,
        sendq_soft=32 * 1024,
        sendq_hard=hard,
        sendq_soft_seconds=60.0,
        write_timeout=60.0,
    )
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        bob.login("bob")
        with stalled_client(server, "slow"):
            received: list[int] = []
            sent, largest = 0, 0
            deadline = time.monotonic() + 30
            off: list[SignedOff] = []
            while not off and time.monotonic() < deadline:
                say_big(alice, sent)
                sent += 1
                largest = max(largest, server.stats().max_queued_bytes)
                for message in bob.drain(0.0):
                    if isinstance(message, Said):
                        received.append(message.id)
                    elif isinstance(message, SignedOff):
                        off.append(message)
            assert off, "the stalled client was never dropped"
            assert (off[0].nick, off[0].reason) == ("slow", "send queue exceeded")
            # Memory stayed bounded by the hard limit plus one frame.
            assert largest <= hard + 4200
            # Bob kept getting every message while the stalled client piled up.
            alice.send(Say(room="lobby", text="after", ref=sent))
            alice.recv(Ack, ref=sent)
            last = bob.recv(Said, text="after")
            received += [m.id for m in bob.pending if isinstance(m, Said)]
            assert len(received) == sent
            assert last.id > max(received)


def test_slow_reader_over_soft_limit_too_long_is_dropped(make_server: Callable[..., ChatServer]) -> None:
    """Above the soft limit for longer than sendq_soft_seconds, the client is dropped too."""
    server = make_server(
        send_buffer=16 * 1024,
        sendq_soft=16 * 1024,
        sendq_hard=1 << 30,
        sendq_soft_seconds=0.3,
        write_timeout=60.0,
    )
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        bob.login("bob")
        with stalled_client(server, "slow"):
            sent = 0
            # Twice the soft limit queued: the kernel's buffers are full, and the queue stays over the limit.
            while server.stats().queues.get("slow", 0) <= 32 * 1024:
                say_big(alice, sent)
                sent += 1
                bob.drain(0.0)
                assert sent < 10_000
            # No more messages: the sender's timer must notice the queue stayed over the soft limit.
            off = bob.recv(SignedOff, timeout=5)
            assert (off.nick, off.reason) == ("slow", "send queue exceeded")


def test_blocked_write_past_deadline_closes(make_server: Callable[..., ChatServer]) -> None:
    """A write that blocks longer than write_timeout closes that connection."""
    server = make_server(send_buffer=16 * 1024, sendq_soft=1 << 29, sendq_hard=1 << 30, write_timeout=0.3)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        bob.login("bob")
        with stalled_client(server, "slow"):
            sent = 0
            deadline = time.monotonic() + 30
            while not [m for m in bob.pending if isinstance(m, SignedOff)]:
                assert time.monotonic() < deadline, "never closed"
                say_big(alice, sent)
                sent += 1
                bob.pending = [m for m in bob.drain(0.0) if isinstance(m, SignedOff)]
            off = bob.pending[0]
            assert isinstance(off, SignedOff)
            assert (off.nick, off.reason) == ("slow", "write timeout")


def test_stop_with_a_stalled_client_is_still_quick(make_server: Callable[..., ChatServer]) -> None:
    """A client that reads nothing cannot hold up stop(): the sender gets `linger` for it, then it closes."""
    server = make_server(send_buffer=16 * 1024, write_timeout=60.0, linger=0.3)
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        with stalled_client(server, "slow"):
            sent = 0
            while server.stats().queues.get("slow", 0) <= 64 * 1024:
                say_big(alice, sent)
                sent += 1
            started = time.monotonic()
            server.stop()
            assert time.monotonic() - started < 2.0
