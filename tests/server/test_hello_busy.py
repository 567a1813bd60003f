"""Gap 1 of the protocol issue: what `hello` gets when the server is too busy to check its password.

`hello` draws from no rate bucket; the one refusal for load it can meet is `rate_limited`, fatal (before
`welcome` there is no session to keep), with `retry_after_ms` and the hello's `ref` (docs/protocol.md,
`hello`).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat_server import ChatServer
from chat_server.reader import gate as gate_module
from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Error, Hello, Register, Registration

from .client import ChatTestClient


def test_a_hello_whose_password_cannot_be_checked_in_time_is_refused_fatally_with_its_ref(
    make_server: Callable[..., ChatServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "HASH_WAIT", 0.2)
    server = make_server(max_concurrent_hashes=1)
    assert server.address is not None
    with ChatTestClient(server.address) as alice:
        alice.login("alice", rooms=[])
        alice.send(Register(password="correct horse", ref=1))
        assert alice.recv(Registration).registered
    slots = server._services.gate._hashing  # type: ignore[union-attr]  # another login is hashing
    assert slots.acquire(timeout=5)
    try:
        with ChatTestClient(server.address) as again:
            again.send(
                Hello(
                    proto=PROTOCOL_NAME,
                    version=PROTOCOL_VERSION,
                    nick="alice",
                    nick_password="correct horse",
                    rooms=(),
                    ref=7,
                )
            )
            refusal = again.recv(Error)
            assert (refusal.code, refusal.fatal, refusal.ref) == ("rate_limited", True, 7)
            assert refusal.retry_after_ms == 1000
            again.wait_closed()
    finally:
        slots.release()
    with ChatTestClient(server.address) as later:  # the slot is free again: the same hello is welcomed
        later.send(
            Hello(
                proto=PROTOCOL_NAME,
                version=PROTOCOL_VERSION,
                nick="alice",
                nick_password="correct horse",
                rooms=(),
                ref=8,
            )
        )
        assert later.recv_until(lambda m: getattr(m, "ref", None) == 8).TYPE == "welcome"
