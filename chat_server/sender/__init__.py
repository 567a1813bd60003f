"""Code run by the one ``sender`` thread: the only writer to client sockets after their TLS handshake.

`thread` is the loop (its ready queue and selector); `outbox` is each connection's queue of encoded frames,
filled by any thread under ``Outbox._lock`` and emptied here.
"""
