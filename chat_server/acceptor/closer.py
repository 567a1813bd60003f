"""The ``refusal-closer`` thread: closes connections refused at accept without resetting their error frame.

The acceptor refuses a connection (`server_full`, `too_many_connections`) with one error frame before the
client has said anything. A client usually writes its `hello` at once, so by the time the acceptor closes,
the kernel may hold unread input from it; closing a socket with unread input makes the kernel send a reset
(RST) instead of an orderly end, and a reset that overtakes the frame on a slow or lossy path, or reaches a
client whose stack drops unread data on reset, destroys the frame: the client sees "connection reset" and
never learns why.

So the acceptor only writes the frame and half-closes (`shutdown(SHUT_WR)`: the client reads the frame and
then the end of the stream), and hands the socket to the `RefusalCloser`. Its thread reads and throws away
whatever the client sends until the client closes too (end of stream), or `refusal_linger` seconds pass, then
closes: with nothing left unread, no reset. It never writes. At most `max_lingering` sockets linger at once;
past that the oldest is closed at once (the file descriptors a refusal wave can hold are bounded). The thread
starts with the first refusal and stops with the server.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Bytes read (and thrown away) at a time from a lingering socket.
DISCARD_CHUNK = 4096


class RefusalCloser:
    """Holds refused sockets half-closed, discarding their input, until the peer closes or time runs out."""

    def __init__(self, linger: float, max_sockets: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._linger = linger
        self._max_sockets = max_sockets
        self._clock = clock
        # Guards _incoming, _thread, _wake_w, _stopped and _count; never held during socket I/O.
        self._lock = threading.Lock()
        self._incoming: deque[socket.socket] = deque()
        self._thread: threading.Thread | None = None
        self._wake_w: socket.socket | None = None  # the thread's wake-up socket pair, made with the thread
        self._stopped = False
        self._count = 0  # sockets handed over and not closed yet

    @property
    def lingering(self) -> int:
        """Refused sockets still held (handed over and not closed yet)."""
        with self._lock:
            return self._count

    def hand_over(self, sock: socket.socket) -> None:
        """Take a refused socket whose error frame is written and whose sending side is shut (acceptor)."""
        sock.setblocking(False)
        with self._lock:
            if self._stopped:
                sock.close()
                return
            self._incoming.append(sock)
            self._count += 1
            wake = self._wake_w
            if wake is None:
                wake_r, wake = socket.socketpair()
                self._wake_w = wake
                for end in (wake_r, wake):
                    end.setblocking(False)
                self._thread = threading.Thread(
                    target=self._run, args=(wake_r,), name="refusal-closer", daemon=True
                )
                self._thread.start()
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            wake.send(b"\0")

    def stop(self, timeout: float) -> None:
        """Close every lingering socket and end the thread (at most `timeout` seconds)."""
        with self._lock:
            self._stopped = True
            thread, wake = self._thread, self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):
                wake.send(b"\0")
        if thread is not None:
            thread.join(timeout)
        if wake is not None:
            wake.close()

    # -- The refusal-closer thread -------------------------------------------------------------------------

    def _run(self, wake: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(wake, selectors.EVENT_READ)
        #: Lingering sockets with their deadlines, oldest (and so earliest) first.
        held: OrderedDict[socket.socket, float] = OrderedDict()
        try:
            while True:
                with self._lock:
                    stopped = self._stopped
                    incoming, self._incoming = list(self._incoming), deque()
                deadline = self._clock() + self._linger
                for sock in incoming:
                    held[sock] = deadline
                    selector.register(sock, selectors.EVENT_READ)
                if stopped:
                    break
                while len(held) > self._max_sockets:
                    self._close(selector, held, next(iter(held)))
                now = self._clock()
                while held and next(iter(held.values())) <= now:
                    self._close(selector, held, next(iter(held)))
                timeout = next(iter(held.values())) - now if held else None
                for key, _events in selector.select(timeout):
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    if ready is wake:
                        with contextlib.suppress(OSError):
                            wake.recv(DISCARD_CHUNK)
                    elif not self._discard(ready):
                        self._close(selector, held, ready)
        except Exception:
            log.exception("event=refusal_closer_crashed")
        finally:
            for sock in list(held):
                self._close(selector, held, sock)
            selector.close()
            wake.close()

    @staticmethod
    def _discard(sock: socket.socket) -> bool:
        """Read and throw away what the peer sent; False once it closed (or the socket failed)."""
        try:
            return bool(sock.recv(DISCARD_CHUNK))
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _close(
        self, selector: selectors.BaseSelector, held: OrderedDict[socket.socket, float], sock: socket.socket
    ) -> None:
        selector.unregister(sock)
        del held[sock]
        sock.close()
        with self._lock:
            self._count -= 1
