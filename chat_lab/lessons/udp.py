"""Lesson 3: UDP. Datagrams keep their boundaries (no sticky packets), but nothing promises they arrive,
arrive once, or arrive in order. The lesson asks mpchat's beacon for the time (the discovery query: the reply
carries the server's clock) twenty times through the fault proxy's UDP mode with loss, duplication and
jitter, and counts what came back; then it listens to the beacon's announcements the same way.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TextIO

from chat_lab.proxy import UdpFaultProxy
from chat_server.beacon.beacon import Beacon
from chat_server.beacon.config import BeaconConfig
from shared.discovery import LOOPBACK_ONLY_ENV, Announcement, BeaconInfo, Reply, decode_datagram, encode_query

QUERIES = 20
#: The faults of the lesson: a bad Wi-Fi, exaggerated.
FAULTS = {"loss": 0.25, "duplicate": 0.3, "jitter": 0.08}
#: How long the client listens after its last query (everything delayed has arrived by then).
LISTEN = 0.6
#: The beacon's interval in the lesson (the default is seconds; here it is sped up).
BEACON_INTERVAL = 0.05
INFO = BeaconInfo(server_id="0" * 32, name="Lesson server", port=7878, users=2, rooms=(("lobby", 2),))


@dataclass
class UdpFindings:
    """What lesson 3 saw: the nonces of the replies in arrival order, the clock offsets, the beacons."""

    replies: list[int] = field(default_factory=list)
    offsets_ms: list[float] = field(default_factory=list)
    beacons_sent: int = 0
    beacons_heard: int = 0


def summarise(nonces: list[int]) -> tuple[int, int, bool]:
    """(lost, duplicated, reordered) for replies to queries 0..QUERIES-1."""
    lost = len(set(range(QUERIES)) - set(nonces))
    duplicated = len(nonces) - len(set(nonces))
    firsts = list(dict.fromkeys(nonces))
    return lost, duplicated, firsts != sorted(firsts)


def run(out: TextIO, seed: int = 20) -> UdpFindings:
    """Run the lesson, narrating to `out`; return what it saw. Everything stays on 127.0.0.1."""
    os.environ[LOOPBACK_ONLY_ENV] = "1"  # the beacon refuses any destination off loopback
    return asyncio.run(_run(out, seed))


async def _run(out: TextIO, seed: int) -> UdpFindings:
    found = UdpFindings()
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where the beacons go (through the proxy)
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the first beacon's announcements: not looked at
    sink.bind(("127.0.0.1", 0))
    config = BeaconConfig(
        enabled=True,
        addresses=("127.0.0.1",),
        port=sink.getsockname()[1],
        query_port=0,
        bind_address="127.0.0.1",
        interval=3600.0,
        query_rate=1000.0,
        query_burst=1000,
        reply_rate=1000.0,
        reply_burst=1000,
    )
    with sink, Beacon(config, lambda: INFO) as beacon:
        proxy = UdpFaultProxy(beacon.query_address, seed=seed)
        for name, value in FAULTS.items():
            setattr(proxy.to_server, name, value)
            setattr(proxy.to_client, name, value)
        await proxy.start()
        print(
            f"the beacon answers queries on {beacon.query_address}; the proxy in front of it: {FAULTS}",
            file=out,
        )
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        with client:
            for nonce in range(QUERIES):
                await loop.sock_sendto(client, encode_query(nonce), proxy.address)
            end = loop.time() + LISTEN
            while (left := end - loop.time()) > 0:
                try:
                    data = await asyncio.wait_for(loop.sock_recv(client, 2048), left)
                except TimeoutError:
                    break
                reply = decode_datagram(data)
                if isinstance(reply, Reply):
                    found.replies.append(reply.nonce)
                    found.offsets_ms.append(reply.clock - time.time() * 1000)
        await proxy.close()
    lost, duplicated, reordered = summarise(found.replies)
    print(f"\n{QUERIES} time queries sent, {len(found.replies)} replies came back, in this order:", file=out)
    print(f"   {found.replies}", file=out)
    print(
        f"   lost: {lost}, duplicated: {duplicated}, out of order: {'yes' if reordered else 'no'}", file=out
    )
    if found.offsets_ms:
        low, high = min(found.offsets_ms), max(found.offsets_ms)
        print(
            f"   the server's clock minus ours: {low:.1f} to {high:.1f} ms "
            "(a reply says when it was sent, not when it arrived)",
            file=out,
        )

    beacon_proxy = UdpFaultProxy(listener.getsockname()[:2], seed=seed)
    beacon_proxy.to_server.loss = FAULTS["loss"]
    await beacon_proxy.start()
    announcing = BeaconConfig(
        enabled=True,
        addresses=("127.0.0.1",),
        port=beacon_proxy.port,
        query_port=0,
        bind_address="127.0.0.1",
        interval=BEACON_INTERVAL,
        jitter=0.0,
    )
    with listener, Beacon(announcing, lambda: INFO) as beacon:
        end = loop.time() + 20 * BEACON_INTERVAL
        while (left := end - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(loop.sock_recv(listener, 2048), left)
            except TimeoutError:
                break
            if isinstance(decode_datagram(data), Announcement):
                found.beacons_heard += 1
        found.beacons_sent = beacon_proxy.stats_up.writes + beacon_proxy.stats_up.datagrams_lost
    await beacon_proxy.close()
    print(
        f"\nbeacons: {found.beacons_sent} announced through a link losing {FAULTS['loss']:.0%}, "
        f"{found.beacons_heard} heard",
        file=out,
    )
    print(
        "\nwhy discovery is only a hint: a server may be up and unheard, or gone and still listed. "
        "mpchat's client lists what it heard (chat_client/net/discovery.py), forgets servers it stops "
        "hearing, and trusts only the TCP connection (and, with TLS, the pinned key): docs/discovery.md.",
        file=out,
    )
    return found
