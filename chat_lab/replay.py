"""`chat-lab replay FILE --to HOST:PORT`: play the clients' side of a recording (`chat-server --record`)
against a server, and report where its answers differ from the recorded ones.

Each recorded connection becomes a connection to the target, opened when its first frame is due. Every
recorded "in" frame is sent at its recorded time (the gaps divided by `--speed`: 2 is twice as fast, 0.1
ten times slower), and an "end" closes the connection; but a frame is sent (an end taken) only once every
connection has received as many answers as it had in the recording by then (or after `DEFAULT_SETTLE`
seconds without them), so what the clients had seen before one of them spoke is seen again before it speaks.
Meanwhile every answer is read. When the last frame
is sent, the replay waits until each connection has received as many frames as were recorded, or nothing
has come for `DEFAULT_SETTLE` seconds. Then, connection by connection and in order, each answer is
compared with the recorded one, leaving out `ping` and `pong` (sent on timers, not in answer) and the
fields that differ from run to run (`VOLATILE`: times, the server's name, tokens). A redacted password is
sent as recorded ("<redacted>"), so a login that needed a password is answered differently: that shows.

A teaching aid (watch a session again, slowly), and a way to turn a user's recording into a test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import selectors
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from shared.codec import FrameReassembler, frame

#: Fields compared never: they differ from run to run whatever the server does.
VOLATILE = frozenset({"ts", "server", "resume_token", "clock", "until", "started", "elapsed", "since"})
#: Frame types never compared (timers send them, not answers).
UNCOMPARED = frozenset({"ping", "pong"})
#: Seconds of quiet after which the replay stops waiting for more answers.
DEFAULT_SETTLE = 2.0
#: Seconds the replay waits for answers at most, after its last send.
DEFAULT_ANSWER_WAIT = 30.0
#: Largest frame accepted from the target.
MAX_FRAME = 16 * 1024 * 1024


@dataclass
class Recorded:
    """One line of a recording."""

    t: float
    conn: int
    direction: str
    frame: Any = None
    reason: str = ""


@dataclass
class Difference:
    """One answer that differs: which connection, which answer (counted from 0), recorded and received."""

    conn: int
    index: int
    recorded: dict[str, Any] | None
    received: dict[str, Any] | None

    def __str__(self) -> str:
        return (
            f"conn {self.conn} answer {self.index}: recorded {_show(self.recorded)}, "
            f"got {_show(self.received)}"
        )


@dataclass
class ReplayReport:
    """What a replay found."""

    connections: int = 0
    sent: int = 0
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)


def _show(frame: dict[str, Any] | None) -> str:
    return "nothing" if frame is None else json.dumps(frame, ensure_ascii=False, default=str)[:200]


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def recording_files(path: Path) -> list[Path]:
    """`path` and its rotated predecessors (`path.1`, `path.2`, ...), oldest first."""
    older = sorted(
        path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0
    )
    return [p for p in older if p.suffix[1:].isdigit()] + [path]


def load(path: Path) -> list[Recorded]:
    """Every line of a recording (rotated files included), in time order."""
    found = []
    for part in recording_files(path):
        for line in part.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                found.append(
                    Recorded(
                        item["t"],
                        item["conn"],
                        item["dir"],
                        _from_json(item.get("frame")),
                        item.get("reason", ""),
                    )
                )
    return sorted(found, key=lambda r: r.t)


def comparable(frame: Any) -> dict[str, Any] | None:
    """`frame` without its volatile fields (recursively), or None for a frame that is never compared."""
    if not isinstance(frame, dict) or frame.get("type") in UNCOMPARED:
        return None
    stripped: dict[str, Any] = _strip(frame)
    return stripped


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


class _Connection:
    def __init__(self, conn: int) -> None:
        self.conn = conn
        self.sock: socket.socket | None = None
        self.frames = FrameReassembler(MAX_FRAME)
        self.received: list[dict[str, Any]] = []

    def feed(self, data: bytes) -> None:
        self.frames.feed(data)
        for body in self.frames.frames():
            try:
                value = msgpack.unpackb(body, raw=False)
            except ValueError:
                value = {"type": "<undecodable>"}
            if isinstance(value, dict):
                self.received.append(value)


def replay(
    records: list[Recorded], address: tuple[str, int], speed: float = 1.0, settle: float = DEFAULT_SETTLE
) -> ReplayReport:
    """Replay the "in" frames and "end"s of `records` against `address`; compare the answers."""
    if speed <= 0:
        raise ValueError("speed must be above 0")
    connections: dict[int, _Connection] = {}
    selector = selectors.DefaultSelector()
    report = ReplayReport()
    start = time.monotonic()
    first = records[0].t if records else 0.0

    def pump(until: float) -> bool:
        """Read whatever arrives until the monotonic time `until`; True if anything did."""
        got = False
        while (left := until - time.monotonic()) > 0 or not got:
            events = selector.select(max(left, 0))
            if not events:
                return got
            for key, _ in events:
                connection: _Connection = key.data
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                got = True
                connection.feed(data)
        return got

    answered_before = _answered_before(records)
    try:
        for item in records:
            if item.direction not in ("in", "end"):
                continue
            pump(start + (item.t - first) / speed)
            connection = connections.get(item.conn)
            if connection is None:
                if item.direction == "end":
                    continue
                connection = connections[item.conn] = _Connection(item.conn)
                connection.sock = socket.create_connection(address, timeout=10)
                connection.sock.setblocking(False)
                selector.register(connection.sock, selectors.EVENT_READ, connection)
            if connection.sock is None:
                continue
            # What every connection had been answered before this step, it gets before the step is taken (a
            # few ms may separate them in the recording: the replay keeps that order, not the exact times).
            due = answered_before[id(item)]
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline and any(
                len(_compared(connections[conn].received)) < count
                for conn, count in due.items()
                if conn in connections
            ):
                pump(time.monotonic() + 0.05)
            if item.direction == "end":
                _close(selector, connection)
                continue
            connection.sock.setblocking(True)
            connection.sock.sendall(frame(msgpack.packb(item.frame, use_bin_type=True)))
            connection.sock.setblocking(False)
            report.sent += 1
        expected = _expected(records)
        deadline = time.monotonic() + DEFAULT_ANSWER_WAIT
        while time.monotonic() < deadline and not all(
            len(_compared(c.received)) >= len(expected.get(c.conn, [])) for c in connections.values()
        ):
            if not pump(time.monotonic() + settle):
                break
    finally:
        for connection in connections.values():
            _close(selector, connection)
        selector.close()
    report.connections = len(connections)
    for conn, wanted in _expected(records).items():
        got = _compared(connections[conn].received) if conn in connections else []
        for index in range(max(len(wanted), len(got))):
            recorded = wanted[index] if index < len(wanted) else None
            received = got[index] if index < len(got) else None
            report.compared += 1
            if recorded != received:
                report.differences.append(Difference(conn, index, recorded, received))
    return report


def _close(selector: selectors.BaseSelector, connection: _Connection) -> None:
    if connection.sock is None:
        return
    with contextlib.suppress(KeyError, ValueError):
        selector.unregister(connection.sock)
    connection.sock.close()
    connection.sock = None


def _compared(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in (comparable(f) for f in frames) if c is not None]


def _answered_before(records: list[Recorded]) -> dict[int, dict[int, int]]:
    """For each "in" and "end" record (by `id`): the comparable answers each connection had got before."""
    counts: dict[int, int] = {}
    found = {}
    for item in records:
        if item.direction == "out" and comparable(item.frame) is not None:
            counts[item.conn] = counts.get(item.conn, 0) + 1
        else:
            found[id(item)] = dict(counts)
    return found


def _expected(records: list[Recorded]) -> dict[int, list[dict[str, Any]]]:
    """Per recorded connection that sent something, the answers it got, comparable."""
    sending = {r.conn for r in records if r.direction == "in"}
    found: dict[int, list[dict[str, Any]]] = {conn: [] for conn in sending}
    for item in records:
        if item.direction == "out" and item.conn in found:
            wanted = comparable(item.frame)
            if wanted is not None:
                found[item.conn].append(wanted)
    return found
