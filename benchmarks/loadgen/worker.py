"""One load-generator worker process: its share of the clients on one `selectors` loop, no threads.

A worker goes through three phases, each started by the coordinator over the control pipe:

1. login: connect its clients (at most `concurrency` at a time), send each one's `hello`, and count it
   logged in when the `history` frame for its room arrives (after `welcome`, `joined`, `room_state`);
   then report "ready" and keep reading (other workers' clients joining are broadcast to ours);
2. messages ("go" with the common start time t0): send this worker's share of the schedule, open loop (a
   message is due at t0 + k/rate whatever has been delivered), and read everything; a message's text carries
   its send time and number, so every receiver measures latency and checks it got each message once;
   report "done" once every message it expects arrived, or the drain or idle timeout passed;
3. stop: close every connection and exit.

Reading is the hot path: the received bytes are cut into frames by their length headers and the marker is
found with `bytes.find` inside each frame; only frames without a marker (ack, ping, error, joined...) are
decoded with msgpack.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import msgpack

from shared import Hello, Pong, Say, encode

from . import histogram
from .spec import MARKER, MARKER_LEN, LoadSpec

RECV_BYTES = 256 * 1024
#: Longest the loop sleeps in one `select`, so deadlines and the control pipe are seen promptly.
TICK = 0.05
#: How long a worker waits for the coordinator's next command before giving up on it.
COMMAND_TIMEOUT = 600.0

CONNECTING, LOGGING_IN, READY, CLOSED = range(4)


class Client:
    """One simulated chat client: its socket, buffers, login state and delivery counters."""

    __slots__ = (
        "buf",
        "expected",
        "index",
        "last_seen",
        "login_ms",
        "out",
        "received",
        "room",
        "room_index",
        "sock",
        "stalled",
        "started_ns",
        "state",
        "welcomed",
        "writing",
    )

    def __init__(self, index: int, spec: LoadSpec) -> None:
        self.index = index
        self.room = spec.room_of(index)
        self.room_index = spec.room_index(index)
        self.expected = spec.expected_for(index)
        #: Logs in, then never reads again (see `LoadSpec.stalled`).
        self.stalled = index >= spec.clients
        self.sock: socket.socket | None = None
        self.state = CONNECTING
        self.buf = bytearray()
        self.out = bytearray()
        self.writing = False
        self.welcomed = False
        self.started_ns = 0
        self.login_ms = -1.0
        self.received = 0
        #: The highest message number seen from each sender: a number not above it is a duplicate.
        self.last_seen = [-1] * spec.senders


class Worker:
    """The event loop of one worker process (see the module docstring for its phases)."""

    def __init__(self, spec: LoadSpec, worker: int, control: Connection) -> None:
        self.spec = spec
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.clients = [Client(index, spec) for index in spec.clients_of(worker)]
        self.errors: dict[str, int] = {}
        self.hist = histogram.new()
        self.max_latency_ns = 0
        self.duplicates = 0
        self.misrouted = 0
        self.acks = 0
        self.received = 0
        self.last_delivery_ns = 0
        self.logins_pending = 0
        self.stopping = False
        self.needle = spec.needle

    # -- The loop ------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Run the three phases; every wait is bounded."""
        self.selector.register(self.control, selectors.EVENT_READ, None)
        try:
            if self.wait_command("login") is None:
                return
            self.control.send(("ready", self.login()))
            go = self.wait_command("go")
            if go is None:
                return
            self.control.send(("done", self.messages(int(go[1]))))
            self.wait_command("stop")
        finally:
            self.stopping = True
            for client in self.clients:
                self.close(client, None)
            self.selector.close()

    def wait_command(self, name: str) -> tuple[Any, ...] | None:
        """Serve the sockets until the coordinator sends `name`; None if it sent "stop" or went away."""
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            command = self.poll(TICK)
            if command is not None:
                if command[0] == name:
                    return command
                return None
        return None

    def poll(self, timeout: float) -> tuple[Any, ...] | None:
        """Handle the ready sockets once; return a command from the coordinator if one arrived."""
        command = None
        for key, mask in self.selector.select(timeout):
            client = key.data
            if client is None:
                try:
                    command = self.control.recv()
                except EOFError:
                    command = ("stop",)
                continue
            if mask & selectors.EVENT_WRITE:
                self.on_writable(client)
            if mask & selectors.EVENT_READ and client.state != CLOSED:
                self.on_readable(client)
        return command

    # -- Phase 1: login ------------------------------------------------------------------------------------

    def login(self) -> dict[str, Any]:
        """Connect and log in every client, `concurrency` at a time; return the login report."""
        waiting = deque(self.clients)
        first_ns = time.monotonic_ns()
        deadline = time.monotonic() + self.spec.login_timeout
        while (waiting or self.logins_pending) and time.monotonic() < deadline:
            while waiting and self.logins_pending < self.spec.concurrency:
                self.connect(waiting.popleft())
            if self.poll(TICK) is not None:
                break
        for client in self.clients:
            if client.state in (CONNECTING, LOGGING_IN):
                self.count("login_timeout")
                self.close(client, None)
        return {
            "first_connect_ns": first_ns,
            "ready_ns": time.monotonic_ns(),
            "login_ms": [client.login_ms for client in self.clients if client.login_ms >= 0],
            "errors": dict(self.errors),
        }

    def connect(self, client: Client) -> None:
        """Start a non-blocking connect; `hello` goes out as soon as the socket is writable."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        client.sock = sock
        client.started_ns = time.monotonic_ns()
        self.logins_pending += 1
        code = sock.connect_ex((self.spec.host, self.spec.port_of(client.index)))
        if code not in (0, errno.EINPROGRESS):
            self.count("connect")
            self.close(client, None)
            return
        hello = Hello(proto="mpchat", version=1, nick=self.spec.nick_of(client.index), rooms=(client.room,))
        client.out += encode(hello)
        client.state = LOGGING_IN
        client.writing = True
        self.selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    # -- Phase 2: messages ---------------------------------------------------------------------------------

    def messages(self, t0_ns: int) -> dict[str, Any]:
        """Send this worker's share of the schedule from `t0_ns`, read until all arrived; return results."""
        spec = self.spec
        senders = {c.index: c for c in self.clients if c.index < spec.senders and c.state == READY}
        mine = sorted(c.index for c in self.clients if c.index < spec.senders)
        frames = {index: self.template(senders[index]) for index in senders}
        period_ns = 1e9 / spec.rate
        total, count = spec.total_messages, spec.senders
        expected = sum(c.expected for c in self.clients)
        schedule_end_ns = t0_ns + int(spec.duration * 1e9)
        end_ns = schedule_end_ns + int(spec.drain_timeout * 1e9)
        idle_ns = int(spec.idle_timeout * 1e9)
        cycle, slot = 0, 0
        next_k = mine[0] if mine else total
        sent, lag_max_ns, lag_sum_ns = 0, 0, 0
        cpu_start = time.process_time()
        while True:
            now = time.monotonic_ns()
            if next_k < total and t0_ns + next_k * period_ns <= now:
                dirty: set[Client] = set()
                while next_k < total and (due := t0_ns + next_k * period_ns) <= now:
                    client = senders.get(next_k % count)
                    if client is not None and client.state == READY:
                        head, tail = frames[client.index]
                        client.out += head + b"%019d.%010d" % (now, next_k) + tail
                        dirty.add(client)
                        sent += 1
                        lag = now - int(due)
                        lag_sum_ns += lag
                        lag_max_ns = max(lag_max_ns, lag)
                    slot += 1
                    if slot == len(mine):
                        cycle, slot = cycle + 1, 0
                    next_k = cycle * count + mine[slot]
                for client in dirty:
                    self.flush(client)
            if next_k >= total:
                # Done when everything expected arrived and every send was acked, or the drain deadline
                # passed, or nothing arrived for `idle_timeout` after the schedule ended (the rest is lost).
                quiet_since = max(self.last_delivery_ns, schedule_end_ns)
                complete = self.received >= expected and self.acks >= sent
                if complete or now > end_ns or now - quiet_since > idle_ns:
                    break
            wait = (t0_ns + next_k * period_ns - now) / 1e9 if next_k < total else TICK
            command = self.poll(min(TICK, max(0.0, wait)))
            if command is not None:
                break
        return {
            "sent": sent,
            "acks": self.acks,
            "delivered": self.received,
            "expected": expected,
            "duplicates": self.duplicates,
            "misrouted": self.misrouted,
            "histogram": self.hist,
            "max_latency_ns": self.max_latency_ns,
            "last_delivery_ns": self.last_delivery_ns,
            "send_lag_max_ns": lag_max_ns,
            "send_lag_mean_ns": lag_sum_ns / sent if sent else 0.0,
            "cpu_s": time.process_time() - cpu_start,
            "errors": dict(self.errors),
            "short_clients": sum(1 for c in self.clients if c.received < c.expected),
        }

    def template(self, client: Client) -> tuple[bytes, bytes]:
        """Sender `client`'s `say` frame, split around the marker digits (fixed width: lengths stay valid)."""
        placeholder = MARKER + b"0" * (MARKER_LEN - len(MARKER))
        filler = b"abcdefghijklmnopqrstuvwxyz" * (self.spec.text_bytes // 26 + 1)
        text = placeholder + b" " + filler[: self.spec.text_bytes - MARKER_LEN - 1]
        frame = encode(Say(room=client.room, text=text.decode()))
        cut = frame.index(placeholder) + len(MARKER)
        return frame[:cut], frame[cut + MARKER_LEN - len(MARKER) :]

    # -- Socket events -------------------------------------------------------------------------------------

    def on_writable(self, client: Client) -> None:
        """Finish a connect, or write what is pending."""
        sock = client.sock
        assert sock is not None
        if client.state == LOGGING_IN and client.started_ns and not client.welcomed:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.count("connect")
                self.close(client, None)
                return
        self.flush(client)

    def flush(self, client: Client) -> None:
        """Write what the socket takes of `client`'s pending output; watch for writability if not all."""
        sock = client.sock
        if sock is None or client.state == CLOSED or (client.stalled and client.state == READY):
            return
        if client.out:
            try:
                written = sock.send(client.out)
            except BlockingIOError:
                written = 0
            except OSError:
                self.close(client, "closed_in_login" if client.state == LOGGING_IN else "closed_in_run")
                return
            del client.out[:written]
        want = bool(client.out)
        if want != client.writing:
            client.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.selector.modify(sock, events, client)

    def on_readable(self, client: Client) -> None:
        """Read what arrived and handle every complete frame in it."""
        sock = client.sock
        assert sock is not None
        try:
            data = sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close(client, "closed_in_login" if client.state == LOGGING_IN else "closed_in_run")
            return
        now = time.monotonic_ns()
        if client.buf:
            client.buf += data
            buf: bytes | bytearray = client.buf
        else:
            buf = data
        pos = self.frames(client, buf, now)
        if buf is client.buf:
            del client.buf[:pos]
        elif pos < len(buf):
            client.buf += buf[pos:]

    def frames(self, client: Client, buf: bytes | bytearray, now: int) -> int:
        """Handle each complete frame in `buf`; return the offset where the incomplete tail starts."""
        pos, end = 0, len(buf)
        find, hist, bucket_of = buf.find, self.hist, histogram.bucket_of
        needle = self.needle
        digits = len(needle)
        last_seen, count, rooms = client.last_seen, self.spec.senders, self.spec.rooms
        while end - pos >= 4:
            stop = pos + 4 + int.from_bytes(buf[pos : pos + 4], "big")
            if stop > end:
                break
            at = find(needle, pos + 4, stop)
            if at >= 0 and client.state == READY:
                at += digits
                latency = now - int(buf[at : at + 19])
                number = int(buf[at + 20 : at + 30])
                sender = number % count
                hist[bucket_of(latency // 1000)] += 1
                if latency > self.max_latency_ns:
                    self.max_latency_ns = latency
                if sender == client.index or sender % rooms != client.room_index:
                    self.misrouted += 1
                elif number > last_seen[sender]:
                    last_seen[sender] = number
                    client.received += 1
                    self.received += 1
                else:
                    self.duplicates += 1
                self.last_delivery_ns = now
            else:
                self.control_frame(client, bytes(buf[pos + 4 : stop]))
            pos = stop
        return pos

    def control_frame(self, client: Client, body: bytes) -> None:
        """A frame without a marker: login progress, an ack, a ping to answer, or an error to count."""
        try:
            frame = msgpack.unpackb(body, raw=False)
            kind = frame.get("type")
        except (ValueError, AttributeError, msgpack.UnpackException):
            self.count("protocol")
            return
        if kind == "ack":
            self.acks += 1
        elif kind == "ping":
            client.out += encode(Pong(token=frame.get("token")))
            self.flush(client)
        elif kind == "welcome":
            client.welcomed = True
        elif kind == "history" and client.state == LOGGING_IN and frame.get("room") == client.room:
            client.state = READY
            client.login_ms = (time.monotonic_ns() - client.started_ns) / 1e6
            self.logins_pending -= 1
            if client.stalled and client.sock is not None:
                self.selector.unregister(client.sock)  # from now on it never reads: the server's queue grows
        elif kind == "error":
            self.count(f"error:{frame.get('code')}")
            if frame.get("fatal"):
                self.close(client, None)

    def count(self, what: str) -> None:
        """Count one error of kind `what`."""
        self.errors[what] = self.errors.get(what, 0) + 1

    def close(self, client: Client, error: str | None) -> None:
        """Close `client`'s connection (counting `error` if given); safe to call twice."""
        if client.state == CLOSED:
            return
        if client.state in (CONNECTING, LOGGING_IN):
            self.logins_pending -= 1
        if error is not None and not self.stopping:
            self.count(error)
        client.state = CLOSED
        if client.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(client.sock)
            client.sock.close()


def worker_main(spec: LoadSpec, worker: int, control: Connection) -> None:
    """Process entry point: run one worker until the coordinator says stop (or goes away)."""
    Worker(spec, worker, control).run()
