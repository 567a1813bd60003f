"""A real client process for the SIGSTOP backlog test:
``python -m tests.security.backlog_client HOST PORT NICK ROOM``.

It logs in to ROOM and prints ``ready``. Then each line it reads on stdin becomes a `say` (ref = its line
number, a `client_msg_id` too), sent at once, as a bot or a pasted terminal does. A reader thread answers the
server's pings and records every ack and error frame. At the end of stdin it waits until every line is
acknowledged (or the server closes, or `ACK_LIMIT` seconds pass), pings the server, and prints one JSON
line: the refs acknowledged, in the order the acks came, the (code, fatal) of every error frame, and whether
the server answered that ping (the connection is still alive).

The test freezes it with SIGSTOP while it writes lines to its stdin: on SIGCONT the client finds them all
waiting and sends them together, behind an unanswered ping: the backlog after a stall.
"""

from __future__ import annotations

import json
import sys
import threading

from shared import Ack, Error, Ping, Pong, Say, encode
from tests.server.client import ChatTestClient, Closed

#: Longest the client waits for its acks after the end of its input.
ACK_LIMIT = 60.0
#: The token of the final ping.
LAST_PING = 424242


def main(argv: list[str]) -> int:
    """Log in, say ready, send every stdin line, report acks and errors."""
    host, port, nick, room = argv
    client = ChatTestClient((host, int(port)))
    client.login(nick, rooms=[room])
    acked: list[int] = []
    errors: list[tuple[str, bool]] = []
    answered: list[int] = []
    sent = 0
    done = threading.Condition()

    def read() -> None:
        """Answer pings, record acks and errors, until the connection ends."""
        while True:
            try:
                message = client.recv_until(lambda m: isinstance(m, Ack | Error | Ping | Pong), ACK_LIMIT)
            except (AssertionError, Closed, OSError):
                break
            if isinstance(message, Ping):
                client.sock.sendall(encode(Pong(token=message.token)))
                continue
            with done:
                if isinstance(message, Pong):
                    answered.append(message.token)
                elif isinstance(message, Ack) and message.ref is not None:
                    acked.append(message.ref)
                elif isinstance(message, Error):
                    errors.append((message.code, message.fatal))
                done.notify_all()
        with done:
            client.closed = True
            done.notify_all()

    print("ready", flush=True)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for line in sys.stdin:
        text = line.rstrip("\n")
        client.sock.sendall(encode(Say(room=room, text=text, client_msg_id=f"m{sent}", ref=sent)))
        sent += 1
    with done:
        done.wait_for(lambda: len(acked) + len(errors) >= sent or client.closed, ACK_LIMIT)
    if not client.closed:
        client.sock.sendall(encode(Ping(token=LAST_PING)))
    with done:
        done.wait_for(lambda: LAST_PING in answered or client.closed, ACK_LIMIT)
        report = {"acked": acked, "errors": errors, "alive": LAST_PING in answered}
        print(json.dumps(report), flush=True)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
