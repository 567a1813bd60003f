"""The chat server's own beacon: `ServerConfig.beacon`, the `--beacon*` options and the `[beacon]` table."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from chat_server.config import ServerConfig
from chat_server.server import SERVER_ID_FILE, ChatServer
from shared.discovery import Announcement, decode_datagram
from tests.server.client import ChatTestClient
from tests.server.process import ServerProcess
from tests.waiting import DEADLINE

from .helpers import loopback_config, udp_socket


def next_announcement(sock: socket.socket) -> Announcement:
    """Receive datagrams on `sock` until one is a beacon (the test fails on the socket's timeout)."""
    while True:
        data, _source = sock.recvfrom(2048)
        datagram = decode_datagram(data)
        if isinstance(datagram, Announcement):
            return datagram


def announcement_where(sock: socket.socket, condition: str, check: object) -> Announcement:
    """The first beacon for which `check(beacon)` is true; `condition` names it in a failure."""
    for _ in range(int(DEADLINE / 0.05)):
        beacon = next_announcement(sock)
        if check(beacon):  # type: ignore[operator]
            return beacon
    raise AssertionError(f"no beacon with {condition}")


def shared_port_socket() -> socket.socket:
    """A loopback UDP socket on a port the server's beacon may bind too (as a client on the same host does).

    Through the command line the beacon takes queries on the port it announces to; with SO_REUSEADDR on
    both sockets they share it, and a datagram to 127.0.0.1 goes to this, the more specific, binding.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(DEADLINE)
    return sock


def beacon_threads() -> list[threading.Thread]:
    """The beacon threads alive in this process."""
    return [thread for thread in threading.enumerate() if thread.name == "mpchat-beacon"]


def test_server_announces_its_port_users_and_rooms(tmp_path: Path) -> None:
    """A server with the beacon on announces its TCP port, and its user and room counts as they change."""
    with udp_socket() as listener:
        beacon = loopback_config(listener.getsockname()[1])
        with ChatServer(ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path, beacon=beacon)) as server:
            first = next_announcement(listener)
            assert first.port == server.address[1]
            assert first.name == server.config.server_name
            with ChatTestClient(server.address) as alice:
                alice.login("alice")
                busy = announcement_where(listener, "one user in lobby", lambda b: b.users == 1)
                assert ("lobby", 1) in busy.rooms
        assert beacon_threads() == []


def test_server_keeps_its_id_across_restarts(tmp_path: Path) -> None:
    """The announced server id is stored in the data folder and survives a restart."""
    ids = []
    with udp_socket() as listener:
        beacon = loopback_config(listener.getsockname()[1])
        for _ in range(2):
            with ChatServer(ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path, beacon=beacon)):
                ids.append(next_announcement(listener).id)
    assert ids[0] == ids[1]
    assert (tmp_path / SERVER_ID_FILE).read_text().strip() == ids[0]


def test_beacon_is_off_by_default(tmp_path: Path) -> None:
    """Without the option the server starts no beacon thread (nothing is announced unless asked)."""
    with ChatServer(ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path)):
        assert beacon_threads() == []


def test_command_line_options_turn_the_beacon_on(tmp_path: Path) -> None:
    """`chat-server --beacon --beacon-address --beacon-port --beacon-interval` announces where it is told."""
    with shared_port_socket() as listener:
        port = str(listener.getsockname()[1])
        arguments = ["--port", "0", "--data-dir", str(tmp_path), "--beacon", "--beacon-address", "127.0.0.1"]
        with ServerProcess(*arguments, "--beacon-port", port, "--beacon-interval", "0.1") as server:
            assert server.address is not None, server.close()
            assert next_announcement(listener).port == server.address[1]


def test_config_file_beacon_table(tmp_path: Path) -> None:
    """A `[beacon]` table in server.toml configures the beacon; an unknown beacon key is a usage error."""
    with shared_port_socket() as listener:
        config = tmp_path / "server.toml"
        config.write_text(
            '[beacon]\nenabled = true\naddresses = ["127.0.0.1"]\n'
            f"port = {listener.getsockname()[1]}\ninterval = 0.1\n"
        )
        with ServerProcess("--port", "0", "--data-dir", str(tmp_path), "--config", str(config)) as server:
            assert server.address is not None, server.close()
            assert next_announcement(listener).port == server.address[1]
    config.write_text("[beacon]\nenabled = true\nloudness = 11\n")
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path), "--config", str(config)) as server:
        assert server.process.wait(DEADLINE) == 2
        assert "loudness" in server.close()[1]


def test_tls_server_announces_its_tls_port_and_fingerprint(tmp_path: Path) -> None:
    """With a TLS port next to the plaintext one, the beacon announces the TLS port and the fingerprint."""
    from chat_server.tls import TlsConfig

    with udp_socket() as listener:
        beacon = loopback_config(listener.getsockname()[1])
        config = ServerConfig(
            host="127.0.0.1", port=0, data_dir=tmp_path, beacon=beacon, tls=TlsConfig(port=0)
        )
        with ChatServer(config) as server:
            announcement = next_announcement(listener)
            assert server.tls_address is not None
            assert announcement.port == server.tls_address[1] != server.address[1]
            assert announcement.tls is True
            assert announcement.fingerprint == server.fingerprint
