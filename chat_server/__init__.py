"""The mpchat server: a threaded TCP chat server with rooms, direct messages and durable history.

The layout shows the threads (chat_server/server.py's docstring is the thread model; docs/architecture.md
draws it): the code in ``reader/`` runs on each connection's reader thread, ``history/`` on the one history
thread, ``sender/`` on the one sender thread, ``acceptor/`` on the acceptors and the refusal closer,
``beacon/`` on the LAN beacon's thread. The modules at the top level are used by several threads; each one's
docstring says which, and under which lock.
"""

from chat_server.server import ChatServer, Stats

__all__ = ["ChatServer", "Stats"]
