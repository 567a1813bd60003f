"""Unit tests of the parts with their own rules: token buckets, the sendq, the configuration."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from chat_server.config import DEFAULT_MAX_CLIENTS, ServerConfig, load_toml
from chat_server.history.roomstate import RoomStates
from chat_server.history.rules import RoomRules
from chat_server.hub import Client, Room
from chat_server.ratelimit import ORDER_HOLD_SECONDS, MessageOrder, TokenBucket
from chat_server.sender.thread import SendQueue
from chat_server.tuning import RECV_MAX, RECV_MIN, Latch, next_recv_size
from shared.codec import encode
from shared.messages import Member, RoomState


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_recv_size_grows_while_reads_fill_it_and_shrinks_when_idle() -> None:
    """Full reads double the receive size up to RECV_MAX; small ones halve it back down to RECV_MIN."""
    size = RECV_MIN
    sizes = []
    while size < RECV_MAX:
        size = next_recv_size(size, size)
        sizes.append(size)
    assert sizes[-1] == RECV_MAX
    assert len(sizes) >= 2
    assert next_recv_size(RECV_MAX, RECV_MAX) == RECV_MAX
    assert next_recv_size(RECV_MAX, RECV_MAX // 2) == RECV_MAX  # half full: keep it
    while size > RECV_MIN:
        size = next_recv_size(size, 100)
    assert size == RECV_MIN
    assert next_recv_size(RECV_MIN, 0) == RECV_MIN  # end of stream, or an idle peer


def test_bucket_burst_then_refill() -> None:
    """A full bucket allows `burst` at once, then one per 1/rate seconds, and says how long to wait."""
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)


def test_bucket_never_exceeds_burst() -> None:
    """A long idle period refills only up to the burst."""
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=2, clock=clock)
    clock.now += 3600
    assert [bucket.take() == 0.0 for _ in range(3)] == [True, True, False]


def test_bucket_cost_larger_than_burst_passes_when_full() -> None:
    """A request costing more than the whole burst is capped at the burst (it can pass when full)."""
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=100, clock=clock)
    assert bucket.take(500) == 0.0
    assert bucket.take(1) == pytest.approx(0.1)


def test_message_order_holds_later_messages_until_the_refused_one_returns() -> None:
    """After a refusal, later messages wait (with the refusal's retry time) until the refused one is back."""
    clock = FakeClock()
    order = MessageOrder(clock)
    assert order.wait("m1") == 0.0
    order.refused("m2", 0.5)
    assert order.wait("m3") == pytest.approx(0.5)
    order.refused("m3", 0.5)  # a later refusal does not move the hold to m3
    clock.now += 1.0  # the retry time passed, and still m3 waits for m2
    assert order.wait("m3") > 0.0
    assert order.wait("m2") == 0.0  # m2 is back: the hold ends
    assert order.wait("m3") == 0.0


def test_message_order_hold_expires_and_needs_an_id() -> None:
    """A refused message never sent again holds the others only ORDER_HOLD_SECONDS past its retry time;
    a message without a client_msg_id starts no hold."""
    clock = FakeClock()
    order = MessageOrder(clock)
    order.refused(None, 0.5)
    assert order.wait("m1") == 0.0
    order.refused("m2", 0.5)
    clock.now += 0.5 + ORDER_HOLD_SECONDS - 0.01
    assert order.wait("m3") > 0.0
    clock.now += 0.01
    assert order.wait("m3") == 0.0


def send_queue(clock: FakeClock) -> SendQueue:
    """A send queue with a 100-byte soft limit (held 5 s) and a 300-byte hard limit."""
    return SendQueue(soft=100, hard=300, soft_seconds=5.0, clock=clock)


def test_send_queue_hard_limit_at_and_past() -> None:
    """Exactly the hard limit is accepted; one byte past it is over the limit."""
    clock = FakeClock()
    box = send_queue(clock)
    assert box.put(b"x" * 300)
    box2 = send_queue(clock)
    assert not box2.put(b"x" * 301)


def test_send_queue_soft_limit_held_too_long() -> None:
    """Over the soft limit is fine for `soft_seconds`, not longer; `overdue` notices without a put."""
    clock = FakeClock()
    box = send_queue(clock)
    assert box.put(b"x" * 101)
    clock.now += 5.0
    assert not box.overdue()
    clock.now += 0.01
    assert box.overdue()


def test_send_queue_soft_timer_resets_when_drained() -> None:
    """Writing the queue down below the soft limit resets the soft-limit clock."""
    clock = FakeClock()
    box = send_queue(clock)
    box.put(b"x" * 150)
    clock.now += 4
    taken = box.take()
    assert taken == [b"x" * 150]
    box.written(150)
    box.put(b"y" * 150)
    clock.now += 4
    assert box.put(b"z")  # 4 s over the soft limit this time, not 8


def test_send_queue_counts_bytes_until_written_and_batches() -> None:
    """The writer takes everything at once; the bytes count until it reports them written."""
    box = send_queue(FakeClock())
    for part in (b"a", b"bb", b"ccc"):
        box.put(part)
    assert box.take() == [b"a", b"bb", b"ccc"]
    assert box.queued == 6
    box.written(6)
    assert box.queued == 0
    assert box.take() == []


def test_send_queue_close_drains_then_ends_and_abort_drops() -> None:
    """close() keeps what is queued and adds the last frame; abort() keeps only the last frame."""
    box = send_queue(FakeClock())
    box.put(b"one")
    box.close(b"bye")
    assert box.put(b"ignored")
    assert box.take() == [b"one", b"bye"]
    assert box.take() is None
    other = send_queue(FakeClock())
    other.put(b"one")
    other.abort(b"dropped")
    assert other.take() == [b"dropped"]
    assert other.take() is None


def test_config_defaults_and_validation(tmp_path: Path) -> None:
    """Defaults are the named constants; nonsense values are refused with the setting's name."""
    config = ServerConfig()
    assert config.max_clients == DEFAULT_MAX_CLIENTS
    assert config.history_path.name == "history.sqlite3"
    assert ServerConfig(data_dir=tmp_path).history_path == tmp_path / "history.sqlite3"
    assert ServerConfig(db=tmp_path / "x.db").history_path == tmp_path / "x.db"
    for bad in ({"max_clients": 0}, {"ping_interval": -1.0}, {"rate_burst": True}, {"port": 70000}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ServerConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ping_timeout"):
        ServerConfig(ping_interval=10, ping_timeout=5)
    with pytest.raises(ValueError, match="sendq_soft"):
        ServerConfig(sendq_soft=10, sendq_hard=5)
    with pytest.raises(ValueError, match="history_sync"):
        ServerConfig(history_sync="OFF")
    with pytest.raises(ValueError, match="max_reason"):
        ServerConfig(max_reason=64)


def test_config_file(tmp_path: Path) -> None:
    """server.toml uses the same names; unknown names and bad TOML are clear errors."""
    path = tmp_path / "server.toml"
    path.write_text('port = 9999\nrate_burst = 20\ndata_dir = "/srv/chat"\n')
    settings = load_toml(path)
    config = ServerConfig(**settings)
    assert (config.port, config.rate_burst, config.data_dir) == (9999, 20, Path("/srv/chat"))
    path.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_toml(path)
    path.write_text("port = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_toml(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_toml(tmp_path / "missing.toml")


def test_send_queue_put_many_counts_and_limits() -> None:
    """put_many queues frames in order, counts their bytes, and reports crossing the hard limit."""
    box = send_queue(FakeClock())
    assert box.put_many([b"a", b"bb"])
    assert box.queued == 3
    assert not box.put_many([b"x" * 150, b"y" * 150])
    assert box.take() == [b"a", b"bb", b"x" * 150, b"y" * 150]


def test_every_setting_is_documented() -> None:
    """docs/server.md has a row for every ServerConfig field (operators read that table, not the code)."""
    table = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    missing = [f.name for f in dataclasses.fields(ServerConfig) if f"| `{f.name}` |" not in table]
    assert missing == []


def test_room_state_frames_match_the_codec_and_follow_changes() -> None:
    """The cached room_state frame is byte for byte what shared.codec.encode makes, also after a member
    changes nick or away message; a crowded room still falls back to shortened away messages."""

    def client(number: int, nick: str, away: str | None = None) -> Client:
        member = Client(
            number, "127.0.0.1", SendQueue(soft=10, hard=20, soft_seconds=1.0), lambda *a: None, b""
        )
        member.nick, member.away = nick, away
        return member

    members = [client(1, "ann"), client(2, "bob", "lunch"), client(3, "Çé")]
    room = Room(key="lobby", name="Lobby", topic="hi", members=members)
    states = RoomStates(max_list=1000, max_bytes=60_000)

    def expected(ref: int | None) -> bytes:
        listed = tuple(Member(nick=m.nick or "", away=m.away) for m in room.members)
        return encode(RoomState(room="Lobby", topic="hi", members=listed, ref=ref))

    assert states.frame(room, 7) == expected(7)
    members[0].nick, members[1].away = "anne", None
    assert states.frame(room, None) == expected(None)
    states.forget(members[2])
    assert states.frame(room, 1) == expected(1)
    # 52 + 251 + 52 estimated bytes do not fit 140: away messages are cut to 32 bytes (52 + 83 + 52), and
    # only the members that fit (the first two) are listed.
    crowded = RoomStates(max_list=1000, max_bytes=140)
    members[1].away = "x" * 200
    fitting = (Member(nick="anne", away=None), Member(nick="bob", away="x" * 32))
    assert crowded.frame(room, None) == encode(RoomState(room="Lobby", topic="hi", members=fitting))
    # Operators are marked, and a member's cached entry follows their operator flag; the modes come along and
    # the key only when asked for (the frame for an operator).
    rules = RoomRules("lobby", topic_lock=True, join_key="k")
    marked = states.frame(room, 2, is_op=lambda member: member.id == 2, rules=rules, show_key=True)
    listed = (Member(nick="anne"), Member(nick="bob", away="x" * 200, op=True), Member(nick="Çé"))
    state = RoomState(room="Lobby", topic="hi", members=listed, topic_lock=True, keyed=True, key="k", ref=2)
    assert marked == encode(state)
    assert states.frame(room, 3) == encode(
        RoomState(
            room="Lobby", topic="hi", members=tuple(Member(nick=m.nick, away=m.away) for m in listed), ref=3
        )
    )


def test_latch_is_set_once_and_seen_by_every_wait() -> None:
    """Unset: a wait times out False. Set (twice, concurrently): every later wait is True at once."""
    latch = Latch()
    assert not latch.is_set()
    assert latch.wait(0.0) is False
    assert latch.wait(0.02) is False
    setters = [threading.Thread(target=latch.set) for _ in range(4)]
    for setter in setters:
        setter.start()
    for setter in setters:
        setter.join(5)
    assert latch.is_set()
    assert [latch.wait(0.0) for _ in range(3)] == [True, True, True]
    latch.set()  # setting again is harmless
    assert latch.wait(1.0)


def test_latch_releases_a_waiting_thread() -> None:
    """A thread blocked in wait() returns True as soon as another thread sets the latch."""
    latch = Latch()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(latch.wait(10.0)))
    waiter.start()
    latch.set()
    waiter.join(5)
    assert results == [True]
