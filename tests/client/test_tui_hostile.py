"""Untrusted text is data: markup, escape sequences, bidi overrides and huge or exotic text render
literally, run no action and crash nothing (through a real server, and as a hostile server could send it)."""

from __future__ import annotations

from pathlib import Path

from chat_client import ChatClient
from chat_client.tui.app import ChatApp
from chat_client.tui.ui_messages import NetEvents
from chat_client.tui.widgets.chat_log import ChatLog
from chat_client.tui.widgets.panels import TopicBar
from shared import Said, TopicChanged
from tests.waiting import wait_until

from .helpers import LiveServer
from .test_library import FAST
from .tui_helpers import log_text, wait_for_chat, wait_for_text

MARKUP = [
    "[bold]not bold[/bold] [link=https://evil.example]a link[/link]",
    "[@click=app.pwn]click me[/]",
    "[ @click=app.pwn]spaced[/] oops [/] [B]upper[/B] [$accent]var[/]",
    "[@click=app.quit]quit[/]",
]
EXOTIC = [
    "bidi \u202egnp.exe\u202c and zero\u200bwidth",
    "emoji 👋🏽🎉 CJK 你好，世界",
]


def flat(text: str) -> str:
    """`text` with every run of whitespace (including line breaks from wrapping) as one space."""
    return " ".join(text.split())


class TrapApp(ChatApp):
    """A ChatApp with an action that records whether anything ran it."""

    pwned = False

    @classmethod
    def connected(cls, server: LiveServer, config_dir: Path) -> TrapApp:
        """The trap app, connecting to `server` as alice at once."""
        return cls(
            host=server.host,
            port=server.port,
            nick="alice",
            connect_now=True,
            config_dir=config_dir,
            options=FAST,
        )

    def action_pwn(self) -> None:
        """Set the flag: markup must never get here."""
        self.pwned = True


def active_segments(app: ChatApp) -> list[str]:
    """Texts of rendered log segments that carry a click action, and targets of links whose text is not
    their target (there must be none: a URL in a message links to itself, and only that)."""
    found = []
    linked: dict[str, str] = {}  # each link's target: the texts of its segments, in order
    for strip in app.screen.query_one(ChatLog).rows():
        for segment in strip:
            style = segment.style
            if style is not None and style.meta.get("@click"):
                found.append(segment.text)
            if style is not None and style.link:
                linked[style.link] = linked.get(style.link, "") + segment.text
    found.extend(target for target, text in linked.items() if text != target * (len(text) // len(target)))
    return found


async def click_markup(pilot, app: ChatApp) -> int:  # type: ignore[no-untyped-def]
    """Click the start of every word on the visible log rows holding markup, and along the topic bar."""
    log = app.screen.query_one(ChatLog)
    topic = app.screen.query_one(TopicBar)
    targets = [(x, topic.region.y) for x in range(topic.region.x, topic.region.x + 40, 3)]
    area = log.scrollable_content_region
    # Bring the first row holding markup to the top of the view (long lines after it may fill the screen).
    first = next(n for n, strip in enumerate(log.rows()) if "@click" in strip.text or "link=" in strip.text)
    log.scroll_to(y=first, animate=False, immediate=True)
    await pilot.pause()
    top = int(log.scroll_y)
    for index, strip in enumerate(log.rows()[top : top + area.height]):
        text = strip.text
        if "@click" in text or "link=" in text:
            starts = [
                x for x, char in enumerate(text) if char not in " " and (x == 0 or text[x - 1] in " []")
            ]
            targets += [(area.x + x, area.y + index) for x in starts]
    for x, y in targets:
        await pilot.click(offset=(x, y))
    return len(targets)


async def test_hostile_strings_render_literally_and_do_nothing(
    server: LiveServer, private_dirs: Path
) -> None:
    """Markup from other users shows as typed; clicking it runs nothing; 4 KiB of text does not crash."""
    async with ChatClient(server.host, server.port, "mallory", options=FAST) as mallory:
        app = TrapApp.connected(server, private_dirs)
        async with app.run_test(size=(120, 50), notifications=True) as pilot:
            screen = await wait_for_chat(app, pilot)
            await wait_until(lambda: screen.model.current == "#lobby")
            await mallory.set_topic("lobby", "[@click=app.pwn]topic[/] oops [/]")
            big = "界" * (mallory.limits.max_text // 3)  # 4 KiB of UTF-8, wrapped over many lines
            await mallory.say("lobby", big, wait=True)
            for text in [*MARKUP, *EXOTIC]:
                await mallory.say("lobby", text, wait=True)
            await mallory.say("lobby", "alice [@click=app.pwn]mention[/] [/]", wait=True)  # a notification
            big = "界" * (mallory.limits.max_text // 3)
            await mallory.say("lobby", big, wait=True)
            await wait_for_text(app, pilot, "mention")
            shown = flat(log_text(app))  # lines wrap at spaces: compare with the spacing normalised
            for text in MARKUP:
                assert flat(text) in shown
            assert "bidi \ufffdgnp.exe\ufffd and zero\ufffdwidth" in shown
            assert "emoji 👋🏽🎉 CJK 你好，世界" in shown
            assert "[@click=app.pwn]topic[/] oops [/]" in str(screen.query_one(TopicBar).render())
            assert active_segments(app) == []
            assert await click_markup(pilot, app) > 20
            await pilot.pause()
            assert not app.pwned
            assert app.is_running


async def test_escape_sequences_from_a_hostile_server_are_made_visible(
    server: LiveServer, private_dirs: Path
) -> None:
    """ESC, C1 and BEL in what a server sends are shown as symbols, never passed to the terminal."""
    app = TrapApp.connected(server, private_dirs)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await wait_for_chat(app, pilot)
        await wait_until(lambda: screen.model.current == "#lobby")
        # The real server refuses control characters, so these frames come "from a hostile server":
        # built directly, as an old or malicious server could send them.
        hostile = "title \x1b]2;PWNED\x07 blink \x1b[5m csi \x9b31m end"
        screen.post_message(
            NetEvents(
                [
                    Said(id=10**9, room="lobby", nick="mallory", text=hostile, ts=0),
                    TopicChanged(room="lobby", topic="\x1b[2J cleared?", nick="mallory", ts=0),
                ]
            )
        )
        await wait_for_text(app, pilot, "end")
        shown = flat(log_text(app))
        assert "\x1b" not in shown
        assert "\x07" not in shown
        assert "\x9b" not in shown
        assert "title ␛]2;PWNED␇ blink ␛[5m csi \ufffd31m end" in shown
        assert "\x1b" not in str(screen.query_one(TopicBar).render())
        assert app.is_running
