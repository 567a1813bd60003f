"""`chat-server --record FILE` and `chat-lab replay` (docs/lab.md, docs/server.md): a recording of a scripted
chat, replayed against a fresh server, gets the same answers; a changed one is reported; the file is bounded
and holds no password."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chat_lab.replay import load, replay
from shared import PROTOCOL_NAME, PROTOCOL_VERSION, Ack, Hello, Quit, RoomState, Said, Say, Welcome, Who
from tests.server.client import ChatTestClient
from tests.server.process import ServerProcess

REPLAY = (sys.executable, "-m", "chat_lab", "replay")
LIMITS = ("--max-connections-per-minute", "100000", "--rate-burst", "1000", "--rate-messages", "1000")


@contextmanager
def server(folder: Path, *options: str) -> Iterator[tuple[str, int]]:
    """A real `chat-server` process with a fresh history in `folder`."""
    with ServerProcess("--port", "0", "--data-dir", str(folder), *LIMITS, *options) as process:
        assert process.address is not None, process.first_line
        yield process.address


def scripted_chat(address: tuple[str, int], lines: int = 3) -> None:
    """alice and bob in one room; alice says `lines` lines, each seen by bob; bob asks who is there; alice
    quits."""
    with ChatTestClient(address) as alice, ChatTestClient(address) as bob:
        alice.login("alice", rooms=["lab"])
        bob.login("bob", rooms=["lab"])
        for n in range(lines):
            alice.send(Say(room="lab", text=f"line {n}", ref=n + 1))
            alice.recv(Ack, ref=n + 1)
            bob.recv(Said, text=f"line {n}")
        bob.send(Who(room="lab", ref=9))
        bob.recv(RoomState, ref=9)
        alice.send(Quit())
        alice.wait_closed()


def test_a_recording_has_every_frame_in_and_out_with_time_and_connection(tmp_path: Path) -> None:
    """Each line: a time, a connection id, in/out/end, and the frame: the hello and says in, acks and saids
    out, and the end of each connection."""
    recording = tmp_path / "chat.rec"
    with server(tmp_path / "a", "--record", str(recording)) as address:
        scripted_chat(address)
    records = load(recording)
    assert {r.direction for r in records} == {"in", "out", "end"}
    assert len({r.conn for r in records}) == 2
    kinds = [(r.direction, r.frame.get("type")) for r in records if r.frame]
    assert kinds.count(("in", "say")) == 3
    assert kinds.count(("out", "ack")) == 3
    assert kinds.count(("out", "said")) == 3
    assert [r.t for r in records] == sorted(r.t for r in records)


def test_record_then_replay_gives_the_same_answers(tmp_path: Path) -> None:
    """The recording replayed against a fresh server: every answer the same (times and tokens aside)."""
    recording = tmp_path / "chat.rec"
    with server(tmp_path / "a", "--record", str(recording)) as address:
        scripted_chat(address)
    with server(tmp_path / "b") as target:
        report = replay(load(recording), target)
    assert report.differences == []
    assert report.connections == 2
    assert report.compared >= 12


def test_a_different_answer_is_reported(tmp_path: Path) -> None:
    """A recording whose second say went to a room alice is not in (edited): the replay reports the answers
    that differ (an error instead of alice's ack), and `chat-lab replay` exits 1."""
    recording = tmp_path / "chat.rec"
    with server(tmp_path / "a", "--record", str(recording)) as address:
        scripted_chat(address)
    lines = recording.read_text().splitlines()
    says = [i for i, line in enumerate(lines) if '"type": "say"' in line]
    edited = json.loads(lines[says[1]])
    edited["frame"]["room"] = "elsewhere"
    lines[says[1]] = json.dumps(edited)
    recording.write_text("\n".join(lines) + "\n")
    with server(tmp_path / "b") as target:
        report = replay(load(recording), target)
        command = subprocess.run(
            [sys.executable, "-m", "chat_lab", "replay", str(recording), "--to", f"{target[0]}:{target[1]}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    got = [((d.recorded or {}).get("type"), (d.received or {}).get("type")) for d in report.differences]
    assert ("ack", "error") in got
    assert command.returncode == 1
    assert "differ" in command.stdout.splitlines()[-1]


def test_passwords_are_redacted(tmp_path: Path) -> None:
    """A login with the server password: the recording shows "<redacted>", never the password."""
    secret = tmp_path / "password"
    secret.write_text("correct horse\n")
    secret.chmod(0o600)
    recording = tmp_path / "chat.rec"
    options = ("--record", str(recording), "--password-file", str(secret))
    with server(tmp_path / "a", *options) as address, ChatTestClient(address) as client:
        client.send(
            Hello(proto=PROTOCOL_NAME, version=PROTOCOL_VERSION, nick="alice", password="correct horse")
        )
        client.recv(Welcome)
    text = recording.read_text()
    assert "correct horse" not in text
    assert '"password": "<redacted>"' in text


def test_the_recording_is_bounded_and_rotates(tmp_path: Path) -> None:
    """With --record-max-bytes 4000 --record-files 2: FILE, FILE.1 and FILE.2 exist, none much past the bound,
    and no FILE.3."""
    recording = tmp_path / "chat.rec"
    options = ("--record", str(recording), "--record-max-bytes", "4000", "--record-files", "2")
    with server(tmp_path / "a", *options) as address:
        scripted_chat(address, lines=40)
    files = sorted(p.name for p in tmp_path.glob("chat.rec*"))
    assert files == ["chat.rec", "chat.rec.1", "chat.rec.2"]
    assert all((tmp_path / name).stat().st_size <= 4000 + 1000 for name in files)


def test_speed_divides_the_recorded_gaps(tmp_path: Path) -> None:
    """A recording with a 1 s pause before its second say (its times edited), replayed with `--speed 0.5`:
    the pause lasts 2 s, and the answers are the same."""
    recording = tmp_path / "chat.rec"
    with server(tmp_path / "a", "--record", str(recording)) as address:
        scripted_chat(address)
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    second_say = [i for i, line in enumerate(lines) if line.get("frame", {}).get("type") == "say"][1]
    for line in lines[second_say:]:
        line["t"] += 1.0
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with server(tmp_path / "b") as target:
        started = time.monotonic()
        command = subprocess.run(
            [*REPLAY, str(recording), "--to", f"{target[0]}:{target[1]}", "--speed", "0.5"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert command.returncode == 0, command.stdout + command.stderr
    assert command.stdout.splitlines()[-1].endswith("the same answers")
    assert elapsed >= 2.0


def test_speed_must_be_above_zero() -> None:
    """`--speed 0` is a usage error (exit 2), before anything is read or sent."""
    command = subprocess.run(
        [sys.executable, "-m", "chat_lab", "replay", "missing.rec", "--to", "127.0.0.1:9", "--speed", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert command.returncode == 2
    assert "--speed" in command.stderr


def test_a_rotated_recording_replays_whole(tmp_path: Path) -> None:
    """A recording rotated into several files (none deleted) replays from its oldest file on: the same
    answers as a fresh server gives."""
    recording = tmp_path / "chat.rec"
    options = ("--record", str(recording), "--record-max-bytes", "4000", "--record-files", "20")
    with server(tmp_path / "a", *options) as address:
        scripted_chat(address, lines=12)
    assert (tmp_path / "chat.rec.2").exists()
    assert not (tmp_path / "chat.rec.20").exists()
    with server(tmp_path / "b") as target:
        report = replay(load(recording), target)
    assert report.differences == []
    assert report.sent >= 12 + 2 + 1  # the says, the hellos (and joins), the who


def test_a_missing_recording_is_a_usage_error(tmp_path: Path) -> None:
    """`chat-lab replay` of a file that is not there: one line saying so, exit 2 (no traceback)."""
    command = subprocess.run(
        [sys.executable, "-m", "chat_lab", "replay", str(tmp_path / "nothing.rec"), "--to", "127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert command.returncode == 2
    assert command.stderr.strip() == f"chat-lab replay: no recording at {tmp_path / 'nothing.rec'}"
