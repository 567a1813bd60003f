"""The Prometheus endpoint (`--metrics`): scraped over real HTTP while real clients chat; counters move."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chat_server.server import ChatServer
from shared import Ack, Said, Say, SignedOff

from .client import ChatTestClient, wait_until
from .files_client import download, upload

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "mpchat.json"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: ChatServer) -> Samples:
    """GET /metrics over HTTP and parse it: {(sample name, labels): value}."""
    address = server.metrics_address
    assert address is not None
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the labelled series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def disconnects(samples: Samples) -> float:
    """Connections ended, whatever the reason (bob's close may read as "closed" or "lost")."""
    return sum(v for (name, _labels), v in samples.items() if name == "mpchat_disconnects_total")


def say(client: ChatTestClient, text: str, ref: int) -> None:
    """Say `text` in the lobby and wait for its ack (it is stored and queued for everyone by then)."""
    client.send(Say(room="lobby", text=text, ref=ref))
    client.recv(Ack, ref=ref)


def test_counters_move_with_a_real_chat(make_server: Callable[..., ChatServer]) -> None:
    """Logins, messages, deliveries, commits and the connection gauge follow what three clients do."""
    server = make_server(metrics="127.0.0.1:0")
    with (
        ChatTestClient(server.address) as alice,
        ChatTestClient(server.address) as bob,
        ChatTestClient(server.address) as carol,
    ):
        for client, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            client.login(nick)
        before = scrape(server)
        assert value(before, "mpchat_logins_total") == 3
        assert value(before, "mpchat_connections", state="chatting", tls="false") == 3
        assert value(before, "mpchat_logged_in") == 3
        for ref in range(5):
            say(alice, f"line {ref}", ref)
        for client in (bob, carol):
            for ref in range(5):
                client.recv(Said, text=f"line {ref}")
        after = scrape(server)
    assert value(after, "mpchat_messages_total") - value(before, "mpchat_messages_total") == 5
    assert value(after, "mpchat_deliveries_total") - value(before, "mpchat_deliveries_total") == 10
    for histogram in ("mpchat_commit_seconds", "mpchat_commit_batch_size", "mpchat_fanout_seconds"):
        grew = value(after, histogram + "_count") - value(before, histogram + "_count")
        assert grew >= 1, histogram
        assert value(after, histogram + "_bucket", le="+Inf") == value(after, histogram + "_count")
    assert value(after, "mpchat_threads") >= 5  # acceptor, sender, history, metrics-http, 3 readers
    assert value(after, "mpchat_open_fds") > 3
    assert value(after, "mpchat_resident_memory_bytes") > 1_000_000


def test_file_transfer_bytes_are_counted_both_ways(make_server: Callable[..., ChatServer]) -> None:
    """A 100,000-byte upload, then two downloads of it: 100,000 bytes up, 200,000 down."""
    server = make_server(metrics="127.0.0.1:0")
    data = bytes(range(256)) * 390 + bytes(160)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        bob.login("bob")
        result = upload(alice, data, name="notes.bin", client_msg_id="f-1")
        assert result.done is not None
        assert download(bob, result.done.id) == data
        assert download(alice, result.done.id) == data
        samples = scrape(server)
    assert value(samples, "mpchat_file_bytes_total", direction="upload") == len(data) == 100_000
    assert value(samples, "mpchat_file_bytes_total", direction="download") == 2 * len(data)


def test_refusals_disconnects_and_rate_limits_are_counted(make_server: Callable[..., ChatServer]) -> None:
    """A taken nick, a say delayed by the rate limit and a closed connection each show under their label."""
    server = make_server(metrics="127.0.0.1:0", rate_messages=20.0, rate_burst=2)
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address) as bob:
        alice.login("alice")
        bob.login("bob")
        with ChatTestClient(server.address) as again:
            again.hello("alice")
            again.error("nick_taken")
        for ref in range(3):
            alice.send(Say(room="lobby", text="hi", ref=ref))
        alice.recv(Ack, ref=2)  # the third waited for its token (fakelag)
        bob.close()
        alice.recv(SignedOff, nick="bob")
        wait_until(lambda: disconnects(scrape(server)) >= 2, what="both ended connections counted")
        samples = scrape(server)
    assert value(samples, "mpchat_refusals_total", reason="nick_taken") == 1
    assert value(samples, "mpchat_disconnects_total", reason="closed by server") == 1  # the refused one
    assert value(samples, "mpchat_rate_limited_total", bucket="messages") >= 1
    assert value(samples, "mpchat_logins_total") == 2


def test_a_slow_consumer_drop_is_counted_by_reason(make_server: Callable[..., ChatServer]) -> None:
    """A client that stops reading is dropped for its send queue, and the drop is counted as such."""
    server = make_server(
        metrics="127.0.0.1:0",
        send_buffer=16 * 1024,
        sendq_soft=32 * 1024,
        sendq_hard=64 * 1024,
        sendq_soft_seconds=60.0,
        write_timeout=60.0,
    )
    with ChatTestClient(server.address) as alice, ChatTestClient(server.address, receive_buffer=4096) as slow:
        alice.login("alice")
        slow.login("slow")
        deadline = time.monotonic() + 30
        ref = 0
        dropped = False
        while not dropped and time.monotonic() < deadline:
            say(alice, "x" * 4000, ref)
            ref += 1
            dropped = any(isinstance(m, SignedOff) for m in alice.drain(0.0))
        assert dropped, "the stalled client was never dropped"
        # Counted when the connection ends: for a client that reads nothing, drop_linger (5 s) after the drop.
        wait_until(
            lambda: value(scrape(server), "mpchat_slow_consumer_drops_total", reason="sendq_exceeded"),
            15,
            "the drop counted",
        )
        samples = scrape(server)
    assert value(samples, "mpchat_disconnects_total", reason="send queue exceeded") == 1
    assert value(samples, "mpchat_top_queue_bytes", nick="slow") == 0  # gone: no longer listed


def test_the_endpoint_is_off_by_default_and_its_thread_is_named(
    make_server: Callable[..., ChatServer],
) -> None:
    """No --metrics: no endpoint and no thread; with it, one thread named metrics-http, gone after stop."""
    plain = make_server()
    assert plain.metrics_address is None
    assert "metrics-http" not in {thread.name for thread in threading.enumerate()}
    served = make_server(metrics="127.0.0.1:0")
    assert served.metrics_address is not None
    assert served.metrics_address[0] == "127.0.0.1"
    assert [t.name for t in threading.enumerate()].count("metrics-http") == 1
    served.stop()
    wait_until(lambda: "metrics-http" not in {thread.name for thread in threading.enumerate()})


def test_cli_without_the_library_says_what_to_install(tmp_path: Path) -> None:
    """`--metrics` where prometheus_client cannot be imported: exit 1 and the pip command, not a traceback."""
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from chat_server.__main__ import main\n"
        f"sys.exit(main(['--port', '0', '--data-dir', {str(tmp_path)!r}, '--metrics', '127.0.0.1:0']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert result.returncode == 1
    assert "pip install 'mpchat[metrics]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("address", ["nonsense", "host:", "1.2.3.4:99999", "::1:9100"])
def test_cli_refuses_a_malformed_metrics_address(tmp_path: Path, address: str) -> None:
    """A malformed HOST:PORT is a usage error (exit 2) naming the setting."""
    command = ["--port", "0", "--data-dir", str(tmp_path), "--metrics", address]
    result = subprocess.run(
        [sys.executable, "-m", "chat_server", *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "metrics address" in result.stderr


def test_every_metric_is_documented_and_the_dashboard_queries_only_real_ones(
    make_server: Callable[..., ChatServer],
) -> None:
    """docs/server.md names every metric family; docs/grafana/mpchat.json is JSON querying existing series."""
    server = make_server(metrics="127.0.0.1:0")
    address = server.metrics_address
    assert address is not None
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=10) as response:
        families = {
            family.name: family.type for family in text_string_to_metric_families(response.read().decode())
        }
    assert len(families) >= 20
    docs = (ROOT / "docs" / "server.md").read_text()
    assert [name for name in sorted(families) if f"`{name}" not in docs] == []
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    series = {name + suffix for name, kind in families.items() for suffix in suffixes[kind]}
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(queries) >= 20, "the dashboard queries too little"
    queried = {name for query in queries for name in re.findall(r"\bmpchat_[a-z_]+", query)}
    assert sorted(queried - series) == []
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in queried}
    assert sorted(set(families) - shown - {"mpchat_rooms"}) == []  # every metric but one has a panel
