"""A real client process for the SIGSTOP test: `python -m tests.security.frozen_client HOST PORT NICK ROOM`.

It logs in to ROOM, prints ``ready`` on stdout, then reads whatever the server sends until the server closes
the connection (or `READ_LIMIT` seconds pass), and prints the codes of the error frames it received as one
JSON line. The test freezes it with SIGSTOP between the two, so it cannot read or answer pings; on SIGCONT it
reports what the server told it while it was frozen.
"""

from __future__ import annotations

import json
import socket
import sys

from shared import Error
from tests.server.client import ChatTestClient

#: Longest the client reads before giving up (the test kills it long before).
READ_LIMIT = 60.0
#: A small receive buffer, so a frozen client's kernel holds little and the server's queue fills soon.
RECEIVE_BUFFER = 4096


def main(argv: list[str]) -> int:
    """Log in, say ready, read until closed, report the error codes."""
    host, port, nick, room = argv
    client = ChatTestClient((host, int(port)))
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    client.login(nick, rooms=[room])
    print("ready", flush=True)
    try:
        received = client.wait_closed(READ_LIMIT)
    except AssertionError:
        received = []
    codes = [[m.code, m.fatal] for m in received if isinstance(m, Error)]
    print(json.dumps(codes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
