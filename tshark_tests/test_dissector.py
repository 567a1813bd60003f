"""The Wireshark dissector (chat_lab/wireshark/mpchat.lua) under `tshark`, on a capture of a scripted
loopback chat that holds every frame type of the protocol (the conformance suite, plus an admin's `stats`),
and of the LAN beacon's datagrams. The types the dissector shows are checked against the capture decoded
independently in Python (tshark_tests/pcap.py and msgpack).

These tests need `tshark` and `dumpcap` (root, to capture on loopback): `.ci/run` installs tshark and runs
this folder after the main suite (`python -m pytest tshark_tests`); docs/lab.md says so.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest

from chat_client import ChatClient
from chat_client.net.pins import PinStore
from chat_client.net.trust import SSLKEYLOG_ENV, TlsOptions
from chat_lab.wireshark import DISSECTOR
from chat_server.beacon.beacon import Beacon
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from chat_server.tls import TlsConfig
from shared.discovery import encode_query
from shared.limits import DEFAULT_MAX_FRAME
from shared.schema import SENT_BY_CLIENT, SENT_BY_SERVER
from tests.client.helpers import LiveServer, fast_server_config
from tests.client.test_library import FAST
from tests.discovery.helpers import INFO, loopback_config, udp_socket
from tests.lab.capture_script import PINGING, SUITE_TIMEOUT, capture_settings, scripted_chat
from tests.waiting import DEADLINE, wait_until_sync

from .pcap import tcp_streams, udp_datagrams

ROOT = Path(__file__).resolve().parent.parent
#: Seconds dumpcap may take to start capturing.
CAPTURE_START = 30.0
#: Malformed frames the conformance suite sends at least (its framing cases: a zero length, a body that is
#: not msgpack, bytes after the map...); each must be flagged by the dissector.
MALFORMED_IN_SUITE = 3


@contextmanager
def capture(path: Path, capture_filter: str) -> Iterator[None]:
    """Capture loopback traffic matching `capture_filter` into the pcap file `path` while the body runs.

    dumpcap says "Capturing on" a little before it captures, writes what it has read every so often, and
    drops what the kernel still holds when it is stopped: so the body starts only once a marker datagram
    has reached the file, and dumpcap is stopped only once a second one has (everything before it is then
    there too). The markers go to a port of their own, which the tests leave out.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker_sink:
        marker_sink.bind(("127.0.0.1", 0))
        marker_port = marker_sink.getsockname()[1]
        dumpcap = subprocess.Popen(
            [
                "dumpcap",
                "-q",
                "-i",
                "lo",
                "-f",
                f"({capture_filter}) or udp port {marker_port}",
                "-P",
                "-w",
                str(path),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert dumpcap.stderr is not None
        said = []
        for line in dumpcap.stderr:  # "Capturing on 'Loopback: lo'" once it runs (bounded: or it exits)
            said.append(line)
            if line.startswith("Capturing on"):
                break
        assert dumpcap.poll() is None, "".join(said)
        # Keep reading what it says: a full pipe would block dumpcap, and with it the capture.
        threading.Thread(
            target=said.extend, args=(dumpcap.stderr,), name="dumpcap-stderr", daemon=True
        ).start()
        try:
            caught_up(path, marker_sink, said)  # "Capturing on" comes before the capture really runs
            yield
            caught_up(path, marker_sink, said)
        finally:
            dumpcap.send_signal(signal.SIGINT)
            dumpcap.communicate(timeout=CAPTURE_START)


def caught_up(path: Path, marker_sink: socket.socket, said: list[str]) -> None:
    """Send marker datagrams to `marker_sink` until one is in the capture file `path`: the capture then
    runs, and holds everything sent before it."""
    marker = f"mpchat-capture-marker-{time.monotonic_ns()}".encode()

    def captured() -> bool:
        if path.exists() and marker in path.read_bytes():
            return True
        marker_sink.sendto(marker, marker_sink.getsockname())  # another, for dumpcap's next write
        return False

    wait_until_sync(captured, CAPTURE_START, "the capture to catch up: " + "".join(said))


def tshark(path: Path, *options: str) -> list[list[str]]:
    """Run tshark with the dissector on `path`; one list of tab-separated fields per packet."""
    result = subprocess.run(
        ["tshark", "-r", str(path), "-X", f"lua_script:{DISSECTOR}", *options],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=SUITE_TIMEOUT,
        check=True,
    )
    assert "Lua: Error" not in result.stderr, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def refuse_extensions(code: int, data: bytes) -> Any:
    raise ValueError("extension types are refused")


def has_timestamp(value: Any) -> bool:
    if isinstance(value, msgpack.Timestamp):
        return True
    if isinstance(value, dict):
        return any(has_timestamp(v) for v in value.values())
    return isinstance(value, list) and any(has_timestamp(v) for v in value)


def frame_types(stream: bytes) -> list[str]:
    """The type of each frame of one direction's bytes, or "malformed": what the spec says each frame is."""
    found, offset = [], 0
    while offset + 4 <= len(stream):
        length = int.from_bytes(stream[offset : offset + 4], "big")
        if length == 0 or length > DEFAULT_MAX_FRAME:
            found.append("malformed")
            break  # the server closes here; nothing after it is a frame
        if offset + 4 + length > len(stream):
            break  # cut off by the close
        body = stream[offset + 4 : offset + 4 + length]
        offset += 4 + length
        try:
            value = msgpack.unpackb(body, raw=False, strict_map_key=True, ext_hook=refuse_extensions)
        except Exception:
            found.append("malformed")
            continue
        if has_timestamp(value):  # extension -1, decoded by msgpack itself: refused like any extension
            found.append("malformed")
            continue
        kind = value.get("type") if isinstance(value, dict) else None
        found.append(kind if isinstance(kind, str) else "malformed")
    return found


def test_every_frame_of_a_scripted_chat_decodes_with_its_type(tmp_path: Path) -> None:
    """tshark with the dissector shows, for every direction of every connection, the same frame types in the
    same order as the capture decoded in Python; malformed frames are flagged; every type of the protocol
    occurs, sent by each side that may send it."""
    with (
        ChatServer(ServerConfig(**capture_settings(tmp_path / "suite"))) as suite_server,
        ChatServer(ServerConfig(**capture_settings(tmp_path / "pinging", **PINGING))) as pinging_server,
    ):
        ports = (suite_server.address[1], pinging_server.address[1])
        pcap = tmp_path / "chat.pcap"
        with capture(pcap, " or ".join(f"tcp port {port}" for port in ports)):
            scripted_chat(suite_server, pinging_server)
    expected: dict[tuple[int, int], list[str]] = {
        flow: [kind for stream in streams for kind in frame_types(stream)]
        for flow, streams in tcp_streams(pcap).items()
    }
    shown: dict[tuple[int, int], list[str]] = {}
    rows = tshark(
        pcap,
        *(option for port in ports for option in ("-d", f"tcp.port=={port},mpchat")),
        "-T",
        "fields",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.dstport",
        "-e",
        "mpchat.type",
        "-e",
        "mpchat.malformed",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    )
    for source, destination, types, malformed in rows:
        if not source:
            continue  # not TCP: the capture's end marker
        flow = (int(source), int(destination))
        shown.setdefault(flow, []).extend(t for t in types.split("|") if t)
        shown[flow].extend("malformed" for m in malformed.split("|") if m)
    for flow, types in expected.items():
        assert [t for t in shown.get(flow, []) if t != "malformed"] == [
            t for t in types if t != "malformed"
        ], flow
        assert Counter(shown.get(flow, []))["malformed"] >= Counter(types)["malformed"], flow
    malformed = sum(Counter(types)["malformed"] for types in expected.values())
    assert malformed >= MALFORMED_IN_SUITE  # the suite's framing cases: each one flagged, checked above
    from_clients = {t for (_, to), types in expected.items() if to in ports for t in types}
    from_servers = {t for (source, _), types in expected.items() if source in ports for t in types}
    assert sorted(set(SENT_BY_CLIENT) - from_clients) == []
    assert sorted(set(SENT_BY_SERVER) - from_servers) == []
    assert sum(len(types) for types in expected.values()) > 500


def test_the_beacon_query_and_reply_decode(tmp_path: Path) -> None:
    """Beacons, a query and its reply, captured on loopback, show as beacon, query and reply."""
    pcap = tmp_path / "discovery.pcap"
    with udp_socket() as sink:
        sink_port = sink.getsockname()[1]
        config = loopback_config(sink_port, interval=0.05)
        with Beacon(config, lambda: INFO) as beacon, udp_socket() as client:
            query_port = beacon.query_address[1]
            with capture(pcap, f"udp port {sink_port} or udp port {query_port}"):
                sink.settimeout(DEADLINE)
                sink.recv(2048)
                client.sendto(encode_query(7), beacon.query_address)
                client.recv(2048)
    beacon_ports = {query_port, sink_port}
    expected = [
        msgpack.unpackb(data)["type"] for ports, data in udp_datagrams(pcap) if beacon_ports & set(ports)
    ]
    rows = tshark(
        pcap,
        "-d",
        f"udp.port=={query_port},mpchat-discovery",
        "-d",
        f"udp.port=={sink_port},mpchat-discovery",
        "-T",
        "fields",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
        "-e",
        "mpchat-discovery.type",
    )
    shown = [kind for source, destination, kind in rows if beacon_ports & {int(source), int(destination)}]
    assert shown == expected
    assert {"beacon", "query", "reply"} <= set(expected)


def test_a_tls_session_decrypts_with_the_clients_key_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS chat captured with the client's SSLKEYLOGFILE: tshark decrypts it, and the dissector shows the
    hello, the welcome, the say and its ack inside, the say's fields in its tree."""
    keys = tmp_path / "keys.log"
    monkeypatch.setenv(SSLKEYLOG_ENV, str(keys))
    monkeypatch.setenv("MPCHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MPCHAT_CONFIG_DIR", str(tmp_path / "config"))
    pcap = tmp_path / "tls.pcap"
    with LiveServer(fast_server_config(tmp_path / "server", tls=TlsConfig(enabled=True))) as server:

        async def chat() -> None:
            tls = TlsOptions(pins=PinStore())
            async with ChatClient(server.host, server.port, "alice", options=FAST, tls=tls) as alice:
                await alice.say("lobby", "hello over TLS", wait=True)

        with capture(pcap, f"tcp port {server.port}"):
            asyncio.run(chat())
    rows = tshark(
        pcap,
        "-o",
        f"tls.keylog_file:{keys}",
        "-d",
        f"tcp.port=={server.port},tls",
        "-d",
        f"tls.port=={server.port},mpchat",
        "-T",
        "fields",
        "-e",
        "mpchat.type",
        "-e",
        "mpchat.field",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    )
    shown = [kind for row in rows for kind in row[0].split("|") if kind]
    assert {"hello", "welcome", "say", "ack"} <= set(shown)
    say_fields = next(row[1].split("|") for row in rows if "say" in row[0].split("|"))
    assert 'type: "say"' in say_fields
    assert 'room: "lobby"' in say_fields
    assert 'text: "hello over TLS"' in say_fields
