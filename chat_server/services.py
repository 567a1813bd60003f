"""`Services`: what every connection shares (the config, the hub, the history thread, the sender...)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import ServerConfig
from .files import FileStore
from .history.thread import HistoryThread
from .hub import Hub
from .indexer.indexer import SearchIndexer
from .metrics import Observer, Tally
from .reader.gate import Gate
from .sender.thread import SenderThread
from .storage import HistoryStore

if TYPE_CHECKING:
    from .cluster.files import SharedFiles
    from .cluster.nicks import NickLeases


@dataclass(frozen=True, slots=True)
class Services:
    """What every connection shares: built once by `ChatServer`."""

    config: ServerConfig
    hub: Hub
    #: The history thread's queue: `history.submit(client, request)`.
    history: HistoryThread
    store: HistoryStore
    sender: SenderThread
    #: Password checks and hashing (reader threads), and the per-address limit on wrong passwords.
    gate: Gate
    clock: Callable[[], float] = time.monotonic
    #: The files folder; None when file sharing is off.
    files: FileStore | None = None
    #: The server's counters (chat_server.metrics), read by the metrics endpoint and the admin's /stats.
    tally: Tally = field(default_factory=Tally)
    #: The server as /stats sees it (`ChatServer.observe`, `ChatServer.connection_figures`).
    observer: Observer | None = None
    #: The search index's thread: readers wait on it to catch up before they search (chat_server.indexer).
    indexer: SearchIndexer | None = None
    #: In cluster mode, the nicks held across the cluster: a login claims its nick there first.
    nicks: NickLeases | None = None
    #: In cluster mode with file sharing on, the cluster's object store of files (uploads and downloads).
    shared_files: SharedFiles | None = None
