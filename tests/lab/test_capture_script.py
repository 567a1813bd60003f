"""The chat tshark_tests/ captures holds every frame type of the protocol, from each side that may send it
(checked here from the servers' recording, without tshark: the dissector's test can only show a type the
capture holds)."""

from __future__ import annotations

from pathlib import Path

from chat_lab.replay import load
from chat_server.config import ServerConfig
from chat_server.recorder import start_recording, stop_recording
from chat_server.server import ChatServer
from shared import SENT_BY_CLIENT, SENT_BY_SERVER, GetStats

from .capture_script import PINGING, capture_settings, scripted_chat


def test_the_capture_script_sends_and_receives_every_frame_type(tmp_path: Path) -> None:
    """Every type a client may send is among the requests the servers decoded, and every type a server may
    send among the frames they sent, during the scripted chat."""
    assert GetStats.TYPE in SENT_BY_CLIENT  # the catalogue is loaded
    recording = tmp_path / "chat.rec"
    recorder = start_recording(recording, 1 << 30, 1)
    try:
        with (
            ChatServer(ServerConfig(**capture_settings(tmp_path / "suite"))) as suite_server,
            ChatServer(ServerConfig(**capture_settings(tmp_path / "pinging", **PINGING))) as pinging_server,
        ):
            scripted_chat(suite_server, pinging_server)
    finally:
        stop_recording(recorder)
    seen: dict[str, set[str]] = {"in": set(), "out": set()}
    for record in load(recording):
        if record.direction in seen:
            seen[record.direction].add(record.frame["type"])
    assert sorted(set(SENT_BY_CLIENT) - seen["in"]) == []
    assert sorted(set(SENT_BY_SERVER) - seen["out"]) == []
