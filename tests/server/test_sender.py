"""The sender thread: one thread writes every socket, partial writes resume intact, and a client whose kernel
buffer is full holds up nobody (see chat_server/sender/thread.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from chat_server.server import ChatServer
from shared import Ack, Said, Say

from .client import ChatTestClient, wait_until

TEXT = "x" * 4000
#: Queue limits far above what the tests queue: the tests are about delivery, not about dropping.
ROOMY = {"sendq_soft": 1 << 29, "sendq_hard": 1 << 30, "write_timeout": 60.0, "max_clients_per_ip": 30}


def small_window_client(server: ChatServer, nick: str) -> ChatTestClient:
    """A logged-in client with a tiny receive buffer: the server's writes to it block as soon as it stops
    reading (the buffer size is set before connecting, so TCP's window is small from the start)."""
    client = ChatTestClient.__new__(ChatTestClient)
    ChatTestClient.__init__(client, server.address)
    client.sock.close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(server.address)
    client.sock = sock
    client.login(nick)
    return client


def send_messages(sender: ChatTestClient, count: int) -> list[int]:
    """Say `count` long messages in the lobby, each acknowledged before the next; return their ids."""
    ids = []
    for ref in range(count):
        sender.send(Say(room="lobby", text=f"{ref}:{TEXT}", ref=ref))
        ids.append(sender.recv(Ack, ref=ref).id)
    return ids


def said_ids(client: ChatTestClient, count: int) -> list[int]:
    """Read `count` said frames; return their ids (and check each text arrived intact)."""
    ids = []
    for _ in range(count):
        said = client.recv(Said, timeout=20)
        number, text = said.text.split(":", 1)
        assert text == TEXT, f"message {number} arrived damaged"
        ids.append(said.id)
    return ids


def test_threads_are_one_reader_per_connection_plus_a_fixed_few(
    make_server: Callable[..., ChatServer],
) -> None:
    """N connections cost N reader threads; acceptor, history, sender, the search indexer and the files
    sweeper are the only others."""
    before = {thread.ident for thread in threading.enumerate()}
    server = make_server(max_clients_per_ip=12)
    clients = [ChatTestClient(server.address) for _ in range(12)]
    try:
        for number, client in enumerate(clients):
            client.login(f"user{number}")
        wait_until(lambda: server.stats().logged_in == 12, what="everyone logged in")
        names = sorted(thread.name for thread in threading.enumerate() if thread.ident not in before)
        readers = [name for name in names if name.startswith("conn-") and name.endswith("-reader")]
        assert len(readers) == 12
        assert sorted(set(names) - set(readers)) == [
            "acceptor",
            "files-sweeper",
            "history",
            "search-indexer",
            "sender",
        ]
        assert len(names) == 12 + 5
        assert server.stats().threads == len(before) + 17
    finally:
        for client in clients:
            client.close()


def test_a_full_kernel_buffer_holds_up_nobody_and_resumes_intact(
    make_server: Callable[..., ChatServer],
) -> None:
    """While one member's socket is full (it stopped reading), 20 others get every message at once; when
    it reads again, it gets its whole backlog in id order, every frame intact across partial writes."""
    server = make_server(send_buffer=16 * 1024, **ROOMY)
    alice = ChatTestClient(server.address)
    others = [ChatTestClient(server.address) for _ in range(20)]
    slow = small_window_client(server, "slow")
    try:
        alice.login("alice")
        for number, client in enumerate(others):
            client.login(f"member{number}")
        slow.drain(0.1)  # the joined frames of everyone above; from now on it reads nothing
        ids = send_messages(alice, 100)  # 400 KB: far more than the kernel buffers hold for "slow"
        for client in others:
            assert said_ids(client, 100) == ids
        backlog = server.stats().queues["slow"]
        assert backlog > 100 * 1024, f"only {backlog} bytes held for the stalled client"
        assert server.stats().connections == 22
        assert said_ids(slow, 100) == ids
        wait_until(lambda: server.stats().queues["slow"] == 0, what="the backlog to drain")
    finally:
        for client in [alice, slow, *others]:
            client.close()


def test_partial_writes_to_many_slow_readers_stay_in_order(make_server: Callable[..., ChatServer]) -> None:
    """Several members whose sockets fill up at different times each get every frame, in order."""
    server = make_server(send_buffer=8 * 1024, **ROOMY)
    alice = ChatTestClient(server.address)
    slow = [small_window_client(server, f"slow{number}") for number in range(5)]
    try:
        alice.login("alice")
        for client in slow:
            client.drain(0.05)
        ids = send_messages(alice, 60)
        for client in slow:
            assert said_ids(client, 60) == ids
    finally:
        for client in [alice, *slow]:
            client.close()


def test_idle_connections_cost_no_wakeups(make_server: Callable[..., ChatServer]) -> None:
    """An idle connection's reader sleeps until its next deadline (here the 30 s ping), not once a second:
    it is not woken while nothing happens."""
    server = make_server()
    with ChatTestClient(server.address) as idle:
        idle.login("idle")
        reader = next(t for t in threading.enumerate() if t.name.endswith("-reader"))
        assert reader.native_id is not None
        wait_until(lambda: _wakeups(reader.native_id) is not None, what="the reader's task")
        start = _wakeups(reader.native_id)
        assert start is not None
        started = time.monotonic()
        # Not a sleep for synchronisation: 3.5 s of idleness is what is being measured.
        idle.drain(3.5)
        assert time.monotonic() - started >= 3.5
        # At most one switch: the reader may still have been on its way back into recv when counting began.
        # Polling once a second (the old design) would show at least three.
        after = _wakeups(reader.native_id)
        assert after is not None
        assert after - start <= 1


def _wakeups(native_id: int | None) -> int | None:
    """Voluntary context switches of one thread of this process (Linux)."""
    try:
        with open(f"/proc/self/task/{native_id}/status") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
