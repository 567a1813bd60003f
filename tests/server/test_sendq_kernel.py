"""Slow consumers: the kernel's share is bounded, progress is what counts, a dropped client learns why.

A stalled client here is a socket with a small SO_RCVBUF that the test does not read; a slow one is read at a
fixed pace by a thread (`PacedReader`). What the server's kernel holds for a client is read from
/proc/net/tcp (the `tx_queue` column: bytes sent but not yet acknowledged, `SIOCOUTQ`), so the test does not
rely on the server to report it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from chat_server.config import DEFAULT_MAX_FRAME, DEFAULT_SEND_BUFFER, DEFAULT_SENDQ_HARD
from chat_server.sender.thread import SenderThread, SendQueue
from chat_server.server import ChatServer
from shared import Ack, EndOfStream, Error, Message, RemoteProtocolError, Said, Say, SignedOff

from .client import ChatTestClient, wait_until

TEXT = "x" * 4000
#: What one client may cost the server at most, as docs/architecture.md states it: the hard limit, plus the
#: frame that crossed it, plus the kernel's send buffer (Linux reserves twice the `send_buffer` asked for).
DOCUMENTED_BOUND = DEFAULT_SENDQ_HARD + DEFAULT_MAX_FRAME + 2 * DEFAULT_SEND_BUFFER


def kernel_send_queue(server: ChatServer, client: socket.socket) -> int:
    """Bytes the server's kernel holds for `client` (sent, not yet acknowledged by the client)."""
    server_port, client_port = server.address[1], client.getsockname()[1]
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                return int(fields[4].split(":")[0], 16)
    return 0  # the server's socket is gone


def signed_off(watcher: ChatTestClient, nick: str) -> SignedOff | None:
    """The `signed_off` of `nick` if `watcher` has received it (reads what has arrived, never waits)."""
    watcher.pending = watcher.drain(0.0)  # what was pending plus what has arrived
    for message in watcher.pending:
        if isinstance(message, SignedOff) and message.nick == nick:
            return message
    return None


class PacedReader:
    """A client that reads its socket at `rate` bytes per second, in a thread, and decodes what it reads."""

    CHUNK = 4096

    def __init__(self, client: ChatTestClient, rate: float) -> None:
        self.client = client
        self.interval = self.CHUNK / rate
        self.protocol = client.protocol  # logged in already: its decoder goes on from there
        self.messages: list[Message] = []
        self.received = 0
        self.ended: str | None = None  # "eof", "reset" or the error, once the reading ended
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (and wait for the thread)."""
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        sock = self.client.sock
        sock.settimeout(0.2)
        # The pace of a slow link: the stop event's timeout is the time between two reads of CHUNK bytes.
        while not self._stop.wait(self.interval):
            try:
                data = sock.recv(self.CHUNK)
            except TimeoutError:
                continue
            except ConnectionResetError:
                self.ended = "reset"
                return
            self.received += len(data)
            self.protocol.receive_data(data)
            try:
                for event in self.protocol.events():
                    if isinstance(event, EndOfStream):
                        self.ended = "eof"
                        return
                    if isinstance(event, RemoteProtocolError):
                        raise event
                    self.messages.append(event)
            except Exception as error:  # a test failure, reported by the test thread
                self.ended = repr(error)
                return
            if not data:
                self.ended = "eof"
                return


def test_stalled_client_costs_at_most_the_documented_bound(make_server: Callable[..., ChatServer]) -> None:
    """With the default settings, our queue plus the kernel's send queue stay under the documented bound."""
    server = make_server()  # the default send_buffer, sendq limits and write_timeout
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        with ChatTestClient(server.address, receive_buffer=4096) as slow:
            slow.login("slow")
            largest, sent = 0, 0
            deadline = time.monotonic() + 60
            while signed_off(alice, "slow") is None:
                assert time.monotonic() < deadline, "the stalled client was never dropped"
                alice.send(Say(room="lobby", text=TEXT, ref=sent))
                alice.recv(Ack, ref=sent)
                sent += 1
                held = server.stats().queues.get("slow", 0) + kernel_send_queue(server, slow.sock)
                largest = max(largest, held)
            assert largest <= DOCUMENTED_BOUND, f"a stalled client held {largest} bytes"
            # It was dropped by the hard limit, not sooner: the kernel did not hide the queue from it.
            assert sent * len(TEXT) > DEFAULT_SENDQ_HARD


def test_slow_but_steady_reader_is_not_dropped_by_the_write_deadline(
    make_server: Callable[..., ChatServer],
) -> None:
    """A client that keeps reading (64 KiB/s) while far behind makes progress: write_timeout spares it."""
    # A short write deadline (2 s), so that the test is quick; the reader pauses 1/16 s between reads.
    server = make_server(write_timeout=2.0, sendq_soft_seconds=60.0, sendq_hard=64 << 20)
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        slow = ChatTestClient(server.address, receive_buffer=16 * 1024)
        reader = PacedReader(slow, 64 * 1024)
        try:
            slow.login("slow")
            reader.start()
            # A backlog of 6 MB at once (more than the kernel's largest send buffer, 4 MiB), then a steady
            # ~100 KiB/s.
            sent = 0
            for _ in range(1500):
                alice.send(Say(room="lobby", text=TEXT, ref=sent))
                sent += 1
            alice.recv(Ack, ref=sent - 1)
            started = time.monotonic()
            while time.monotonic() < started + 6.0:  # three write deadlines
                alice.send(Say(room="lobby", text=TEXT, ref=sent))
                alice.recv(Ack, ref=sent)
                sent += 1
                off = signed_off(alice, "slow")
                assert off is None, f"dropped after {time.monotonic() - started:.1f} s: {off.reason}"
                assert reader.ended is None
                # ~100 KiB/s: the pace of the room, waited for on alice's own socket (nothing arrives on it).
                alice.pending = alice.drain(0.04)
            assert reader.received > 4 * 64 * 1024  # it did keep reading meanwhile
            assert server.stats().queues.get("slow", 0) > 256 * 1024  # far behind, over the soft limit
        finally:
            reader.stop()
            slow.close()


def test_dropped_slow_reader_gets_sendq_exceeded_as_its_last_frame(
    make_server: Callable[..., ChatServer],
) -> None:
    """A reader too slow for its room is dropped, and the last frame it reads says why; then a clean EOF."""
    server = make_server(
        sendq_soft=64 * 1024, sendq_soft_seconds=1.0, sendq_hard=64 << 20, write_timeout=60.0
    )
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        slow = ChatTestClient(server.address, receive_buffer=16 * 1024)
        reader = PacedReader(slow, 64 * 1024)
        try:
            slow.login("slow")
            reader.start()
            sent = 0
            deadline = time.monotonic() + 30
            while signed_off(alice, "slow") is None:  # ~4x what it reads: over the soft limit for 1 s
                assert time.monotonic() < deadline, "the slow client was never dropped"
                for _ in range(32):
                    alice.send(Say(room="lobby", text=TEXT, ref=sent))
                    sent += 1
                alice.recv(Ack, ref=sent - 1)
                alice.pending = alice.drain(0.1)
            off = signed_off(alice, "slow")
            assert off is not None
            assert off.reason == "send queue exceeded"
            # It keeps reading at its pace: what it still gets ends with the reason, then the end of stream.
            wait_until(lambda: reader.ended is not None, 20.0, "the end of the slow client's stream")
            assert reader.ended == "eof"
            last = reader.messages[-1]
            assert isinstance(last, Error), f"last frame: {last!r}"
            assert (last.code, last.fatal) == ("sendq_exceeded", True)
            # What came before it are whole, ordinary frames (the frame in progress was completed).
            assert all(isinstance(m, Said) for m in reader.messages[:-1] if not isinstance(m, Error))
        finally:
            reader.stop()
            slow.close()


def raw_frame(number: int, size: int) -> bytes:
    """A length-prefixed frame of `size` body bytes, each the frame's number (the sender never decodes)."""
    return size.to_bytes(4, "big") + bytes([number % 256]) * size


def test_abort_finishes_the_frame_in_progress_then_sends_only_the_last_frame() -> None:
    """Dropping a client whose kernel buffer is full: the frame the kernel took part of is completed, every
    frame not begun is discarded, and the last frame (the reason) follows at once, then the end of stream."""
    sender = SenderThread(60.0)
    sender.start()
    ours, theirs = socket.socketpair()
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        sendq = SendQueue(soft=1 << 30, hard=1 << 30, soft_seconds=60.0)
        channel = sender.attach(1, sendq, ours, lambda *_: None, b"")
        frames = [raw_frame(number, 1000 + 37 * number) for number in range(200)]  # ~940 KB, never all taken
        sendq.put_many(frames)
        wait_until(lambda: channel.held, what="the kernel buffer to fill")
        last = raw_frame(255, 10)
        sendq.abort(last)
        theirs.settimeout(5)
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
        wait_until(channel.done.is_set, what="the sender to let go")
        got = []
        while received:
            size = int.from_bytes(received[:4], "big")
            got.append(received[: 4 + size])
            received = received[4 + size :]
        assert got[-1] == last
        assert 0 < len(got) - 1 < len(frames)
        assert got[:-1] == frames[: len(got) - 1]  # whole frames, in order, then the reason
        assert sendq.queued == 0  # the discarded frames are no longer counted
    finally:
        sender.stop(5.0)
        ours.close()
        theirs.close()


def test_a_dropped_client_that_never_reads_is_closed_after_drop_linger(
    make_server: Callable[..., ChatServer],
) -> None:
    """The reason waits `drop_linger` for a client that reads nothing, then the server lets go of it."""
    server = make_server(sendq_soft=32 * 1024, sendq_hard=64 * 1024, write_timeout=60.0, drop_linger=1.0)
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        with ChatTestClient(server.address, receive_buffer=4096) as slow:
            slow.login("slow")
            sent = 0
            deadline = time.monotonic() + 30
            while signed_off(alice, "slow") is None:
                assert time.monotonic() < deadline, "the stalled client was never dropped"
                alice.send(Say(room="lobby", text=TEXT, ref=sent))
                alice.recv(Ack, ref=sent)
                sent += 1
            dropped = time.monotonic()
            wait_until(lambda: server.stats().connections == 1, 15.0, "the server to close the socket")
            assert time.monotonic() - dropped < 10.0  # drop_linger (1 s) plus the load's slack, not 60 s


def test_a_dropped_client_that_resets_is_let_go_at_once(make_server: Callable[..., ChatServer]) -> None:
    """`drop_linger` waits for a client that may still read the reason, not for one that has reset: its
    kernel send queue never empties, and the server must not wait for it."""
    server = make_server(sendq_soft=32 * 1024, sendq_hard=64 * 1024, write_timeout=60.0, drop_linger=60.0)
    with ChatTestClient(server.address) as alice:
        alice.login("alice")
        slow = ChatTestClient(server.address, receive_buffer=4096)
        try:
            slow.login("slow")
            sent = 0
            deadline = time.monotonic() + 30
            while signed_off(alice, "slow") is None:
                assert time.monotonic() < deadline, "the stalled client was never dropped"
                alice.send(Say(room="lobby", text=TEXT, ref=sent))
                alice.recv(Ack, ref=sent)
                sent += 1
        finally:
            slow.close()  # with unread data: a reset
        wait_until(lambda: server.stats().connections == 1, 10.0, "the server to let go of the reset client")
