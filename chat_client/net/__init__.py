"""The network library: `ChatClient` and everything under it (asyncio only, never Textual).

The connection (one TCP/TLS session, and the run task that logs in and reconnects), delivery and the outbox,
pacing, liveness, resume, the waiters for replies, the events it yields, its errors and options, server
trust and pins, LAN discovery, and file transfers. Its public names are exported by `chat_client`.
"""
