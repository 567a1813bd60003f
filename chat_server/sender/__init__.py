"""Code run by the one ``sender`` thread: the only writer to client sockets after their TLS handshake.

`thread` holds the loop (its ready queue and selector) and each connection's `SendQueue`, filled by any thread
under ``SendQueue._lock`` and emptied here.
"""
