"""The client over IPv6: an IPv6 literal, and a name with an IPv6 and an IPv4 address whose first address is
dead (Happy Eyeballs: the client must not wait out the dead one).

The name is given its two addresses by a hosts file that only the client subprocess sees: it runs in a
private mount namespace (``unshare --mount``) where the file is bind-mounted over /etc/hosts. Its network is
the host's loopback; nothing outside the process changes. Root is needed for the mount namespace.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList

from chat_client import ChatClient, ClientOptions
from chat_client.discover_cli import lan_listener_factory
from chat_client.net.pins import PINS_FILE, PinStore
from chat_client.net.trust import TlsOptions
from chat_client.settings import data_dir
from chat_client.tui.app import ChatApp
from chat_client.tui.screens.connect import ConnectScreen
from chat_server.beacon.beacon import Beacon
from chat_server.beacon.config import BeaconConfig
from chat_server.tls import TlsConfig
from shared.discovery import BeaconInfo, new_server_id
from tests.waiting import DEADLINE, wait_until

from .helpers import LiveServer, fast_server_config
from .tui_helpers import wait_for_chat

ROOT = Path(__file__).resolve().parents[2]
#: A name only the client subprocess can resolve (a reserved top-level domain, RFC 2606).
DUAL_NAME = "dual.mpchat.test"


async def test_library_connects_to_an_ipv6_literal(tmp_path: Path) -> None:
    """`ChatClient("::1", port, ...)` logs in to a server listening on ::1, and says something."""
    with LiveServer(fast_server_config(tmp_path, host="::1")) as server:
        assert server.host == "::1"
        async with ChatClient(
            "::1", server.port, "alice", options=ClientOptions(connect_timeout=5)
        ) as client:
            entry = await client.say("lobby", "hello over IPv6", wait=True)
            assert entry.id is not None


def in_private_hosts(hosts: Path, *command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `command` with `hosts` as its /etc/hosts (a private mount namespace); bounded."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(hosts), *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=4 * DEADLINE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


class Blackhole:
    """A TCP port that never answers: its accept queue (backlog 0) is full and nobody accepts, so the kernel
    drops every further SYN, and a client waits as for a host that is down."""

    def __init__(self, host: str, port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, port))
        self.listener.listen(0)
        self.port: int = self.listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(8):  # the queue holds one or two; stop at the first attempt that is not answered
            filler = socket.socket(family, socket.SOCK_STREAM)
            self._fillers.append(filler)
            filler.settimeout(1.0)
            try:
                filler.connect((host, self.port))
            except TimeoutError:
                return
        raise AssertionError("the blackhole's accept queue never filled")

    def close(self) -> None:
        for sock in (*self._fillers, self.listener):
            sock.close()


@pytest.fixture
def dual_hosts(tmp_path: Path) -> tuple[Path, list[str]]:
    """A hosts file giving `DUAL_NAME` both ::1 and 127.0.0.1, and the order the resolver returns them in."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"::1 {DUAL_NAME}\n127.0.0.1 {DUAL_NAME}\n", encoding="ascii")
    lookup = (
        "import socket; "
        f"infos = socket.getaddrinfo({DUAL_NAME!r}, 1, type=socket.SOCK_STREAM); "
        "print(*dict.fromkeys(info[4][0] for info in infos))"
    )
    result = in_private_hosts(hosts, sys.executable, "-c", lookup)
    assert result.returncode == 0, result.stderr
    order = result.stdout.split()
    assert sorted(order) == ["127.0.0.1", "::1"], result.stdout
    return hosts, order


def test_a_name_whose_first_address_is_dead_connects_over_the_other(
    dual_hosts: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """`--host NAME` (IPv6 and IPv4): the first address the resolver gives never answers, the server is on
    the second one; the client connects over the second at once instead of waiting out its connect timeout."""
    hosts, (dead, alive) = dual_hosts
    for _attempt in range(5):
        # The server takes a free port on the live address first; the blackhole then takes the same port
        # on the dead one (the other family), which another program may hold: then try another port.
        with LiveServer(fast_server_config(tmp_path / "server", host=alive, port=0)) as server:
            try:
                blackhole = Blackhole(dead, server.port)
            except OSError:
                continue
            try:
                result = in_private_hosts(
                    hosts,
                    sys.executable,
                    "-m",
                    "chat_client",
                    "--plain",
                    "--host",
                    DUAL_NAME,
                    "--port",
                    str(server.port),
                    "--nick",
                    "bob",
                    stdin="hello from both families\n/quit\n",
                )
            finally:
                blackhole.close()
            break
    else:
        raise AssertionError("no port free on both addresses in five tries")
    assert result.returncode == 0, result.stderr
    assert "hello from both families" in result.stdout


async def test_tls_over_ipv6_pins_the_key_under_the_bracketed_address(tmp_path: Path) -> None:
    """A TLS connection to ::1 pins the key as ``[::1]:PORT`` in known_servers.json, and the next connection
    is checked against that pin."""
    config = fast_server_config(tmp_path / "server", host="::1", tls=TlsConfig(enabled=True))
    with LiveServer(config) as server:
        options = ClientOptions(connect_timeout=5)
        for first in (True, False):
            tls = TlsOptions(pins=PinStore())
            async with ChatClient("::1", server.port, "alice", options=options, tls=tls) as client:
                assert client.identity is not None
                assert client.identity.pinned_now is first
        pins = json.loads((data_dir() / PINS_FILE).read_text())
        assert list(pins) == [f"[::1]:{server.port}"]


async def test_connect_screen_hears_an_ipv6_server_and_connects_to_it(
    tmp_path: Path, private_dirs: Path
) -> None:
    """With ``--discover-address`` an IPv6 address (here the beacon's, on ::1), the connect screen lists the
    server as ``[::1]:PORT``; picking it connects over IPv6."""
    with LiveServer(fast_server_config(tmp_path / "server", host="::1")) as server:
        info = BeaconInfo(
            server_id=new_server_id(), name="six", port=server.port, users=0, rooms=[("lobby", 0)]
        )
        config = BeaconConfig(
            enabled=True, addresses=("::1",), bind_address_v6="::1", port=9, query_port=0, interval=3600.0
        )
        with Beacon(config, lambda: info) as beacon:
            host, port = beacon.query_address
            discovery = lan_listener_factory(host, port)
            app = ChatApp(
                config_dir=private_dirs, options=ClientOptions(connect_timeout=5), discovery=discovery
            )
            async with app.run_test(size=(120, 36)) as pilot:
                screen = app.screen
                assert isinstance(screen, ConnectScreen)
                lan = screen.query_one("#lan", OptionList)
                await wait_until(lambda: lan.option_count == 1, what="the IPv6 server listed")
                assert f"[::1]:{server.port}" in str(lan.get_option_at_index(0).prompt)
                screen.query_one("#nick", Input).value = "carol"
                lan.highlighted = 0
                lan.action_select()
                chat = await wait_for_chat(app, pilot)
                await wait_until(lambda: chat.model.current == "#lobby", what="logged in over IPv6")
