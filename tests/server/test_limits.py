"""Every limit and timeout, at its bound (accepted) and just past it (refused with its error code)."""

from __future__ import annotations

import socket
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
    NickChanged,
    Ping,
    Pong,
    Quit,
    RoomList,
    RoomState,
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


def test_rate_limit_burst_then_refusal(make_server: MakeServer) -> None:
    """rate_burst requests pass at once; the next is rate_limited with a retry delay; nothing is dropped."""
    server = make_server(rate_burst=3, rate_messages=1.0)
    with logged_in(server, "alice") as alice, logged_in(server, "bob") as bob:
        for ref in range(3):
            alice.send(Say(room="lobby", text=f"m{ref}", ref=ref))
        alice.send(Say(room="lobby", text="too fast", ref=3))
        error = alice.error("rate_limited")
        assert error.ref == 3
        assert error.fatal is False
        assert error.retry_after_ms is not None
        assert 0 < error.retry_after_ms <= 1000
        for ref in range(3):
            alice.recv(Ack, ref=ref)
        texts = [m.text for m in bob.drain(0.2) if hasattr(m, "text")]
        assert texts == ["m0", "m1", "m2"]


def test_a_refused_message_keeps_its_place(make_server: MakeServer) -> None:
    """After a rate_limited refusal, a later message is refused too, even with tokens to spare, until the
    refused one is sent again: pipelined messages resent in order are delivered in order."""
    # One token per 50 ms: slow enough that m3 finds the bucket empty on a loaded machine too, fast enough
    # that the test waits a tenth of a second for the refill.
    server = make_server(rate_burst=2, rate_messages=20.0)
    with logged_in(server, "alice") as alice, logged_in(server, "bob") as bob:
        for n in (1, 2, 3):  # m1 and m2 take the burst; m3 finds the bucket empty
            alice.send(Say(room="lobby", text=f"m{n}", client_msg_id=f"c{n}", ref=n))
        refused = alice.error("rate_limited")
        assert refused.ref == 3
        assert refused.retry_after_ms is not None
        refill = time.monotonic() + 2 * refused.retry_after_ms / 1000 + 0.01
        wait_until(lambda: time.monotonic() >= refill)  # the bucket has tokens again
        alice.send(Say(room="lobby", text="m4", client_msg_id="c4", ref=4))
        assert alice.error("rate_limited").ref == 4  # held back: m3 has not come back yet
        wait_until(lambda: time.monotonic() >= refill + 0.01)
        alice.send(Say(room="lobby", text="m3", client_msg_id="c3", ref=5))
        alice.recv(Ack, ref=5)
        wait_until(lambda: time.monotonic() >= refill + 0.02)
        alice.send(Say(room="lobby", text="m4", client_msg_id="c4", ref=6))
        alice.recv(Ack, ref=6)
        texts = [m.text for m in bob.drain(0.2) if hasattr(m, "text")]
        assert texts == ["m1", "m2", "m3", "m4"]


def test_rate_limit_on_text_bytes(make_server: MakeServer) -> None:
    """The text byte bucket: rate_bytes_burst bytes pass, then one more byte is rate_limited."""
    server = make_server(rate_bytes_burst=1000, rate_bytes=10.0)
    with logged_in(server, "alice") as alice:
        alice.send(Say(room="lobby", text="x" * 1000, ref=1))
        alice.recv(Ack, ref=1)
        alice.send(Say(room="lobby", text="y", ref=2))
        assert alice.error("rate_limited").ref == 2


def test_excess_flood_disconnects(make_server: MakeServer) -> None:
    """After flood_refusals refused requests, the next one disconnects with excess_flood."""
    server = make_server(rate_burst=1, rate_messages=0.01, flood_refusals=5)
    with logged_in(server, "alice") as alice:
        for ref in range(7):
            alice.send(Say(room="lobby", text="spam", ref=ref))
        messages = alice.wait_closed()
        codes = [m.code for m in messages if isinstance(m, Error)]
        assert codes == ["rate_limited"] * 5 + ["excess_flood"]


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
