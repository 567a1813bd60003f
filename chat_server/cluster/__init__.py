"""Cluster mode (``chat-server --cluster nats://H:P[,...]``): several servers, one chat, on NATS JetStream.

Off by default: without ``--cluster`` (or a ``[cluster]`` table with `urls`) nothing here is imported and the
server is the single process with its SQLite history. docs/cluster.md argues the design and says plainly what
works in cluster mode and what does not yet.

* `config`: the ``[cluster]`` settings and their named defaults.
* `link`: the ``nats`` thread (its asyncio loop, the `nats-py` connection, the publish pipeline, the log
  consumer).
* `messaging`: the history thread's `Messages` whose durable store is the log stream; each server keeps its
  local SQLite copy in step from the stream, so everything that reads history is the single server's code.
* `attention`: a registered nick's read markers, notification levels and keywords, as records of the log.
* `conversation`: edits, deletions, reactions and topics as records of the log, checked by the origin and
  re-checked and applied by every server with the single server's rules and code.
* `files`: file sharing across the servers: the object store of files, the ``file`` records of the log, the
  fetch of a file uploaded elsewhere.
* `node`: wires these into a starting `ChatServer` (chat_server.server).
"""
