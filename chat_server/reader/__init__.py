"""Code run by the connections' reader threads (``conn-N-reader``, one per connection).

A reader owns its socket's receiving side and the connection's sans-I/O decoder (`connection`), its rate
limit buckets and its own SQLite read connection. It answers what needs no shared state itself (`ping`,
history pages in `pages`, file chunks in `uploads`, `/stats` in `adminstats`), checks passwords (`gate`,
`passwords`: scrypt never runs on the history thread) and hands every other request to the history thread
(`dispatch`).
"""
