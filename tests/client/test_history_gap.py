"""After a reconnect whose resume skipped thousands of messages, the library fetches the gap, page by page."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chat_client import ChatClient, Connected, Reconnecting
from shared import Ack, History, Say
from tests.server.client import ChatTestClient
from tests.waiting import wait_until

from .helpers import LiveServer, Proxy, fast_server_config
from .test_library import FAST, Recorder

GAP = 2000


def say_pipelined(address: tuple[str, int], count: int) -> list[int]:
    """Log in as `filler`, say `count` messages in the lobby (pipelined), return their ids (blocking)."""
    with ChatTestClient(address) as filler:
        filler.login("filler")
        for number in range(count):
            filler.send(Say(room="lobby", text=f"g{number}", ref=number))
        return [filler.recv(Ack, ref=number, timeout=30).id for number in range(count)]


async def test_fetch_forward_pages_through_the_gap_a_resume_skipped(tmp_path: Path) -> None:
    """2,000 messages missed while offline: the resume gives the newest 500 and `skipped`; fetch_forward
    with limit 100 then returns every skipped message exactly once, oldest first, and stops at the end."""
    config = fast_server_config(tmp_path / "server", rate_messages=1e6, rate_burst=10**6)
    with LiveServer(config) as server:
        proxy = Proxy(lambda: (server.host, server.port))
        await proxy.start()
        try:
            async with (
                ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice,
                ChatClient(server.host, server.port, "bob", options=FAST) as bob,
            ):
                events = Recorder(alice)
                last_seen = (await bob.say("lobby", "before", wait=True)).id
                await wait_until(lambda: "before" in events.texts("lobby"), what="alice to see it")
                proxy.refuse = True
                await proxy.cut()
                await wait_until(lambda: events.of(Reconnecting), what="reconnecting")
                missed = await asyncio.to_thread(say_pipelined, (server.host, server.port), GAP)
                proxy.refuse = False
                await wait_until(lambda: len(events.of(Connected)) == 2, what="reconnected")
                await wait_until(lambda: [h for h in events.of(History) if h.skipped], what="the resume")
                resume = next(h for h in events.of(History) if h.skipped)
                first_given = resume.messages[0].id
                assert resume.skipped == GAP - len(resume.messages)
                assert [m.id for m in resume.messages] == missed[resume.skipped :]

                pages = [
                    page
                    async for page in alice.fetch_forward(
                        "lobby", after=last_seen, before=first_given, limit=100
                    )
                ]
                fetched = [m.id for page in pages for m in page.messages]
                assert fetched == missed[: resume.skipped]  # each once, oldest first
                assert [page.more for page in pages] == [True] * (len(pages) - 1) + [False]
                assert all(len(page.messages) <= 100 for page in pages)
        finally:
            await proxy.close()
