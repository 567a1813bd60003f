"""Lesson 1: the first TCP program (an echo server and client), the handshake and the close seen through
`ss -tan`, and restarting a server with and without SO_REUSEADDR.

Every step prints what it did and, where the kernel keeps state, the lines `ss -tan` would show for the
lesson's port (read from /proc/net/tcp, so nothing needs installing): the state of each end of the
connection (ESTAB, FIN-WAIT-2, CLOSE-WAIT, TIME-WAIT stay long enough to
see; SYN-SENT passes in microseconds on loopback, so the last step shows it with a SYN that gets no answer:
a listener whose accept queue is full drops it).
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

#: The kernel's table of IPv4 TCP sockets, and the names `ss` gives its state codes.
PROC_NET_TCP = Path("/proc/net/tcp")
SS_STATES = {
    0x01: "ESTAB",
    0x02: "SYN-SENT",
    0x03: "SYN-RECV",
    0x04: "FIN-WAIT-1",
    0x05: "FIN-WAIT-2",
    0x06: "TIME-WAIT",
    0x07: "UNCONN",
    0x08: "CLOSE-WAIT",
    0x09: "LAST-ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
}
#: Seconds any step of the lesson may wait for its socket.
STEP_TIMEOUT = 5.0
#: Seconds a connection attempt stays in SYN-SENT before the lesson takes its SYN for dropped (on loopback
#: a handshake takes microseconds; a dropped SYN is sent again only after 1 s).
SYN_UNANSWERED = 0.3
#: Connection attempts at most, to fill the accept queue of a listener with backlog 0 (Linux queues one).
QUEUE_FILLERS = 4


@dataclass
class EchoFindings:
    """What lesson 1 saw: the echoed bytes, the TCP states at each step, and the two restarts."""

    echoed: bytes = b""
    states: dict[str, list[str]] = field(default_factory=dict)
    restart_without_reuseaddr: str = ""
    restart_with_reuseaddr: str = ""


def _address(field: str) -> tuple[str, int]:
    """An address of /proc/net/tcp (`0100007F:1F90`: the IPv4 address in the host's byte order, the port
    in hex) as a pair."""
    host, port = field.split(":")
    return socket.inet_ntoa(struct.pack("=I", int(host, 16))), int(port, 16)


def tcp_states(port: int) -> list[str]:
    """The TCP connections from or to `port`, as `ss -tan` shows them (`STATE local peer`), sorted. Read from
    the kernel's table, /proc/net/tcp (IPv4; Linux), so the lesson needs no tool installed."""
    lines = []
    for row in PROC_NET_TCP.read_text(encoding="ascii").splitlines()[1:]:
        words = row.split()
        (local_host, local_port), (peer_host, peer_port) = _address(words[1]), _address(words[2])
        if port in (local_port, peer_port):
            state = SS_STATES.get(int(words[3], 16), words[3])
            peer = f"{peer_host}:{peer_port or '*'}"
            lines.append(f"{state:<11} {f'{local_host}:{local_port}':<21} {peer}")
    return sorted(lines)


def listen(port: int = 0, *, reuse_address: bool) -> socket.socket:
    """A listening socket on 127.0.0.1:`port`, with SO_REUSEADDR if asked (socket.create_server always sets
    it; the lesson builds the socket by hand to show the difference)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse_address:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.listen()
    sock.settimeout(STEP_TIMEOUT)
    return sock


def echo_and_close(found: EchoFindings, out: TextIO, *, reuse_address: bool) -> int:
    """One connection: the handshake, one echo, the server closing first; return the port (now with a
    connection in TIME-WAIT). With `out`, each step's `ss -tan` lines are shown and kept in `found`."""

    def show(step: str, port: int, settled: str = "") -> None:
        if not verbose:
            return
        deadline = time.monotonic() + STEP_TIMEOUT
        while settled and not any(line.startswith(settled) for line in tcp_states(port)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)  # the kernel finishes the step on its own: poll until it has
        found.states[step] = tcp_states(port)
        print(f"\n-- {step}: ss -tan for port {port}", file=out)
        for line in found.states[step] or ["(no socket)"]:
            print(f"   {line}", file=out)

    verbose = not reuse_address
    # The echo server, step by step (a real one loops: accept, then recv and sendall until recv returns b"").
    listener = listen(reuse_address=reuse_address)
    port: int = listener.getsockname()[1]
    show("listening", port)
    client = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)  # SYN, SYN-ACK, ACK
    server_side, _ = listener.accept()
    server_side.settimeout(STEP_TIMEOUT)
    show("connected (the three-way handshake is done)", port, "ESTAB")

    client.sendall(b"hello, echo")
    server_side.sendall(server_side.recv(4096))
    found.echoed = client.recv(4096)
    if verbose:
        print(f"\nthe client sent b'hello, echo' and got back {found.echoed!r}", file=out)

    server_side.close()  # the server closes first: its FIN, the client's kernel ACKs it
    show("the server closed (FIN-WAIT-2 on its side, CLOSE-WAIT on the client's)", port, "FIN-WAIT-2")
    client.recv(4096)  # the client reads the end: recv returns b""
    client.close()  # its FIN: the server's side goes to TIME-WAIT, the client's is gone
    show("the client closed too (the server's end waits in TIME-WAIT)", port, "TIME-WAIT")
    listener.close()
    return port


def state_of(port: int, local_port: int) -> str:
    """The state `ss` shows for the client end 127.0.0.1:`local_port` of a connection to `port`."""
    for line in tcp_states(port):
        words = line.split()
        if len(words) == 3 and words[1] == f"127.0.0.1:{local_port}":
            return words[0]
    return ""


def unanswered_syn(found: EchoFindings, out: TextIO) -> None:
    """A connection attempt nobody answers: a listener with backlog 0 that never accepts queues one
    connection; the kernel drops the next SYN, and that client's end waits in SYN-SENT."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    attempts: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(QUEUE_FILLERS):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            attempts.append(client)
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))  # sends the SYN, returns at once (EINPROGRESS)
            local_port = client.getsockname()[1]
            deadline = time.monotonic() + SYN_UNANSWERED
            while state_of(port, local_port) in ("SYN-SENT", "") and time.monotonic() < deadline:
                time.sleep(0.01)  # the kernel answers a queued SYN at once: poll until it has, or has not
            if state_of(port, local_port) == "SYN-SENT":
                step = "a SYN nobody answers (the listener's accept queue is full)"
                found.states[step] = tcp_states(port)
                print(f"\n-- {step}: ss -tan for port {port}", file=out)
                for line in found.states[step]:
                    print(f"   {line}", file=out)
                return
    finally:
        for sock in (*attempts, listener):
            sock.close()


def restart(port: int, *, reuse_address: bool) -> str:
    """Bind a new listening socket to `port`: "bound", or the error's name."""
    try:
        listen(port, reuse_address=reuse_address).close()
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, str(error))
    return "bound"


def run(out: TextIO) -> EchoFindings:
    """Run the lesson, narrating to `out`; return what it saw."""
    found = EchoFindings()
    port = echo_and_close(found, out, reuse_address=False)
    found.restart_without_reuseaddr = restart(port, reuse_address=True)
    print("\nrestarting the server on the same port while the old connection is in TIME-WAIT:", file=out)
    print(f"   the old and the new socket without SO_REUSEADDR: {found.restart_without_reuseaddr}", file=out)
    port = echo_and_close(found, out, reuse_address=True)
    found.restart_with_reuseaddr = restart(port, reuse_address=True)
    print(f"   the same, both with SO_REUSEADDR:                {found.restart_with_reuseaddr}", file=out)
    unanswered_syn(found, out)
    print(
        "\nmpchat's server binds with socket.create_server, which sets SO_REUSEADDR "
        "(chat_server/acceptor/acceptor.py): it restarts at once.",
        file=out,
    )
    return found
