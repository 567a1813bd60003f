"""`FileSweeper`: the ``files-sweeper`` thread, which runs `FileStore.sweep` (chat_server.files) every
`files.sweep_interval` seconds. The sweep's bookkeeping is shared with the readers and the history thread
under ``FileStore._lock``; the sweeper holds it for no file I/O."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from chat_server.files import FileStore
from chat_server.storage import HistoryError

log = logging.getLogger(__name__)


class FileSweeper:
    """The ``files-sweeper`` thread: runs `FileStore.sweep` every `sweep_interval` seconds, with its own
    SQLite read connection, until stopped."""

    def __init__(self, store: FileStore, open_db: Callable[[], sqlite3.Connection]) -> None:
        self.store = store
        self._open_db = open_db
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="files-sweeper", daemon=True)

    def start(self) -> None:
        """Start the thread (its first sweep runs at once: leftovers of the last run go first)."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the current sweep (waits at most `timeout`)."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        interval = self.store.config.sweep_interval
        while True:
            try:
                db = self._open_db()
                try:
                    self.store.sweep(db)
                finally:
                    db.close()
            except (OSError, sqlite3.Error, HistoryError) as error:
                log.warning("event=files_sweep_failed error=%s", error)
            except Exception:
                log.exception("event=files_sweep_crashed")
            if self._stop.wait(interval):
                return
