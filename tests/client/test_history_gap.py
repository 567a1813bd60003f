"""After a reconnect whose resume skipped thousands of messages, the gap is fetched page by page: by the
library (`fetch_forward`), by the TUI and the line mode (`/more`, inserted where the messages belong)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from chat_client import ChatClient, Connected, Reconnecting
from chat_client.model.buffers import Gap
from chat_client.model.chat import ChatModel
from chat_client.plain.linemode import PlainUI
from chat_client.tui.app import ChatApp
from chat_lab.proxy import FaultProxy
from shared import Ack, History, Joined, Say, Welcome
from tests.server.client import ChatTestClient
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .test_library import FAST, Recorder
from .test_model import TS, said
from .tui_helpers import submit, wait_for_chat, wait_for_text

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
        proxy = FaultProxy(lambda: (server.host, server.port))
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


async def test_tui_more_shows_what_a_reconnect_skipped_in_place(tmp_path: Path, private_dirs: Path) -> None:
    """The TUI says how many messages the resume skipped and that /more shows them; each /more inserts the
    next page where it belongs, until every missed message is shown once, in order."""
    config = fast_server_config(
        tmp_path / "server", rate_messages=1e6, rate_burst=10**6, backfill=20, max_backfill=100
    )
    with LiveServer(config) as server:
        proxy = FaultProxy(lambda: (server.host, server.port))
        await proxy.start()
        try:
            app = ChatApp(
                host="127.0.0.1",
                port=proxy.port,
                nick="alice",
                connect_now=True,
                config_dir=private_dirs,
                options=FAST,
            )
            async with (
                app.run_test(size=(140, 30)) as pilot,
                ChatClient(server.host, server.port, "bob", options=FAST) as bob,
            ):
                screen = await wait_for_chat(app, pilot)
                await bob.say("lobby", "before the cut", wait=True)
                await wait_for_text(app, pilot, "<bob> before the cut")
                proxy.refuse = True
                await proxy.cut()
                await wait_until(lambda: "reconnecting" in str(screen.query_one("#status").render()))
                await asyncio.to_thread(say_pipelined, (server.host, server.port), 250)
                proxy.refuse = False
                buffer = screen.model.buffers["#lobby"]
                notice = "150 older messages were skipped while you were away: /more shows them"
                await wait_until(lambda: notice in [line.text for line in buffer.lines], what="the notice")
                await wait_for_text(app, pilot, "/more shows them")
                missed = [f"g{number}" for number in range(250)]

                def shown() -> list[str]:
                    return [line.text for line in buffer.lines if line.nick == "filler"]

                assert shown() == missed[150:]  # the resume: the newest 100
                await submit(pilot, "/more")
                await wait_until(lambda: len(shown()) == 200, what="the first page of the gap")
                assert shown() == missed[:100] + missed[150:]
                await wait_for_text(app, pilot, "50 more skipped messages: /more shows the next ones")
                await submit(pilot, "/more")
                await wait_until(lambda: len(shown()) == 250, what="the rest of the gap")
                assert shown() == missed
                assert buffer.gap is None
                texts = [line.text for line in buffer.lines]
                assert texts.index("before the cut") < texts.index("g0")
                await submit(pilot, "/more")
                await wait_for_text(app, pilot, "no skipped messages to show here")
        finally:
            await proxy.close()


def test_a_filled_gap_is_inserted_in_place_and_printed_by_the_line_mode() -> None:
    """The model keeps the skipped range; a page of it goes where its ids belong (the TUI redraws), and the
    line mode, which cannot redraw, prints the inserted lines."""
    model = ChatModel("alice", clock=lambda: 1000.0)
    model.apply(Connected(Welcome(version=1, nick="alice", server="test", ts=TS), resumed=False))
    model.apply(Joined(room="lobby", nick="alice", ts=TS))
    model.apply(said(1, "seen"))
    model.apply(History(room="lobby", messages=(said(8, "m8"), said(9, "m9")), more=True, skipped=6))
    buffer = model.buffers["#lobby"]
    assert buffer.gap == Gap(after=1, before=8, count=6)
    out = io.StringIO()
    plain = PlainUI(model, out)
    changes = model.apply(History(room="lobby", messages=(said(2, "m2"), said(3, "m3")), more=True))
    assert [line.text for line in buffer.lines if line.nick == "bob"] == ["seen", "m2", "m3", "m8", "m9"]
    assert "#lobby" in changes.redraw
    assert buffer.gap == Gap(after=3, before=8, count=4)
    plain.show(changes)
    printed = [line for line in out.getvalue().splitlines() if "<bob>" in line or "skipped" in line]
    assert [line.split("> ")[-1] for line in printed[:2]] == ["m2", "m3"]
    assert "4 more skipped messages: /more shows the next ones" in printed[2]
    last = (said(4, "m4"), said(5, "m5"), said(6, "m6"), said(7, "m7"))
    model.apply(History(room="lobby", messages=last, more=False))
    assert buffer.gap is None
    assert [line.id for line in buffer.lines if line.nick == "bob"] == list(range(1, 10))
    # A page outside the gap is an ordinary page (a live join's backfill, scrollback): not inserted.
    assert not model.apply(History(room="lobby", messages=(said(10, "m10"),))).inserted


async def test_resume_after_our_own_last_message_misses_nothing(tmp_path: Path) -> None:
    """A room where the last message we saw was our own: the rejoin still asks for what came after it
    (our acknowledged ids count as seen), so 60 missed messages all come back, not the newest 50."""
    config = fast_server_config(tmp_path / "server", rate_messages=1e6, rate_burst=10**6)
    with LiveServer(config) as server:
        proxy = FaultProxy(lambda: (server.host, server.port))
        await proxy.start()
        try:
            async with (
                ChatClient("127.0.0.1", proxy.port, "alice", options=FAST) as alice,
                ChatClient(server.host, server.port, "bob", options=FAST) as bob,
            ):
                events = Recorder(alice)
                await alice.join("quiet")
                await alice.say("quiet", "mine", wait=True)
                proxy.refuse = True
                await proxy.cut()
                await wait_until(lambda: events.of(Reconnecting), what="reconnecting")
                await bob.join("quiet")
                for number in range(60):
                    await bob.say("quiet", f"missed {number}")
                await bob.wait_delivered(10)
                proxy.refuse = False
                await wait_until(lambda: "missed 59" in events.texts("quiet"), what="the replay")
                assert [t for t in events.texts("quiet") if t.startswith("missed")] == [
                    f"missed {number}" for number in range(60)
                ]
        finally:
            await proxy.close()
