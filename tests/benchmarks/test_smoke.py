"""Smoke runs of the benchmark suite: correctness only (every message delivered exactly once), never timing.

Each run is a second of sending at a low rate with a dozen clients, against our real server and the tutorial
baseline on 127.0.0.1 port 0, through the same load generator (two worker processes) the benchmarks use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run as bench_run
from benchmarks.cloadgen import own_rooms_config, parse_setting, stalled_clients
from benchmarks.frames.mkframes import config_text
from benchmarks.loadgen import LoadSpec, run_load, table
from benchmarks.servers import BENCH_SETTINGS
from chat_lab.lessons.tutorial_server import TutorialServer
from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import Hello, History, ProtocolConnection, Role, RoomState, Say, Welcome, encode
from shared.codec import frame

FIELDS = (
    "delivered",
    "expected_deliveries",
    "delivery_ratio",
    "deliveries_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "login_s",
    "send_lag_max_ms",
    "loadgen_cpu_us_per_delivery",
    "loadavg_start",
)
SERVER_FIELDS = ("cpu_us_per_delivery", "cpu_msg_pct", "rss_kb_per_connection", "rss_kb_start", "threads")


def small_run(port: int, **changes: Any) -> dict[str, Any]:
    """A one-second run: 12 clients, 3 senders, 60 msg/s, against 127.0.0.1:`port`."""
    settings: dict[str, Any] = {"port": port, "clients": 12, "senders": 3, "rate": 60.0, "duration": 1.0}
    settings.update(changes)
    return run_load(LoadSpec(**settings), server_pid=os.getpid())


def assert_exactly_once(result: dict[str, Any]) -> None:
    """Every expected delivery arrived once, nothing else arrived, every send was acknowledged."""
    assert result["errors"] == {}
    assert result["sent"] == result["acked"] == 60
    assert result["delivered"] == result["expected_deliveries"]
    assert (result["duplicates"], result["misrouted"]) == (0, 0)
    assert result["logged_in"] == result["clients"]


def test_our_server_delivers_every_message_once(tmp_path: Path) -> None:
    """Against our server (history on), each of 3 rooms gets every message of its senders exactly once."""
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path, **BENCH_SETTINGS)  # type: ignore[arg-type]
    with ChatServer(config) as server:
        result = small_run(server.address[1], rooms=3, senders=6)
    assert_exactly_once(result)
    assert result["expected_deliveries"] == 60 * 3  # rooms of 4: each message reaches 3 others


def test_stalled_client_is_logged_in_and_not_counted(tmp_path: Path) -> None:
    """A client that stops reading after login adds a member to the room but no expected delivery."""
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path, **BENCH_SETTINGS)  # type: ignore[arg-type]
    with ChatServer(config) as server:
        result = small_run(server.address[1], stalled=1)
    assert (result["stalled"], result["logged_in"]) == (1, 13)
    assert result["expected_deliveries"] == 60 * 11
    assert result["delivered"] == result["expected_deliveries"]


def test_baseline_delivers_every_message_once() -> None:
    """Against the tutorial baseline, one room of 12: each message reaches the 11 others exactly once."""
    with TutorialServer() as server:
        result = small_run(server.address[1])
    assert_exactly_once(result)
    assert result["expected_deliveries"] == 60 * 11


def test_result_is_json_with_every_field() -> None:
    """The result carries the documented fields, survives JSON, and renders as a table row."""
    with TutorialServer() as server:
        result = small_run(server.address[1], label="fields")
    decoded = json.loads(json.dumps(result))
    assert [key for key in FIELDS if key not in decoded] == []
    assert [key for key in SERVER_FIELDS if key not in decoded["server"]] == []
    assert "fields" in table([decoded])


def test_quick_suite_runs_both_servers(tmp_path: Path) -> None:
    """`python -m benchmarks.run --quick W1` starts each server itself and records both results."""
    output = tmp_path / "result.json"
    assert bench_run.main(["--quick", "W1", "--output", str(output), "--no-pin"]) == 0
    record = json.loads(output.read_text())
    results = record["results"]
    assert [r["server_name"] for r in results] == ["mpchat", "tutorial"]
    assert [r["delivered"] == r["expected_deliveries"] > 0 for r in results] == [True, True]
    assert record["bench_settings"] == BENCH_SETTINGS


def test_spec_expected_deliveries_add_up() -> None:
    """The run's expected total is the sum of what each client expects (rooms of unequal size included)."""
    spec = LoadSpec(port=1, clients=23, rooms=4, senders=7, rate=101.0, duration=1.0)
    assert spec.expected_deliveries() == sum(spec.expected_for(client) for client in range(23))


def test_loadgen_refuses_other_hosts() -> None:
    """The load generator only targets loopback."""
    with pytest.raises(ValueError, match="loopback"):
        LoadSpec(host="10.0.0.1", port=1, clients=2, senders=1, rate=1.0, duration=1.0)


def test_frames_config_is_valid_protocol() -> None:
    """The C load generator's config: its hello (index filled in) and message template decode as ours."""
    lines = dict(line.split(" = ", 1) for line in config_text(64, "bench").splitlines() if " = " in line)
    hello_body = bytes.fromhex(lines["send"]).replace(b"%CONN%", b"000042")
    server = ProtocolConnection(Role.SERVER)
    server.receive_data(frame(hello_body))
    say_body = bytes.fromhex(lines["msg"]).replace(b"T" + b"0" * 19, b"T" + b"1" * 19)
    server.receive_data(frame(say_body))
    hello, say = list(server.events())
    assert hello == Hello(proto="mpchat", version=1, nick="u000042", rooms=("bench",))
    assert isinstance(say, Say)
    assert (say.room, len(say.text.encode()), say.text[:20]) == ("bench", 64, "T" + "1" * 19)
    wait = bytes.fromhex(lines["wait_bytes"])
    assert wait in encode(History(room="bench"))
    welcome = Welcome(version=1, nick="a", server="s", ts=1)
    assert wait not in encode(RoomState(room="bench")) + encode(welcome)


def test_own_rooms_config_puts_each_client_in_its_room() -> None:
    """`cloadgen --own-rooms`: the hello, index filled in, names a room of that client's own."""
    config = own_rooms_config(64)
    lines = dict(line.split(" = ", 1) for line in config.splitlines() if " = " in line)
    server = ProtocolConnection(Role.SERVER)
    server.receive_data(frame(bytes.fromhex(lines["send"]).replace(b"%CONN%", b"000042")))
    (hello,) = list(server.events())
    assert hello == Hello(proto="mpchat", version=1, nick="u000042", rooms=("r000042",))
    assert (
        lines["msg"]
        == dict(line.split(" = ", 1) for line in config_text(64, "bench").splitlines() if " = " in line)[
            "msg"
        ]
    )


def test_stalled_clients_log_in_and_stay(tmp_path: Path) -> None:
    """`cloadgen --stalled`: the clients are logged in to the room when the context is entered."""
    config = ServerConfig(host="127.0.0.1", port=0, data_dir=tmp_path, **BENCH_SETTINGS)  # type: ignore[arg-type]
    with ChatServer(config) as server, stalled_clients(server.address[1], 2, "bench") as sockets:
        assert len(sockets) == 2
        assert sorted(server.stats().queues) == ["stalled0", "stalled1"]


def test_setting_values_are_typed() -> None:
    """`cloadgen --setting KEY=VALUE`: integers, floats and strings; a missing '=' is refused."""
    assert parse_setting("history_sync=NORMAL") == ("history_sync", "NORMAL")
    assert parse_setting("sendq_hard=2048") == ("sendq_hard", 2048)
    assert parse_setting("ping_interval=0.5") == ("ping_interval", 0.5)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_setting("history_sync")
