"""`SearchIndexer`: the ``search-indexer`` thread, which keeps the search index (chat_server.searchdb) in step
with the history, off the message path.

It owns the index's writer connection, on which the history is attached to be read (never written). In a
loop it copies the messages the history has committed since the newest one indexed into the index
(`INDEX_BATCH` at a time, one transaction each), then waits `INDEX_INTERVAL` seconds, or less when a reader
asks (`catch_up`). It never touches the history's write lock (the index is another file) and never takes
``Hub.lock``.

A reader about to search calls `catch_up(newest, timeout)` with the newest message id its own history
connection sees: the indexer is woken, and the reader waits (bounded, holding no lock but the condition's
while it checks) until everything up to that id is indexed; so a message acknowledged before a search is found
by it. After an upgrade (a history made before search: no index file yet) the indexer builds the whole index
in the background, a batch at a time; a search meanwhile waits at most `timeout`, then searches what is
indexed so far.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from chat_server.searchdb import IndexWriter
from chat_server.storage import HistoryError

log = logging.getLogger(__name__)

#: Messages indexed in one transaction of the index (about 0.1 s of FTS5 work on this machine).
INDEX_BATCH = 2000
#: Seconds between two looks at the history when nobody asks (a search asks at once: `catch_up`).
INDEX_INTERVAL = 1.0
#: Seconds the indexer waits before trying again after the index or the history failed.
RETRY_INTERVAL = 5.0


class SearchIndexer:
    """The ``search-indexer`` thread and what readers share with it (under ``SearchIndexer._changed``)."""

    def __init__(self, index: Path, history: Path) -> None:
        self.path = index
        self._history = history
        #: Guards `_indexed` and `_wanted`; readers wait on it for the index to catch up.
        self._changed = threading.Condition(threading.Lock())
        self._indexed = -1  # the newest id indexed; -1 until the indexer has opened the index
        self._wanted = 0  # the newest id a reader waits for
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)

    def start(self) -> None:
        """Start the thread (it catches up with the history at once)."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the current batch (waits at most `timeout`; an unfinished index goes on at the next
        start)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout)

    @property
    def indexed(self) -> int:
        """The newest message id indexed (-1 before the index is open)."""
        with self._changed:
            return self._indexed

    def catch_up(self, newest: int, timeout: float) -> bool:
        """Wait (at most `timeout` seconds) until every message up to id `newest` is indexed; True if so."""
        deadline = time.monotonic() + timeout
        with self._changed:
            if self._indexed >= newest:
                return True
            self._wanted = max(self._wanted, newest)
            self._changed.notify_all()  # wake the indexer
            while self._indexed < newest:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._changed.wait(left)
            return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._index_until_stopped()
            except (OSError, sqlite3.Error, HistoryError) as error:
                log.warning("event=search_index_failed error=%s", error)
            except Exception:
                log.exception("event=search_index_crashed")
            if self._stop.wait(RETRY_INTERVAL):
                return

    def _index_until_stopped(self) -> None:
        writer = IndexWriter(self.path, self._history)
        try:
            if writer.last_id > writer.newest():
                # Another history than the one indexed (restored from a backup, replaced): start afresh.
                log.warning("event=search_index_reset indexed=%d", writer.last_id)
                writer.reset()
            self._publish(writer.last_id)
            started, first = time.monotonic(), writer.last_id
            while not self._stop.is_set():
                added = writer.add(INDEX_BATCH)
                self._publish(writer.last_id)
                if added == INDEX_BATCH:
                    continue  # more to index: no waiting
                if writer.last_id - first > INDEX_BATCH:
                    log.info(
                        "event=search_index_built upto=%d seconds=%.1f",
                        writer.last_id,
                        time.monotonic() - started,
                    )
                first = writer.last_id
                started = time.monotonic()
                with self._changed:
                    if self._wanted <= self._indexed and not self._stop.is_set():
                        self._changed.wait(INDEX_INTERVAL)
        finally:
            writer.close()

    def _publish(self, indexed: int) -> None:
        with self._changed:
            self._indexed = indexed
            self._changed.notify_all()
