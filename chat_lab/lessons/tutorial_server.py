"""The tutorial chat server: a thread per client, one global client list, a `sendall` loop under one lock.

This is the design most socket tutorials arrive at, written carefully and speaking our protocol, so that the
same load generator drives it and our server. It is correct: frames are reassembled from the byte stream and
validated by `shared`, every write to a socket happens under the one lock (so two threads never interleave
their frames on one connection), a failing peer is dropped without stopping the others, and it shuts down.
What it does not do is store history (that favours it in every comparison).

How it handles one message: the sender's thread decodes the `say`, encodes the `said` frame once, takes the
global lock, and calls `sendall` for every other member of the room, then for the sender's `ack`.

Why it saturates, and what the numbers in docs/performance.md show:

1. One `sendall` (one system call, most of it kernel loopback work, 3 to 5 µs) per recipient per message.
   Messages are never batched: a room of 100 at 1,000 msg/s is 99,000 system calls a second, whatever the
   recipients' sockets could take at once. The server's CPU per delivery stays near the cost of one `send`.
2. All fan-out is serialised by the one lock, so only one sender's loop runs at a time, and the thread doing
   it holds the GIL for each iteration: more cores do not help.
3. `sendall` blocks: one client that stops reading fills its socket buffer, and then the sender's thread
   waits inside the loop, holding the lock, so every room stalls behind one slow reader. (Our server hands
   frames to a bounded per-client queue instead and never writes while holding a lock.)
4. Past saturation nothing pushes back on the senders: their frames wait in socket buffers and latency
   grows to seconds.

Threads: the accept thread, and one thread per connection that reads, handles and (under `lock`) writes.
`lock` guards `clients` and every socket write. Stop order: close the listener, shut every client socket
down (their threads then end and close them), join the threads.

Run it: python -m chat_lab.lessons.tutorial_server --port 7879
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import signal
import socket
import sys
import threading
import time
from types import FrameType, TracebackType

from shared import (
    PROTOCOL_VERSION,
    Ack,
    EndOfStream,
    Error,
    ErrorCode,
    Hello,
    History,
    Join,
    Joined,
    Member,
    Message,
    Ping,
    Pong,
    ProtocolConnection,
    Quit,
    RemoteProtocolError,
    Role,
    RoomState,
    Said,
    Say,
    Welcome,
    encode,
)

log = logging.getLogger(__name__)

DEFAULT_ROOM = "lobby"
#: Seconds the accept loop waits before checking whether it should stop.
ACCEPT_TICK = 0.5
#: Seconds `stop()` waits for each thread.
JOIN_TIMEOUT = 2.0
#: Members listed in `room_state` at most (the protocol's list limit).
MAX_MEMBERS_LISTED = 1000


class Client:
    """One connected client: its socket, nick and rooms."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.nick = ""
        self.rooms: set[str] = set()


class TutorialServer:
    """Thread per client; `broadcast` writes to every member with `sendall` while holding `lock`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.clients: list[Client] = []
        self._ids = itertools.count(1)
        self._listener = socket.create_server((host, port), backlog=1024)
        self._listener.settimeout(ACCEPT_TICK)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    def __enter__(self) -> TutorialServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the accept thread."""
        thread = threading.Thread(target=self._accept_loop, name="accept", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop accepting, disconnect everyone, join the threads."""
        self._stopping.set()
        self._listener.close()
        # Not under `lock`: a thread stuck in `sendall` to a client that stopped reading holds it. Copying the
        # list is one atomic step under the GIL; shutting the sockets down wakes any blocked send or recv.
        for client in list(self.clients):
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(Client(sock),), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: Client) -> None:
        """Read, decode and handle one client's requests until it leaves."""
        protocol = ProtocolConnection(Role.SERVER)
        try:
            while True:
                protocol.receive_data(client.sock.recv(65536))
                for event in protocol.events():
                    if isinstance(event, EndOfStream):
                        return
                    if isinstance(event, RemoteProtocolError):
                        error = Error(code=event.code, message=event.message, fatal=event.fatal)
                        self._send(client, encode(error))
                        if event.fatal:
                            return
                    elif not self._handle(client, event):
                        return
        except OSError:
            return
        finally:
            with self.lock:
                if client in self.clients:
                    self.clients.remove(client)
            client.sock.close()

    def _handle(self, client: Client, request: Message) -> bool:
        """Answer one request; False when the connection should end."""
        if isinstance(request, Say):
            if request.room not in client.rooms:
                self._send(
                    client, encode(Error(code=ErrorCode.NOT_IN_ROOM, message=request.room, ref=request.ref))
                )
                return True
            ts = int(time.time() * 1000)
            number = next(self._ids)
            said = encode(Said(id=number, room=request.room, nick=client.nick, text=request.text, ts=ts))
            self.broadcast(request.room, said, skip=client)
            self._send(client, encode(Ack(id=number, ts=ts, ref=request.ref)))
        elif isinstance(request, Hello):
            client.nick = request.nick
            welcome = Welcome(version=PROTOCOL_VERSION, nick=request.nick, server="tutorial", ts=_now_ms())
            self._send(client, encode(welcome))
            with self.lock:
                self.clients.append(client)
            for room in request.rooms or (DEFAULT_ROOM,):
                self._join(client, room)
        elif isinstance(request, Join):
            self._join(client, request.room)
        elif isinstance(request, Ping):
            self._send(client, encode(Pong(token=request.token)))
        elif isinstance(request, Quit):
            return False
        else:
            self._send(
                client, encode(Error(code=ErrorCode.UNKNOWN_TYPE, message=f"not supported: {request.TYPE}"))
            )
        return True

    def _join(self, client: Client, room: str) -> None:
        client.rooms.add(room)
        self.broadcast(room, encode(Joined(room=room, nick=client.nick, ts=_now_ms())), skip=None)
        with self.lock:
            members = [Member(nick=c.nick) for c in self.clients if room in c.rooms][:MAX_MEMBERS_LISTED]
        self._send(client, encode(RoomState(room=room, members=tuple(members))))
        self._send(client, encode(History(room=room)))

    def broadcast(self, room: str, data: bytes, skip: Client | None) -> None:
        """Send `data` to every member of `room` but `skip`: the tutorial loop, under the global lock."""
        with self.lock:
            for other in self.clients:
                if other is not skip and room in other.rooms:
                    try:  # noqa: SIM105 -- cheaper than contextlib.suppress in the fan-out loop
                        other.sock.sendall(data)
                    except OSError:
                        pass  # that client's own thread sees the broken socket and removes it

    def _send(self, client: Client, data: bytes) -> None:
        with self.lock:
            client.sock.sendall(data)


def _now_ms() -> int:
    return int(time.time() * 1000)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description="The tutorial chat server (benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7879)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with TutorialServer(args.host, args.port) as server:
        host, port = server.address
        print(f"tutorial server listening on {host}:{port}", flush=True)
        while not stop.wait(ACCEPT_TICK):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
