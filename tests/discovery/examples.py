"""The reference datagrams shown (in hex) in docs/discovery.md."""

from __future__ import annotations

from shared.discovery import BeaconInfo, encode_beacon, encode_query, encode_reply

EXAMPLE_INFO = BeaconInfo(
    server_id="5f1c0e4b9a2d4c7e8b3f6a1d2e9c7b40",
    name="Lab 3",
    port=7878,
    users=5,
    rooms=(("lobby", 4), ("homework", 2)),
)
EXAMPLE_NONCE = 0x1F2E3D4C5B6A79
EXAMPLE_CLOCK_MS = 1_763_750_000_123

BEACON = encode_beacon(EXAMPLE_INFO)
QUERY = encode_query(EXAMPLE_NONCE)
REPLY = encode_reply(EXAMPLE_INFO, EXAMPLE_NONCE, EXAMPLE_CLOCK_MS)
EXAMPLES = {"beacon": BEACON, "query": QUERY, "reply": REPLY}
