"""Units of access control without a network: password hashing, the per-address buckets, and the history
thread's final check of a reader's proof against the registration as it is now."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_server.config import ServerConfig
from chat_server.history.accounts import Accounts, Enroll, Proof, Standing, Unenroll, load
from chat_server.hub import Client, Hub
from chat_server.passwords import ScryptCost, hash_password, same_secret, verify_password
from chat_server.ratelimit import AddressBuckets
from chat_server.reader import gate as gate_module
from chat_server.reader.gate import AccessRefused, Gate
from chat_server.sender.thread import SendQueue
from chat_server.storage import HistoryStore
from shared import Register, Registration, decode_body
from shared.limits import DEFAULT_LIMITS
from shared.schema import SENT_BY_SERVER

CHEAP = ScryptCost(n=16, r=1, p=1)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_default_scrypt_cost_hashes_and_verifies() -> None:
    """The default cost is the scrypt paper's interactive one; a hash verifies its password only."""
    cost = ScryptCost()
    assert (cost.n, cost.r, cost.p, cost.memory) == (2**14, 8, 1, 16 * 1024 * 1024)
    stored = hash_password("hunter2", cost)
    assert verify_password("hunter2", stored)
    assert not verify_password("hunter3", stored)
    assert "hunter2" not in repr(stored)
    assert stored.digest.hex() not in repr(stored)


def test_salts_differ_and_costs_are_checked() -> None:
    """The same password hashes differently each time; a bad cost is refused when configured."""
    first, second = hash_password("same", CHEAP), hash_password("same", CHEAP)
    assert first.salt != second.salt
    assert first.digest != second.digest
    for bad in ({"n": 1}, {"n": 24}, {"r": 0}, {"p": 0}):
        with pytest.raises(ValueError, match="scrypt"):
            ScryptCost(**bad)


def test_same_secret() -> None:
    """Plain secret comparison (the server password)."""
    assert same_secret("pw", "pw")
    assert not same_secret("pw", "pw2")
    assert not same_secret("", "pw")


def test_address_buckets_at_and_past_the_burst() -> None:
    """`burst` takes pass, the next waits 1/rate; another address is unaffected; time refills."""
    clock = Clock()
    buckets = AddressBuckets(rate=0.5, burst=3, max_addresses=10, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(2.0)
    assert buckets.take("a") == pytest.approx(2.0)  # a refused take spends nothing
    assert buckets.take("b") == 0.0
    clock.now += 2.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_address_buckets_memory_is_bounded() -> None:
    """The table never holds more than `max_addresses`; refilled buckets go first, then the oldest."""
    clock = Clock()
    buckets = AddressBuckets(rate=1.0, burst=2, max_addresses=4, clock=clock)
    for n in range(100):
        buckets.take(f"10.0.0.{n}")
        assert len(buckets) <= 4
    buckets.take("busy")
    buckets.take("busy")
    clock.now += 1.5  # everyone else refilled (one token spent, 1 s to refill); "busy" has 1.5 of 2
    buckets.take("new")
    assert len(buckets) == 2  # the refilled ones were dropped, the busy one kept
    assert buckets.take("busy") == 0.0
    assert buckets.take("busy") > 0


def make_client(conn_id: int, nick: str, hub: Hub) -> Client:
    """A hub client holding `nick` (no socket: its send queue is read directly)."""
    client = Client(
        conn_id, "127.0.0.1", SendQueue(soft=1 << 20, hard=1 << 21, soft_seconds=10.0), lambda *a: None, b""
    )
    assert hub.register(client, nick)
    return client


def answer(frame: bytes) -> object:
    """Decode one encoded server frame (without its length header)."""
    return decode_body(frame[4:], SENT_BY_SERVER, DEFAULT_LIMITS)


def test_history_thread_refuses_stale_proofs(tmp_path: Path) -> None:
    """A proof checked against a registration that changed before the history thread's turn is refused;
    an enroll or unenroll that expected another registration is refused; current ones are accepted."""
    store = HistoryStore(tmp_path / "h.sqlite3", synchronous="NORMAL")
    try:
        hub = Hub()
        accounts = Accounts(hub, store)
        alice = make_client(1, "alice", hub)
        first = hash_password("one", CHEAP)
        done = answer(accounts.enroll(alice, Enroll("alice", first, None, 1)))
        assert isinstance(done, Registration)
        assert done.registered
        assert alice.account == "alice"
        # A second enroll that expected "not registered" (a stale reader view) is refused.
        stale = answer(accounts.enroll(alice, Enroll("alice", hash_password("x", CHEAP), None, 2)))
        assert getattr(stale, "code", None) == "nick_registered"
        second = hash_password("two", CHEAP)
        assert isinstance(
            answer(accounts.enroll(alice, Enroll("alice", second, first.digest, 3))), Registration
        )
        stored = load(store.connection, "alice")
        assert stored is not None
        assert stored.digest == second.digest
        assert stored.cost == CHEAP

        bob = Client(
            2, "127.0.0.1", SendQueue(soft=1 << 20, hard=1 << 21, soft_seconds=10.0), lambda *a: None, b""
        )
        assert accounts.standing(bob, "alice", None) is Standing.REFUSED
        assert accounts.standing(bob, "alice", Proof("alice", first.digest)) is Standing.REFUSED  # stale
        assert accounts.standing(bob, "alice", Proof("alice", None)) is Standing.REFUSED
        assert accounts.standing(bob, "alice", Proof("alice", second.digest)) is Standing.OWNER
        assert accounts.standing(bob, "carol", None) is Standing.FREE
        assert accounts.standing(alice, "ALICE".casefold(), None) is Standing.OWNER  # its own, verified

        stale_drop = answer(accounts.unenroll(alice, Unenroll("alice", first.digest, 4)))
        assert getattr(stale_drop, "code", None) == "nick_registered"
        dropped = answer(accounts.unenroll(alice, Unenroll("alice", second.digest, 5)))
        assert isinstance(dropped, Registration)
        assert not dropped.registered
        assert alice.account is None
        assert load(store.connection, "alice") is None
    finally:
        store.close()


def test_hashing_slots_at_and_past_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `max_concurrent_hashes` 1, a registration hashes while the slot is free; while another hash
    holds it, the next one waits (at most HASH_WAIT) and is then refused as "server busy", unhashed."""
    monkeypatch.setattr(gate_module, "HASH_WAIT", 0.05)
    config = ServerConfig(data_dir=tmp_path, max_concurrent_hashes=1, scrypt_n=16, scrypt_r=1, scrypt_p=1)
    store = HistoryStore(tmp_path / "h.sqlite3", synchronous="NORMAL")
    try:
        Accounts(Hub(), store)  # creates the table
        reader = store.open_reader()
        gate = Gate(config)
        enrolled = gate.enroll("127.0.0.2", "alice", Register(password="pw"), lambda: reader)
        assert enrolled.key == "alice"
        assert enrolled.expected is None
        assert gate._hashing.acquire(timeout=1)  # another reader is hashing
        try:
            with pytest.raises(AccessRefused) as busy:
                gate.enroll("127.0.0.2", "bob", Register(password="pw"), lambda: reader)
            assert busy.value.code == "rate_limited"
            assert busy.value.retry_after_ms == 1000
        finally:
            gate._hashing.release()
        reader.close()
    finally:
        store.close()


def test_access_settings_are_checked() -> None:
    """An empty or overlong server password and a bad scrypt cost are refused when configured; the server
    password never shows in the config's repr."""
    with pytest.raises(ValueError, match="non-empty"):
        ServerConfig(password="")
    with pytest.raises(ValueError, match="longer than max_reason"):
        ServerConfig(password="x" * 513)
    with pytest.raises(ValueError, match="power of two"):
        ServerConfig(scrypt_n=1000)
    assert "hush" not in repr(ServerConfig(password="hush"))
    assert ServerConfig().scrypt_cost == ScryptCost()


def test_address_buckets_give_back() -> None:
    """A token given back is there again (never above the burst); an unknown address is unaffected."""
    clock = Clock()
    buckets = AddressBuckets(rate=0.001, burst=2, max_addresses=10, clock=clock)
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    buckets.give_back("a")
    assert buckets.take("a") == 0.0
    buckets.give_back("a")
    buckets.give_back("a")
    buckets.give_back("a")
    assert [buckets.take("a") == 0.0 for _ in range(3)] == [True, True, False]
    buckets.give_back("never-seen")
    assert len(buckets) == 1
