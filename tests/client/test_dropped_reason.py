"""A client the server drops for reading too slowly learns the real reason (`sendq_exceeded`), not "reset"."""

from __future__ import annotations

from pathlib import Path

from chat_client import ChatClient, Disconnected
from chat_lab.proxy import FaultProxy
from shared import SignedOff
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .test_library import FAST, Recorder

TEXT = "x" * 4000


async def test_a_dropped_slow_client_reports_sendq_exceeded(tmp_path: Path) -> None:
    """Alice's link freezes while bob talks; the server drops her for her send queue. When the link moves
    again she reads what was in flight, then the error: `Disconnected` carries `sendq_exceeded`."""
    config = fast_server_config(
        tmp_path / "server",
        rate_messages=1e6,
        rate_burst=10**6,
        rate_bytes=1e9,
        rate_bytes_burst=10**9,
        sendq_soft=32 * 1024,
        sendq_hard=256 * 1024,
        write_timeout=60.0,
        drop_linger=30.0,
    )
    with LiveServer(config) as server:
        proxy = FaultProxy(lambda: (server.host, server.port))
        await proxy.start()
        try:
            async with (
                ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice,
                ChatClient(server.host, server.port, "bob", options=FAST) as bob,
            ):
                alice_events, bob_events = Recorder(alice), Recorder(bob)
                await wait_until(lambda: alice.rooms == ("lobby",) and bob.rooms == ("lobby",))
                proxy.freeze()
                for _ in range(2000):
                    if any(off.nick == "alice" for off in bob_events.of(SignedOff)):
                        break
                    await bob.say("lobby", TEXT, wait=True)
                off = [off for off in bob_events.of(SignedOff) if off.nick == "alice"]
                assert off, "alice was never dropped"
                assert off[0].reason == "send queue exceeded"
                proxy.thaw()
                await wait_until(lambda: alice_events.of(Disconnected), 20.0, "alice to notice")
                lost = alice_events.of(Disconnected)[0]
                assert lost.code == "sendq_exceeded", lost
                assert "sendq_exceeded" in lost.reason
        finally:
            await proxy.close()
