"""Run inside a network namespace by test_ipv6_prefix.py: per-address limits against clients from several
IPv6 addresses, some in one /64.

``python -m tests.server.prefix_probe DATA_DIR SERVER_ADDRESS SOURCE...`` starts two real servers on ``::``:
one with ``max_clients_per_ip = 1`` and one with ``max_connections_per_minute = 1``. For each server, a
client from each SOURCE in turn connects to SERVER_ADDRESS and sends its `hello` (earlier clients stay
connected). It prints one JSON object: for each server, the list of answers (``welcome`` or the error code).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from chat_server.config import ServerConfig
from chat_server.server import ChatServer
from shared import Error, Welcome

from .client import ChatTestClient
from .conftest import TEST_SETTINGS


def answers(config: ServerConfig, target: str, sources: list[str]) -> list[str]:
    """Connect from each source in turn (keeping the earlier clients) and note each first answer."""
    results: list[str] = []
    clients: list[ChatTestClient] = []
    with ChatServer(config) as server:
        try:
            for number, source in enumerate(sources):
                client = ChatTestClient((target, server.address[1]), source=source)
                clients.append(client)
                client.hello(f"user{number}")
                reply = client.recv_until(lambda m: isinstance(m, Welcome | Error))
                results.append(reply.code if isinstance(reply, Error) else "welcome")
        finally:
            for client in clients:
                client.close()
    return results


def main() -> int:
    """Run both servers and print the answers."""
    data_dir, target, sources = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    settings = {**TEST_SETTINGS, "host": "::"}
    per_ip = ServerConfig(**{**settings, "data_dir": data_dir / "a", "max_clients_per_ip": 1})
    per_minute = ServerConfig(**{**settings, "data_dir": data_dir / "b", "max_connections_per_minute": 1})
    result = {
        "max_clients_per_ip": answers(per_ip, target, sources),
        "max_connections_per_minute": answers(per_minute, target, sources),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
