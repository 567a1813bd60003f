"""A TCP fault proxy for one connection at a time: `hold()` freezes the link from the client to the server
(the bytes wait, as on a link that is down while TCP retransmits); `release()` delivers everything held
at once.

Two pump threads per connection; the proxy listens on 127.0.0.1 port 0. Used by the fakelag tests to turn a
steady sender into a backlog that reaches the server in one piece.
"""

from __future__ import annotations

import contextlib
import socket
import threading

#: Bytes read at a time.
CHUNK = 65536


class FaultProxy:
    """Forwards TCP connections to `target`; the client-to-server direction can be held and released."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._lock = threading.Lock()  # guards _open and _held
        self._open = True
        self._held = bytearray()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._start(self._accept, "proxy-accept")

    def _start(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            self._start(self._upstream, "proxy-up", client, server)
            self._start(self._pump, "proxy-down", server, client)

    def _upstream(self, source: socket.socket, sink: socket.socket) -> None:
        """Client to server: while held, what arrives is kept; on release it goes out in one write."""
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                with self._lock:  # sent under the lock, so release() cannot overtake it
                    if self._open:
                        sink.sendall(data)
                    else:
                        self._held += data
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def hold(self) -> None:
        """Stop delivering the client's bytes to the server (they are kept)."""
        with self._lock:
            self._open = False

    def held(self) -> int:
        """Bytes held so far."""
        with self._lock:
            return len(self._held)

    def release(self) -> None:
        """Deliver everything held in one write and let the link flow again."""
        with self._lock:
            data, self._held = bytes(self._held), bytearray()
            self._open = True
            server = self._sockets[1]
            server.sendall(data)  # under the lock: nothing newer can overtake it

    def close(self) -> None:
        """Close the listener and every connection; join the threads."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (Linux)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)
