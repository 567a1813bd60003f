"""The history thread: applies every chat request in one order, and group-commits the history.

Reader threads `submit()` requests; this one thread takes *everything* queued and applies each with the
handler its row of the routing table names (chat_server.routes; room messages go into one open transaction),
then `Chat.flush()` commits once and releases the acks and fan-outs of the whole batch in id order, and wakes
the sender thread once for all of them. Under load a
batch holds hundreds of messages, so one `fsync` covers hundreds of messages; at low load a batch is one
message and nothing waits for a timer.

The queue is bounded (`history_queue`): when it is full, `submit` waits (bounded), which holds back the
reader that submitted, and so, through TCP, the client that is flooding.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from chat_server.hub import Client
from chat_server.replies import error_frame
from chat_server.sender.thread import SenderThread
from shared.errors import ErrorCode

from .chat import Chat, Request

log = logging.getLogger(__name__)


#: Each request type's handler, bound to its part, and whether it needs a logged-in client
#: (`chat_server.routes.bind_history`).
Handlers = dict[type, tuple[Callable[[Client, Any], None], bool]]


class HistoryThread:
    """The history thread and its request queue."""

    def __init__(
        self,
        chat: Chat,
        handlers: Handlers,
        sender: SenderThread,
        *,
        max_queue: int,
        max_batch: int,
        max_wait: float,
    ) -> None:
        self.chat = chat
        self.handlers = handlers
        self.sender = sender
        self.max_queue = max_queue
        self.max_wait = max_wait  # how long a reader waits for room in a full queue
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[tuple[Client, Request]] = deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)

    def start(self) -> None:
        """Start the history thread."""
        self._thread.start()

    def submit(self, client: Client, request: Request) -> bool:
        """Queue a request; False if the queue stayed full for `max_wait` s or the server is stopping."""
        with self._lock:
            if len(self._queue) >= self.max_queue:
                self._changed.wait_for(
                    lambda: len(self._queue) < self.max_queue or self._stopping, self.max_wait
                )
            if self._stopping or len(self._queue) >= self.max_queue:
                return False
            self._queue.append((client, request))
            if len(self._queue) == 1:
                self._changed.notify_all()
            return True

    def stop(self, timeout: float) -> None:
        """Apply what is queued, commit, and end the thread (waits at most `timeout`)."""
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("event=history_thread_stuck (still running after %.1f s)", timeout)

    def _take(self) -> list[tuple[Client, Request]]:
        with self._lock:
            while not self._queue and not self._stopping:
                self._changed.wait(1.0)
            count = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(count)]
            if count:
                self._changed.notify_all()  # wake readers waiting for room
            return batch

    def _run(self) -> None:
        # Frames this thread queues do not wake the sender one by one: it is woken once per batch, below.
        self.sender.batch_on_this_thread()
        try:
            while True:
                batch = self._take()
                if not batch:
                    return  # stopping, and everything queued was applied
                self.chat.tally.batch_size.observe(len(batch))
                for client, request in batch:
                    try:
                        self._apply(client, request)
                    except Exception:
                        # A bug in one request's handling must not stop the chat for everyone.
                        log.exception("conn=%d event=request_failed request=%r", client.id, request)
                try:
                    self.chat.messages.flush()  # the group commit, then every held-back ack and message
                except Exception:
                    log.exception("event=flush_failed")
                self.sender.wake()
        finally:
            self.chat.store.close()

    def _apply(self, client: Client, request: Request) -> None:
        """Apply one request from `client` with its handler (one lookup in the routing table's binding)."""
        found = self.handlers.get(type(request))
        if found is None:
            message = f"{type(request).__name__} is not handled here"
            client.send(error_frame(ErrorCode.UNKNOWN_TYPE, message))
            return
        handler, needs_login = found
        if needs_login and client.key is None:
            return  # the login was refused (or the session resumed elsewhere): the connection is closing
        handler(client, request)
