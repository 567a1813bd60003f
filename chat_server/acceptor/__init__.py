"""Code run by the ``acceptor`` threads (one per listening socket) and the ``refusal-closer`` thread.

The acceptor admits or refuses each new connection and starts its reader; `closer` lingers on the refused
ones so their error frame is read before the close.
"""
