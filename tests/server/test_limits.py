"""Every limit and timeout, at its bound (accepted) and just past it (refused with its error code)."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable

import msgpack
import pytest

from chat_server.server import ChatServer
from shared import (
    Ack,
    AwayChanged,
    ChangeNick,
    Error,
    Hello,
    Join,
    ListRooms,
    Message,
    NickChanged,
    Ping,
    Pong,
    Quit,
    RoomList,
    RoomState,
    Said,
    Say,
    SetAway,
    SetTopic,
    SignedOff,
    TopicChanged,
    Welcome,
    Who,
    frame,
)

from .client import ChatTestClient, wait_until

MakeServer = Callable[..., ChatServer]


def logged_in(server: ChatServer, nick: str, rooms: list[str] | None = None) -> ChatTestClient:
    """A new client, logged in."""
    client = ChatTestClient(server.address)
    try:
        client.login(nick, rooms)
    except BaseException:
        client.close()
        raise
    return client


def say_of_body_size(size: int) -> bytes:
    """A valid `say` frame whose body is exactly `size` bytes (padded with a field receivers ignore)."""
    for length in range(size, 0, -1):
        body = msgpack.packb(
            {"type": "say", "room": "lobby", "text": "padded", "ref": 1, "pad": "x" * length}
        )
        if len(body) == size:
            return frame(body)
    raise AssertionError(f"no say body of {size} bytes")


def test_max_frame(make_server: MakeServer) -> None:
    """A frame body of max_frame bytes is accepted; one byte more is frame_too_large, then closed."""
    server = make_server(max_frame=2048, max_text=1024, max_topic=1024, max_reason=1024)
    with logged_in(server, "alice") as alice:
        alice.send_raw(say_of_body_size(2048))
        assert alice.recv(Ack, ref=1)
        alice.send_raw(say_of_body_size(2049))
        errors = [m for m in alice.wait_closed() if isinstance(m, Error)]
        assert [(e.code, e.fatal) for e in errors] == [("frame_too_large", True)]


def test_max_text(make_server: MakeServer) -> None:
    """Text of max_text bytes (UTF-8) is accepted; one more byte is too_long, not fatal."""
    server = make_server(max_text=100)  # max_frame stays 64 KiB: the text limit is what refuses
    with logged_in(server, "alice") as alice:
        alice.send(Say(room="lobby", text="é" * 50, ref=1))
        alice.recv(Ack, ref=1)
        alice.send_unchecked(Say(room="lobby", text="é" * 50 + "x", ref=2))
        error = alice.error("too_long")
        assert (error.ref, error.fatal) == (2, False)
        alice.send(Say(room="lobby", text="still fine", ref=3))
        alice.recv(Ack, ref=3)


def test_max_nick(make_server: MakeServer) -> None:
    """A nick of max_nick characters logs in; one more is invalid_nick (fatal at login, not after)."""
    server = make_server(max_nick=8)
    with logged_in(server, "n" * 8) as alice:
        alice.send_unchecked(ChangeNick(nick="m" * 9, ref=1))
        assert alice.error("invalid_nick").fatal is False
        alice.send(ChangeNick(nick="m" * 8))
        assert alice.recv(NickChanged).new == "m" * 8
    with ChatTestClient(server.address) as bob:
        bob.send_unchecked(Hello(proto="mpchat", version=1, nick="b" * 9))
        errors = [m for m in bob.wait_closed() if isinstance(m, Error)]
        assert [(e.code, e.fatal) for e in errors] == [("invalid_nick", True)]


def test_max_room(make_server: MakeServer) -> None:
    """A room name of max_room characters can be joined; one more is invalid_room, not fatal."""
    server = make_server(max_room=10)
    with logged_in(server, "alice", rooms=[]) as alice:
        alice.send(Join(room="r" * 10, ref=1))
        assert alice.recv(RoomState, ref=1).room == "r" * 10
        alice.send_unchecked(Join(room="r" * 11, ref=2))
        assert alice.error("invalid_room").fatal is False


def test_max_topic(make_server: MakeServer) -> None:
    """A topic of max_topic bytes is set; one more byte is too_long."""
    server = make_server(max_topic=20)
    with logged_in(server, "alice") as alice:
        alice.send(SetTopic(room="lobby", topic="t" * 20))
        assert alice.recv(TopicChanged).topic == "t" * 20
        alice.send_unchecked(SetTopic(room="lobby", topic="t" * 21, ref=2))
        assert alice.error("too_long").ref == 2


def test_max_reason(make_server: MakeServer) -> None:
    """A reason of max_reason bytes is accepted; one more byte is too_long and the connection stays open."""
    server = make_server(max_reason=128)
    with logged_in(server, "alice") as alice, logged_in(server, "bob") as bob:
        alice.send_unchecked(Quit(reason="r" * 129))
        alice.error("too_long")
        alice.send(Ping(token=1))
        alice.recv(Pong)
        alice.send(Quit(reason="r" * 128))
        alice.wait_closed()
        assert bob.recv(SignedOff).reason == "r" * 128


def test_max_list(make_server: MakeServer) -> None:
    """A room list holds at most max_list rooms."""
    server = make_server(max_list=2, max_backfill=2, backfill=2)
    with logged_in(server, "alice", rooms=["a", "b"]) as alice:
        alice.send(Join(room="c", ref=0))
        alice.recv(RoomState, ref=0)
        alice.send(ListRooms(ref=1))
        assert [r.name for r in alice.recv(RoomList, ref=1).rooms] == ["a", "b"]


def test_max_rooms_per_client(make_server: MakeServer) -> None:
    """A client can be in max_rooms_per_client rooms; joining one more is too_many_rooms."""
    server = make_server(max_rooms_per_client=2)
    with logged_in(server, "alice", rooms=["a", "b"]) as alice:
        alice.send(Join(room="c", ref=1))
        assert alice.error("too_many_rooms").ref == 1
        alice.send(Join(room="b", ref=2))  # a rejoin is not one more
        alice.recv(RoomState, ref=2)


def acks_timed(client: ChatTestClient, count: int) -> list[tuple[int, float]]:
    """(ref, arrival time) of the next `count` acks; fails on any error frame."""
    timed: list[tuple[int, float]] = []
    while len(timed) < count:
        message = client.recv_until(lambda m: isinstance(m, Ack | Error), 10)
        assert isinstance(message, Ack), f"refused: {message!r}"
        assert message.ref is not None
        timed.append((message.ref, time.monotonic()))
    return timed


def test_rate_limit_burst_then_delay(make_server: MakeServer) -> None:
    """rate_burst requests pass at once; the next ones wait for their tokens (one per 1/rate_messages s) and
    are then handled: nothing refused, nothing dropped, in order, and never faster than the rate."""
    server = make_server(rate_burst=3, rate_messages=5.0)
    with logged_in(server, "alice") as alice, logged_in(server, "bob") as bob:
        started = time.monotonic()
        alice.send_raw(
            b"".join(alice.protocol.send(Say(room="lobby", text=f"m{ref}", ref=ref)) for ref in range(6))
        )
        timed = acks_timed(alice, 6)
        assert [ref for ref, _ in timed] == list(range(6))
        for ref, arrived in timed[3:]:  # the 4th is due 0.2 s after the burst, the 5th 0.4 s...
            assert arrived - started >= (ref - 2) * 0.2 * 0.9, f"m{ref} after {arrived - started:.2f} s"
        texts = [m.text for m in bob.drain(0.2) if hasattr(m, "text")]
        assert texts == [f"m{ref}" for ref in range(6)]


def test_a_refused_message_keeps_its_place(make_server: MakeServer) -> None:
    """A message refused as "server busy" (the history thread's queue stayed full) holds back every later
    `say` of the connection (`rate_limited`, "held behind a refused one") until it is sent again: pipelined
    messages resent in order are delivered in order."""
    server = make_server(history_queue=1, history_wait=0.2, history_busy_timeout=5.0)
    with logged_in(server, "alice") as alice, logged_in(server, "bob") as bob:
        blocker = sqlite3.connect(server.config.history_path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # the history thread will wait for this lock
            for n in range(1, 7):
                alice.send(Say(room="lobby", text=f"m{n}", client_msg_id=f"c{n}", ref=n))
            busy = alice.recv_until(lambda m: isinstance(m, Error), 10)
            assert busy.ref is not None
            answers: dict[int, Message] = {busy.ref: busy}
            for n in range(busy.ref + 1, 7):  # refused at once, while the history thread is still stuck
                answers[n] = alice.recv_until(lambda m, r=n: isinstance(m, Ack | Error) and m.ref == r, 10)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for n in set(range(1, 7)) - set(answers):
            answers[n] = alice.recv_until(lambda m, r=n: isinstance(m, Ack | Error) and m.ref == r, 10)
        refused = sorted(n for n, answer in answers.items() if isinstance(answer, Error))
        assert refused, "the queue never filled"
        assert refused == list(range(busy.ref, 7))  # nothing after the first refusal got through
        assert isinstance(busy, Error)
        assert (busy.code, busy.message, busy.retry_after_ms) == ("rate_limited", "server busy", 1000)
        for n in refused[1:]:
            held = answers[n]
            assert isinstance(held, Error)
            assert (held.code, held.message, held.fatal) == (
                "rate_limited",
                "held behind a refused one",
                False,
            )
        # The history thread is free again, but a new message still waits for the refused one.
        alice.send(Say(room="lobby", text="m7", client_msg_id="c7", ref=7))
        assert alice.recv(Error, ref=7).message == "held behind a refused one"
        for n in [*refused, 7]:  # resent in order, each once the one before is stored
            alice.send(Say(room="lobby", text=f"m{n}", client_msg_id=f"c{n}", ref=10 + n))
            alice.recv(Ack, ref=10 + n)
        bob.recv(Said, text="m7")
        texts = [m.text for m in bob.drain(0.05) if isinstance(m, Said)] + ["m7"]
        assert texts == [f"m{n}" for n in range(1, 8)]


def test_rate_limit_on_text_bytes(make_server: MakeServer) -> None:
    """The text byte bucket: rate_bytes_burst bytes pass at once; more text waits for its bytes to refill
    (500 bytes at 1000 bytes/s: half a second), and is then stored, not refused."""
    server = make_server(rate_bytes_burst=1000, rate_bytes=1000.0)
    with logged_in(server, "alice") as alice:
        started = time.monotonic()
        alice.send(Say(room="lobby", text="x" * 1000, ref=1))
        alice.send(Say(room="lobby", text="y" * 500, ref=2))
        timed = acks_timed(alice, 2)
        assert [ref for ref, _ in timed] == [1, 2]
        assert timed[1][1] - started >= 0.5 * 0.9


def test_a_reader_held_back_past_max_fakelag_seconds_ends_in_excess_flood(make_server: MakeServer) -> None:
    """One token per 0.5 s and max_fakelag_seconds 1.2: of 8 messages sent at once the first ones are
    stored in order; the one that would keep the reader behind its client past 1.2 s ends the connection
    with excess_flood (fatal), and nothing is refused before that. The room gets exactly the stored ones."""
    server = make_server(rate_burst=1, rate_messages=2.0, max_fakelag_seconds=1.2)
    with logged_in(server, "alice") as alice, logged_in(server, "bob") as bob:
        for ref in range(8):
            alice.send(Say(room="lobby", text=f"spam {ref}", ref=ref))
        messages = alice.wait_closed()
        assert [(m.code, m.fatal) for m in messages if isinstance(m, Error)] == [("excess_flood", True)]
        acked = [m.ref for m in messages if isinstance(m, Ack)]
        assert 2 <= len(acked) < 8
        assert acked == list(range(len(acked)))
        heard = bob.recv(SignedOff, nick="alice")
        assert heard.reason == "excess flood"
        texts = [m.text for m in bob.drain(0.2) if hasattr(m, "text")]
        assert texts == [f"spam {ref}" for ref in acked]


def test_max_clients(make_server: MakeServer) -> None:
    """max_clients connections are served; one more gets server_full and is closed."""
    server = make_server(max_clients=2)
    with logged_in(server, "a") as first, logged_in(server, "b") as second:
        with ChatTestClient(server.address) as third:
            errors = [m for m in third.wait_closed() if isinstance(m, Error)]
            assert [(e.code, e.fatal) for e in errors] == [("server_full", True)]
        first.send(Ping(token=1))
        first.recv(Pong)
        second.send(Ping(token=2))
        second.recv(Pong)


def test_max_clients_per_ip(make_server: MakeServer) -> None:
    """max_clients_per_ip connections per address; one more from it is refused, others are not."""
    server = make_server(max_clients_per_ip=2)
    with logged_in(server, "a"), logged_in(server, "b"):
        with ChatTestClient(server.address) as third:
            errors = [m for m in third.wait_closed() if isinstance(m, Error)]
            assert [e.code for e in errors] == ["too_many_connections"]
        with ChatTestClient(server.address, source="127.0.0.2") as other_host:
            assert other_host.login("c").nick == "c"


def test_per_ip_slot_is_released_on_close(make_server: MakeServer) -> None:
    """A closed connection frees its per-IP slot."""
    server = make_server(max_clients_per_ip=1)
    with logged_in(server, "a") as first:
        first.send(Quit())
        first.wait_closed()
    # The client sees the end of the stream a moment before the server's threads have finished.
    wait_until(lambda: server.stats().connections == 0, 5, "the connection to be gone")
    with logged_in(server, "b") as again:
        assert again.nick == "b"


def test_hello_timeout(make_server: MakeServer) -> None:
    """A connection that sends no hello within hello_timeout gets hello_timeout and is closed."""
    server = make_server(hello_timeout=0.3)
    with ChatTestClient(server.address) as silent:
        errors = [m for m in silent.wait_closed() if isinstance(m, Error)]
        assert [(e.code, e.fatal) for e in errors] == [("hello_timeout", True)]


def test_hello_in_time_is_welcomed(make_server: MakeServer) -> None:
    """A hello before hello_timeout is welcomed, and the timer stops for good."""
    server = make_server(hello_timeout=0.3)
    with ChatTestClient(server.address) as client:
        client.hello("alice")
        client.recv(Welcome)
        client.send(Ping(token=1))
        client.recv(Pong)
        assert not [m for m in client.drain(0.5) if isinstance(m, Error)]


def test_frame_timeout(make_server: MakeServer) -> None:
    """A frame started but not finished within frame_timeout closes the connection (slowloris)."""
    server = make_server(frame_timeout=0.3)
    with logged_in(server, "alice") as alice:
        data = say_of_body_size(100)
        alice.send_raw(data[:50])
        errors = [m for m in alice.wait_closed() if isinstance(m, Error)]
        assert [(e.code, e.fatal) for e in errors] == [("bad_frame", True)]


def test_frame_completed_in_parts_is_fine(make_server: MakeServer) -> None:
    """A frame that arrives in pieces within frame_timeout is accepted."""
    server = make_server(frame_timeout=2.0)
    with logged_in(server, "alice") as alice:
        data = say_of_body_size(100)
        for index in range(0, len(data), 7):
            alice.send_raw(data[index : index + 7])
        alice.recv(Ack, ref=1)


@pytest.mark.parametrize("answer", [True, False])
def test_ping_and_dead_peer(make_server: MakeServer, answer: bool) -> None:
    """An idle client is pinged after ping_interval; if it never answers it is dropped at ping_timeout."""
    server = make_server(ping_interval=0.2, ping_timeout=0.6)
    with logged_in(server, "watcher") as watcher, logged_in(server, "idle") as idle:
        for _ in range(3):
            ping = idle.recv(Ping, timeout=2)
            if not answer:
                break
            idle.send(Pong(token=ping.token))
            watcher.send(Ping(token=0))  # the watcher stays alive too
            watcher.recv(Pong)
        if answer:
            assert not idle.closed
            return
        heard: list[SignedOff] = []
        deadline = time.monotonic() + 3
        while not heard:  # the watcher keeps itself alive (any input counts) until it hears of the idle one
            assert time.monotonic() < deadline, "the idle client was never dropped"
            watcher.send(Ping(token=0))
            heard = [m for m in watcher.drain(0.05) if isinstance(m, SignedOff)]
        assert (heard[0].nick, heard[0].reason) == ("idle", "ping timeout")
        errors = [m for m in idle.wait_closed(3) if isinstance(m, Error)]
        assert [(e.code, e.fatal) for e in errors] == [("ping_timeout", True)]


def test_room_state_of_a_crowded_room_fits_one_frame(make_server: MakeServer) -> None:
    """Many long away messages: RoomState shortens them so the reply still fits max_frame."""
    server = make_server(max_frame=2048, max_text=1024, max_clients_per_ip=16)
    clients = []
    try:
        for number in range(10):
            client = logged_in(server, f"user{number}")
            clients.append(client)
            client.send(SetAway(message=f"{number} " + "z" * 400))
        asker = clients[0]
        for number in range(10):  # the asker shares the lobby with everyone: it hears each change
            asker.recv(AwayChanged, nick=f"user{number}")
        asker.send(Who(room="lobby", ref=1))
        state = asker.recv(RoomState, ref=1)
        assert len(state.members) == 10
        assert all(m.away is not None and len(m.away.encode()) <= 32 for m in state.members)
    finally:
        for client in clients:
            client.close()


def trickle(client: ChatTestClient, data: bytes, interval: float) -> list[Error]:
    """Send `data` one byte every `interval` seconds until the server closes; return its error frames."""
    received = []
    for byte in data:
        try:
            client.send_raw(bytes([byte]))
        except OSError:
            break
        received += client.drain(interval)  # the pause between bytes, spent listening for an answer
        if client.closed:
            break
    if not client.closed:
        received += client.wait_closed(3)
    return [m for m in received if isinstance(m, Error)]


def test_trickled_frame_hits_frame_timeout(make_server: MakeServer) -> None:
    """A frame sent one byte at a time, too slowly, is cut off at frame_timeout (recv never times out)."""
    server = make_server(frame_timeout=0.5)
    with logged_in(server, "alice") as alice:
        errors = trickle(alice, say_of_body_size(200), 0.05)
        assert [(e.code, e.fatal) for e in errors] == [("bad_frame", True)]


def test_byte_stream_without_pause_still_hits_frame_timeout(make_server: MakeServer) -> None:
    """Bytes arriving back to back (so recv never times out) do not extend the frame deadline."""
    server = make_server(frame_timeout=0.1)
    with logged_in(server, "alice") as alice:
        data = say_of_body_size(60_000)
        alice.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no coalescing into bursts
        try:
            for index in range(len(data)):  # one system call per byte: slow, but never idle
                alice.send_raw(data[index : index + 1])
        except OSError:
            pass  # the server hung up, as it should
        errors = [m for m in alice.wait_closed() if isinstance(m, Error)]
        assert [(e.code, e.fatal) for e in errors] == [("bad_frame", True)]


def test_trickled_hello_hits_hello_timeout(make_server: MakeServer) -> None:
    """A hello dribbled in byte by byte still has to be complete within hello_timeout."""
    server = make_server(hello_timeout=0.5, frame_timeout=30.0)
    with ChatTestClient(server.address) as slow:
        hello = frame(msgpack.packb({"type": "hello", "proto": "mpchat", "version": 1, "nick": "x" * 30}))
        errors = trickle(slow, hello, 0.05)
        assert [(e.code, e.fatal) for e in errors] == [("hello_timeout", True)]
