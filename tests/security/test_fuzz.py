"""A Hypothesis-driven fuzzer against a real server on 127.0.0.1: random and mutated frames over real TCP.

Each generated case opens a connection, optionally logs in, sends a sequence of frames (valid framing with
hostile contents, raw msgpack bodies built byte by byte, valid frames with mutated bytes, valid requests in
odd orders), cut into random chunks, then closes its sending side and reads until the server closes. For every
case the server must

* answer only with frames that decode as valid server frames (the test client's decoder checks each one),
* never answer `internal_error` (the code a crashed reader or request sends) and log no error,
* send nothing after a fatal error, and close the connection once the client has finished (no hang);

and across all cases a canary pair keeps chatting in order, and afterwards the server's connections, this
process's threads and its file descriptors return to their baseline (nothing leaked), and a new client can
still log in. The number of cases is bounded (`CASES`) so the file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_server.server import ChatServer
from shared import (
    DEFAULT_LIMITS,
    SENT_BY_CLIENT,
    CancelFile,
    ChangeNick,
    Error,
    FetchHistory,
    FileChunk,
    GetFile,
    Hello,
    Join,
    Leave,
    ListRooms,
    Message,
    OfferFile,
    Ping,
    Pong,
    ProtocolError,
    Quit,
    Say,
    SetAway,
    SetTopic,
    Tell,
    Who,
    decode_body,
    encode,
    frame,
)
from shared.schema import MAX_UINT
from tests.server.client import ChatTestClient, wait_until

from .canary import Canary

#: Cases per fuzz test (there are three): bounded so the file stays well under a minute on 2 loaded cores.
CASES = 500
#: Longest the server may take to close a connection after the client's end of stream (a hang fails).
CLOSE_DEADLINE = 10.0

MakeServer = Callable[..., ChatServer]
StartCanary = Callable[..., Canary]

# -- Strategies: names, values and frames -----------------------------------------------------------------

CLIENT_TYPES = [
    "hello", "join", "leave", "say", "tell", "nick", "topic", "away",
    "list_rooms", "who", "fetch_history", "quit", "ping", "pong",
    "file_offer", "file_chunk", "file_get", "file_cancel",
]  # fmt: skip
SERVER_TYPES = ["welcome", "error", "ack", "said", "told", "joined", "history", "room_state", "signed_off"]
FIELDS = [
    "proto", "version", "nick", "client", "rooms", "password", "ref", "room", "after", "backfill", "key",
    "reason", "text", "action", "client_msg_id", "to", "topic", "message", "direct", "peer", "before",
    "limit", "token", "id", "ts", "code", "fatal", "limits", "members", "messages",
    "name", "size", "sha256", "upload", "offset", "data",
]  # fmt: skip
NAMES = st.sampled_from(["lobby", "Lobby", "LOBBY", "canary-room", "r1", "fuzz", "canary-a", "Zoë", "x" * 65])
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\x1b[2J\x1b]0;pwned\x07",
        "\x9b31m",
        "\u202eevil\u202c",
        "a\u200bb",
        "\ufeff",
        "[bold]x[/]",
        "[@click=app.quit]x[/]",
        "\ud7ff\ue000\U0010ffff",
        "line\nline\ttab",
        "\x7f",
    ]
)
BIG_INTS = st.sampled_from([-(2**63), -1, 0, 1, 2**31, 2**32, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1])
#: Strings of any length up to past the frame limit, built cheaply from a length (and a character).
LONG_TEXT = st.builds(lambda n, c: c * n, st.integers(0, 70_000), st.sampled_from(["x", "é", "\U0001f600"]))
TIMESTAMPS = st.builds(msgpack.Timestamp, st.integers(-(2**33), 2**34 - 1), st.integers(0, 999_999_999))
EXT_TYPES = st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20))


@dataclass(frozen=True)
class ReservedExt:
    """An extension value with a negative (reserved) type code, which msgpack's packer will not write."""

    code: int
    data: bytes


RESERVED_EXT = st.builds(ReservedExt, st.integers(-128, -1), st.binary(max_size=20))

ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    BIG_INTS,
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    NAMES,
    HOSTILE_TEXT,
    st.text(max_size=40),
    LONG_TEXT,
    st.binary(max_size=40),
    EXT_TYPES,
    TIMESTAMPS,
)
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8), st.integers(-5, 5), st.binary(max_size=4))
VALUES = st.recursive(
    ATOMS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
TYPE_VALUES = st.one_of(
    st.sampled_from(CLIENT_TYPES),
    st.sampled_from(SERVER_TYPES),
    st.text(max_size=12),
    BIG_INTS,
    st.none(),
    st.binary(max_size=6),
    EXT_TYPES,
)


def pack(value: Any) -> bytes:
    """msgpack bytes of `value`; values msgpack itself cannot pack (a huge negative int) become nil."""
    if isinstance(value, ReservedExt):  # ext 8: length, signed type code, data
        return b"\xc7" + struct.pack(">Bb", len(value.data), value.code) + value.data
    try:
        return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]
    except (OverflowError, ValueError, TypeError):
        return b"\xc0"


@st.composite
def hostile_maps(draw: st.DrawFn) -> bytes:
    """A frame holding one map with a (possibly wrong) type and known or unknown fields of any value."""
    fields: dict[Any, Any] = draw(st.dictionaries(KEYS, VALUES | RESERVED_EXT, max_size=6))
    if draw(st.integers(0, 3)):  # mostly with a type, so the checks past the type are reached too
        fields["type"] = draw(TYPE_VALUES)
    body = b"".join(pack(k) + pack(v) for k, v in fields.items())
    return frame(b"\xdf" + struct.pack(">I", len(fields)) + body)


def _map_with(last_key: str, raw_value: bytes) -> bytes:
    """A `say` map whose last entry's value is the given raw msgpack bytes."""
    return b"\x83" + pack("type") + pack("say") + pack("room") + pack("lobby") + pack(last_key) + raw_value


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """Bodies msgpack's own packer would never write: deep nesting, bad UTF-8, lying length headers."""
    kind = draw(st.sampled_from(["nest_list", "nest_map", "utf8", "lying", "random"]))
    if kind == "nest_list":
        depth = draw(st.integers(1, 60_000))
        body = _map_with("text", b"\x91" * depth + b"\xc0")
    elif kind == "nest_map":
        depth = draw(st.integers(1, 20_000))
        body = _map_with("text", b"\x81\xa1k" * depth + b"\xc0")
    elif kind == "utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]))
        text = draw(st.binary(max_size=8)) + bad + draw(st.binary(max_size=8))
        key = draw(st.sampled_from(["text", "room", "type"]))
        body = _map_with(key, b"\xdb" + struct.pack(">I", len(text)) + text)
    elif kind == "lying":  # str32, bin32, array32 or map32 announcing 4 GiB inside a small frame
        header = draw(st.sampled_from([b"\xdb", b"\xc6", b"\xdd", b"\xdf"]))
        body = _map_with("text", header + struct.pack(">I", draw(st.integers(1, 2**32 - 1))))
    else:
        body = draw(st.binary(min_size=1, max_size=300))
    return frame(body)


ROOMS = st.one_of(NAMES, HOSTILE_TEXT)
TEXTS = st.one_of(NAMES, HOSTILE_TEXT, st.text(max_size=30))
UINTS = st.one_of(st.none(), st.integers(0, MAX_UINT))
#: SHA-256 values: of no bytes, of b"x", and hex that is not lowercase.
SHA256S = st.sampled_from([hashlib.sha256(b"").hexdigest(), hashlib.sha256(b"x").hexdigest(), "AB" * 32])
REQUESTS: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, proto=st.sampled_from(["mpchat", "irc"]), version=st.integers(0, 3), nick=TEXTS),
    st.builds(Join, room=ROOMS, after=UINTS, backfill=UINTS, ref=UINTS),
    st.builds(Leave, room=ROOMS, reason=st.one_of(st.none(), TEXTS)),
    st.builds(Say, room=ROOMS, text=TEXTS, action=st.booleans(), ref=UINTS),
    st.builds(Tell, to=TEXTS, text=TEXTS, client_msg_id=st.one_of(st.none(), TEXTS)),
    st.builds(ChangeNick, nick=TEXTS, ref=UINTS),
    st.builds(SetTopic, room=ROOMS, topic=TEXTS),
    st.builds(SetAway, message=st.one_of(st.none(), TEXTS)),
    st.builds(ListRooms, ref=UINTS),
    st.builds(Who, room=ROOMS, ref=UINTS),
    st.builds(
        FetchHistory,
        room=st.one_of(st.none(), ROOMS),
        direct=st.booleans(),
        peer=st.one_of(st.none(), TEXTS),
        before=UINTS,
        after=UINTS,
        limit=UINTS,
    ),
    st.builds(
        OfferFile,
        name=TEXTS,
        size=st.one_of(st.integers(0, 3 * 49_152), st.integers(0, MAX_UINT)),
        sha256=st.one_of(SHA256S, TEXTS),
        room=st.one_of(st.none(), ROOMS),
        to=st.one_of(st.none(), TEXTS),
        client_msg_id=st.one_of(st.none(), TEXTS),
        ref=UINTS,
    ),
    st.builds(
        FileChunk,
        upload=st.integers(0, 3),
        offset=st.one_of(st.integers(0, 3 * 49_152), st.integers(0, MAX_UINT)),
        data=st.binary(max_size=300),
        ref=UINTS,
    ),
    st.builds(GetFile, id=st.integers(0, 50), offset=st.integers(0, MAX_UINT), ref=UINTS),
    st.builds(CancelFile, upload=st.integers(0, 3), ref=UINTS),
    st.builds(Quit, reason=st.one_of(st.none(), TEXTS)),
    st.builds(Ping, token=UINTS),
    st.builds(Pong, token=UINTS),
)
#: Valid-looking frames of requests, in any order; their field values need not pass the server's checks.
REQUEST_FRAMES = REQUESTS.map(encode)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A request frame with bytes flipped, inserted, deleted or cut; the length header fixed up or not."""
    data = bytearray(draw(REQUEST_FRAMES))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if operation == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif operation == "truncate":
            del data[position:]
    if draw(st.booleans()) and len(data) > 4:
        data[:4] = struct.pack(">I", len(data) - 4)  # keep the framing in step, so the body is what is wrong
    return bytes(data)


@dataclass(frozen=True)
class Case:
    """One fuzz connection: log in first or not, the frames to send, and where to cut the byte stream."""

    login: bool
    frames: list[bytes]
    cuts: list[int]

    def chunks(self, first: int = 0) -> list[bytes]:
        """The frames from `first` on as one byte stream, cut at `cuts` (one `recv` is never one frame)."""
        data = b"".join(self.frames[first:])
        points = sorted({0, len(data), *(c % (len(data) + 1) for c in self.cuts)})
        return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def cases(frames: st.SearchStrategy[bytes]) -> st.SearchStrategy[Case]:
    """Cases whose frames mix `frames` with valid-looking requests."""
    return st.builds(
        Case,
        login=st.integers(0, 3).map(bool),  # mostly logged in: most of the server's rules apply after hello
        frames=st.lists(st.one_of(frames, REQUEST_FRAMES), min_size=1, max_size=6),
        cuts=st.lists(st.integers(0, 2**16), max_size=4),
    )


FUZZ_SETTINGS = settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# -- Running a case ----------------------------------------------------------------------------------------

_nicks = itertools.count(1)


def is_hello(data: bytes) -> bool:
    """True if `data` is exactly one frame holding a `hello` the server decodes (valid or not in content)."""
    if len(data) < 4 or int.from_bytes(data[:4], "big") != len(data) - 4:
        return False
    try:
        return isinstance(decode_body(data[4:], SENT_BY_CLIENT, DEFAULT_LIMITS), Hello)
    except ProtocolError:
        return False


def run_case(server: ChatServer, case: Case) -> None:
    """Send one case on a fresh connection and check what the server answers."""
    with ChatTestClient(server.address) as client:
        first = 0
        if case.login:
            client.login(f"fz{next(_nicks)}")
        elif is_hello(case.frames[0]):
            # Wait for the answer to a leading hello before sending the rest, so that each case is about its
            # own frames (pipelining behind hello has its own test, test_pipelined_hello.py).
            client.send_raw(case.frames[0])
            client.recv_until(lambda message: True, CLOSE_DEADLINE)
            first = 1
        for chunk in case.chunks(first):
            try:
                client.send_raw(chunk)
            except OSError:
                break  # the server has closed this connection (after a fatal error): nothing more to send
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_WR)
        # The test client decodes every frame as a server frame: anything invalid fails the test right here.
        received = client.wait_closed(CLOSE_DEADLINE)
    errors = [m for m in received if isinstance(m, Error)]
    assert not [e for e in errors if e.code == "internal_error"], f"the server failed internally: {errors}"
    fatal = [index for index, m in enumerate(received) if isinstance(m, Error) and m.fatal]
    assert fatal in ([], [len(received) - 1]), f"frames after a fatal error: {received[-5:]}"


def open_descriptors(besides: Path) -> int:
    """How many file descriptors this process has open, not counting those of files whose path starts with
    `besides` (the history database, whose descriptors SQLite manages)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # a descriptor closed while we look
            count += not os.readlink(f"/proc/self/fd/{fd}").startswith(str(besides))
    return count


class Baseline:
    """This process's threads and file descriptors (the server runs in it), to compare after the fuzzing.

    The history database's own descriptors are left out while the server runs: SQLite's unix VFS keeps the
    descriptor of a closed read connection open while another connection in the process holds a lock on that
    file, and reuses it for the next one. The autouse `no_leaks` fixture counts every descriptor, those
    included, once the server has stopped.
    """

    def __init__(self, server: ChatServer) -> None:
        self.history = server.config.history_path
        self.threads = threading.active_count()
        self.fds = open_descriptors(self.history)

    def wait_back(self, server: ChatServer, connections: int) -> None:
        """Wait until only `connections` remain on the server and threads and descriptors are back."""
        wait_until(lambda: server.stats().connections == connections, 10, f"{connections} connections")
        wait_until(lambda: threading.active_count() <= self.threads, 10, f"threads back to {self.threads}")
        wait_until(
            lambda: open_descriptors(self.history) <= self.fds, 10, f"file descriptors back to {self.fds}"
        )


def fuzz(
    make_server: MakeServer,
    start_canary: StartCanary,
    caplog: pytest.LogCaptureFixture,
    strategy: st.SearchStrategy[Case],
) -> None:
    """Run `strategy`'s cases against one server with a canary; check the server afterwards."""
    server = make_server(max_clients_per_ip=64, frame_timeout=5.0, hello_timeout=5.0)
    canary = start_canary(server, interval=0.005)
    canary.wait_rounds(2)
    baseline = Baseline(server)
    caplog.set_level(logging.WARNING, logger="chat_server")

    @FUZZ_SETTINGS
    @given(case=strategy)
    def run(case: Case) -> None:
        canary.check()
        logged = len(caplog.records)
        run_case(server, case)
        problems = [r.getMessage() for r in caplog.records[logged:] if r.levelno >= logging.ERROR]
        assert problems == [], f"the server logged errors: {problems}"

    run()
    baseline.wait_back(server, connections=2)  # the canary's two
    canary.wait_rounds(3)
    with ChatTestClient(server.address) as late:
        assert late.login("latecomer").nick == "latecomer"
    canary.stop()
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == [], problems


def test_fuzz_hostile_maps(make_server: MakeServer, start_canary: StartCanary, caplog: Any) -> None:
    """Maps of every msgpack type: huge ints, ext and timestamp types, wrong and unknown types, bin keys."""
    fuzz(make_server, start_canary, caplog, cases(hostile_maps()))


def test_fuzz_raw_bodies(make_server: MakeServer, start_canary: StartCanary, caplog: Any) -> None:
    """Bodies written byte by byte: deep nesting, invalid UTF-8, 4 GiB length headers inside a frame."""
    fuzz(make_server, start_canary, caplog, cases(raw_bodies()))


def test_fuzz_mutated_and_reordered_requests(
    make_server: MakeServer, start_canary: StartCanary, caplog: Any
) -> None:
    """Valid request frames with mutated bytes, and valid requests in odd orders, before and after hello."""
    fuzz(make_server, start_canary, caplog, cases(mutated_frames()))
