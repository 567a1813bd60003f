"""The scripted loopback chat that tshark_tests/ captures for the Wireshark dissector: the conformance suite
against one real server, then, on a second one that pings idle clients quickly, an admin who answers the
server's ping and asks for the figures. Between them the clients send every request type and the servers
every frame type (tests/lab/test_capture_script.py checks that without tshark, so a new type with no
conformance case fails in the README's test command, not only in `.ci/run`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from chat_server.server import ChatServer
from shared import GetStats, Ping, Pong, StatsReport
from tests.security.test_moderation_rights import registered
from tests.security.test_registered_nicks import CHEAP, log_in
from tests.server.conftest import TEST_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
#: Seconds the whole conformance run may take on a loaded machine.
SUITE_TIMEOUT = 300.0
#: The second server's liveness settings: an idle client is pinged after 0.2 s (and never timed out in a
#: test). The suite's server keeps the test settings' 30 s: a ping in the middle of a case would break it.
PINGING = {"ping_interval": 0.2, "ping_timeout": 60.0}


def capture_settings(data_dir: Path, **changes: Any) -> dict[str, Any]:
    """`ServerConfig` settings for the scripted chat: the suite's hundred connections from one address,
    cheap password hashing, and `root` as an admin."""
    return {
        **TEST_SETTINGS,
        "max_clients_per_ip": 1000,
        **CHEAP,
        "data_dir": data_dir,
        "admins": ("root",),
        **changes,
    }


def scripted_chat(suite_server: ChatServer, pinging_server: ChatServer) -> None:
    """Every frame type each side may send: the conformance suite against `suite_server`, then on
    `pinging_server` (built with `PINGING`) an admin who answers its ping and asks for the figures."""
    host, port = suite_server.address[:2]
    suite = subprocess.run(
        [sys.executable, "-m", "conformance", "--host", host, "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert suite.returncode == 0, suite.stdout[-3000:]
    registered(pinging_server, "root", "hunter2")
    with log_in(pinging_server, "root", nick_password="hunter2") as root:
        ping = root.recv(Ping)  # the server pings a client that has been quiet for ping_interval
        root.send(Pong(token=ping.token))
        root.send(GetStats(ref=1))
        root.recv(StatsReport, ref=1)
