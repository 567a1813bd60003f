"""A black-box conformance suite for the mpchat protocol, written from docs/protocol.md alone.

It speaks raw frames over TCP and never imports `shared`, `chat_server` or `chat_client` (a test checks it),
so it tests the document rather than our code's agreement with itself. The cases are transcripts in a
language-neutral format (JSON lines, `conformance/transcripts/`), described in docs/conformance.md, so
that authors of clients and servers in other languages can replay them.

* `wire`: framing (section 2) and decoding (section 3).
* `transcript`: the case format, patterns and variables.
* `peer`: one connection: send whole, byte by byte or coalesced; wait for matching frames.
* `runner`: plays the client side of each case against a server (`python -m conformance --host H --port P`).
* `serve`: plays the server side for a client under test (`python -m conformance --serve`).
"""
