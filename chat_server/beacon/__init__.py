"""Code run by the ``mpchat-beacon`` thread: announcing the server on the LAN and answering discovery queries.

`config` holds its settings (read at start-up, on the thread that builds the server's config).
"""
