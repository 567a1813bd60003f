"""An echo bot for mpchat: the classic first TCP program, done right.

It answers every direct message with the same text, and every room message addressed to it
(``echobot: hello``) with ``alice: hello``. Reconnects, resumes and delivery are the library's job;
it never answers itself, replays of old messages (which arrive as `History`, not `Said`), or other
bots' echoes of its own words forever, because it only answers messages addressed to it.

    python examples/echo_bot.py --host 127.0.0.1 --port 7878 --nick echobot --room lobby

Stop it with Ctrl+C (or SIGTERM): it logs out politely.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from chat_client import ChatClient, ConnectionLost, InvalidRequest, LoginRefused
from shared import Said, Told, fold


async def echo(client: ChatClient) -> None:
    """Answer direct messages and messages addressed to us, until the client closes."""
    prefix = f"{fold(client.nick)}:"
    async for event in client.events():
        try:
            if isinstance(event, Told) and fold(event.nick) != fold(client.nick):
                await client.tell(event.nick, event.text, action=event.action)
            elif isinstance(event, Said) and fold(event.text).startswith(prefix):
                await client.say(event.room, f"{event.nick}:{event.text[len(prefix) :]}")
        except InvalidRequest:
            pass  # the answer would break a limit (say, too long with the nick in front): skip it


async def main(host: str, port: int, nick: str, room: str) -> None:
    """Log in, echo until SIGINT or SIGTERM, then log out."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with ChatClient(host, port, nick, rooms=[room]) as client:
        echoing = asyncio.create_task(echo(client))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({echoing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        await client.close("echo bot stopping")
        await echoing


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="mpchat echo bot")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7878)
    parser.add_argument("--nick", default="echobot")
    parser.add_argument("--room", default="lobby")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.host, args.port, args.nick, args.room))
    except (ConnectionLost, LoginRefused, InvalidRequest) as error:
        # The first login failed (no server there, nick taken...): one line, not a traceback.
        print(f"echo_bot: cannot log in to {args.host}:{args.port} as {args.nick}: {error}", file=sys.stderr)
        sys.exit(1)
