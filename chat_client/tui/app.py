"""The Textual app: the connect screen, the login, and the chat screen.

Threads: none of our own. The login runs as an async worker on the app (`connection`), in the UI's event
loop: it builds the `ChatClient`, logs in and hands the client to a new chat screen. From then on the chat
screen owns it, with two async workers of its own: `ChatScreen.receive_events` passes each batch of events
to the screen as a `NetEvents` message (so widgets are only ever touched by their own message handlers), and
`ChatScreen.send_lines` runs the typed lines. Leaving (Ctrl+Q or /quit) logs out politely (bounded by the
client's close timeout), then exits; Textual cancels the workers last, and the receiving one closes the
client on its way out.

Start-up: this module and the connect screen import no network, chat or discovery module, so the first
frame waits only for Textual; `on_ready` (the first frame is drawn) then imports `startup.PRELOAD` one module
per event loop turn, starts LAN discovery, or connects (docs/client.md, "Start-up").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import Provider
from textual.worker import Worker, WorkerState

from chat_client.net.pins import PinStore, PinStoreError
from chat_client.settings import DEFAULT_HOST, DEFAULT_PORT, Settings, load_settings, save_settings
from chat_client.tui.screens.connect import ConnectScreen
from chat_client.tui.startup import preload
from chat_client.tui.ui_messages import ServersHeard
from shared.addresses import describe_servers
from shared.errors import ErrorCode

if TYPE_CHECKING:
    from chat_client.net.client import ChatClient
    from chat_client.net.discovery import DiscoveredServer, DiscoveryListener
    from chat_client.net.options import ClientOptions
    from chat_client.net.wirelog import WireLog
    from chat_client.tui.screens.chat import ChatScreen

log = logging.getLogger(__name__)

#: Login refusals answered by asking for a password: the server's, or the registered nick's.
_PASSWORD_CODES = frozenset({ErrorCode.BAD_PASSWORD, ErrorCode.NICK_REGISTERED})


def lan_listener() -> DiscoveryListener:
    """A LAN discovery listener with the default settings (the app's default `discovery` factory)."""
    from chat_client.net.discovery import DiscoveryListener

    return DiscoveryListener()


def _chat_commands() -> type[Provider]:
    """The chat screen's palette entries, imported when the palette first opens."""
    from chat_client.tui.palette import ChatCommands

    return ChatCommands


class ChatApp(App[int]):
    """mpchat in the terminal."""

    # Absolute, so subclasses defined elsewhere (tests, embedding apps) find it too.
    CSS_PATH = Path(__file__).parent / "chat.tcss"
    TITLE = "mpchat"
    COMMANDS = App.COMMANDS | {_chat_commands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f12", "toggle_inspector", "Wire inspector", show=False),
    ]

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        nick: str | None = None,
        room: str | None = None,
        connect_now: bool = False,
        theme: str | None = None,
        bell: bool | None = None,
        desktop_notify: str | None = None,
        config_dir: Path | None = None,
        options: ClientOptions | None = None,
        clock: Callable[[], float] = time.time,
        discovery: Callable[[], DiscoveryListener] | None = lan_listener,
        remember_server: bool = True,
        password: str | None = None,
        nick_password: str | None = None,
        tls: bool | None = None,
        fingerprint: str | None = None,
        pins: PinStore | None = None,
        after_start: Callable[[], None] | None = None,
        inspect: bool = False,
    ) -> None:
        """`password` and `nick_password` (from the command line or the environment) fill the connect
        screen's masked fields; they are never saved. `after_start` is called once the first frame is
        drawn and the chat modules are loaded (`chat-client` tunes the garbage collector then)."""
        super().__init__()
        self._after_start = after_start
        self._password = password
        self._nick_password = nick_password
        self.config_dir = config_dir
        self.settings: Settings = load_settings(config_dir)
        self._host = host or self.settings.host or DEFAULT_HOST
        self._port = port or self.settings.port or DEFAULT_PORT
        self._nick = nick or self.settings.nick
        # TLS as asked, else as last time (for the remembered server only).
        self._tls = tls if tls is not None else (self.settings.tls and host is None)
        #: A fingerprint given in advance (--fingerprint): checked for the first server connected to.
        self._fingerprint = fingerprint
        self.pins = pins or PinStore()
        self._room = room
        self._connect_now = connect_now
        self._theme_choice = theme
        self.bell_on_mention = self.settings.bell if bell is None else bell
        if desktop_notify is not None:
            self.settings.desktop_notify = desktop_notify  # remembered, like the theme
        #: Desktop notifications through the terminal (chat_client.tui.desktop), or "off".
        self.desktop_notify = self.settings.desktop_notify
        self.options = options
        self.clock = clock
        self.client: ChatClient | None = None
        #: Every frame in and out, for the wire inspector (F12); made with the first connection.
        self.wire_log: WireLog | None = None
        #: Open the wire inspector as soon as the chat is on screen (`chat-client --inspect`).
        self._inspect = inspect
        self.chat_screen: ChatScreen | None = None
        self._discovery = discovery
        # False for --local: its port changes every run, so only the nick is worth remembering.
        self._remember_server = remember_server
        #: The servers last heard on the LAN, and why discovery is off (if it is).
        self.lan_servers: list[DiscoveredServer] = []
        self.lan_problem: str | None = None if discovery is not None else "LAN discovery is off"

    def on_mount(self) -> None:
        """Apply the theme, show the connect screen, and connect at once if told where."""
        theme = self._theme_choice or self.settings.theme
        if theme in self.available_themes:
            self.theme = theme
        connecting = self._connect_now and bool(self._nick)
        self.push_screen(
            ConnectScreen(
                host=self._host,
                port=self._port,
                nick=self._nick,
                recent=self.settings.recent,
                connecting=connecting,
                password=self._password,
                nick_password=self._nick_password,
                tls=self._tls,
            )
        )

    def on_ready(self) -> None:
        """The connect screen is drawn: import the chat modules, and connect or listen for LAN servers.

        Nothing here runs before the first frame: the connect screen imports no network or chat module, so
        it is drawn as soon as Textual can (docs/client.md, "Start-up").
        """
        self.preload()
        if not (self._connect_now and self._nick):
            # Listening (and querying) for servers on the LAN only helps someone choosing a server: a client
            # told where to connect sends nothing to the LAN.
            if self._discovery is not None:
                self.listen_for_servers(self._discovery)
        else:
            self.start_chat(
                self._host,
                self._port,
                self._nick,
                self._tls,
                password=self._password,
                nick_password=self._nick_password,
            )

    def watch_theme(self, theme: str) -> None:
        """Remember the theme picked in the palette."""
        if theme != self.settings.theme:
            self.settings.theme = theme
            save_settings(self.settings, self.config_dir)

    @work(exclusive=True, group="preload", exit_on_error=False)
    async def preload(self) -> None:
        """Import what the chat needs (`startup.preload`, after the first frame); then call `after_start`."""
        try:
            await preload()
        finally:
            # Even after a failed import: `chat-client`'s after_start turns the garbage collector back on.
            if self._after_start is not None:
                self._after_start()

    @work(exclusive=True, group="discovery", exit_on_error=False)
    async def listen_for_servers(self, factory: Callable[[], DiscoveryListener]) -> None:
        """Listen for server beacons while the connect screen is up (cancelled once logged in)."""
        from shared.discovery import DestinationRefused

        listener = factory()

        def heard(servers: list[DiscoveredServer]) -> None:
            self.post_message(ServersHeard(servers))

        listener.on_update = heard
        try:
            await listener.run()
        except OSError as error:
            self.post_message(ServersHeard([], f"LAN discovery unavailable: {error.strerror or error}"))
        except DestinationRefused as error:
            self.post_message(ServersHeard([], f"LAN discovery unavailable: {error}"))

    def on_servers_heard(self, message: ServersHeard) -> None:
        """Keep the list, and show it if the connect screen is up."""
        self.lan_servers, self.lan_problem = message.servers, message.problem
        if isinstance(self.screen, ConnectScreen):
            self.screen.show_lan(self.lan_servers, self.lan_problem)

    def start_chat(
        self,
        host: str,
        port: int,
        nick: str,
        tls: bool = False,
        *,
        password: str | None = None,
        nick_password: str | None = None,
    ) -> None:
        """Connect (in the background) and switch to the chat screen once logged in."""
        self.connection(host, port, nick, tls, password, nick_password)

    @work(exclusive=True, group="net", exit_on_error=False)
    async def connection(
        self, host: str, port: int, nick: str, tls: bool, password: str | None, nick_password: str | None
    ) -> None:
        """Log in, then pass events to the chat screen until the client closes."""
        # Imported here, not at the top: the connect screen is drawn before any of them is loaded.
        from chat_client.model.chat import ChatModel
        from chat_client.net.client import ChatClient
        from chat_client.net.errors import ConnectionLost, InvalidRequest, LoginRefused, UntrustedServer
        from chat_client.net.trust import tls_for
        from chat_client.net.wirelog import WireLog
        from chat_client.tui.screens.chat import ChatScreen

        room = self._room
        fingerprint, self._fingerprint = self._fingerprint, None  # it was given for the first server only
        trust = tls_for(host, port, tls=tls, fingerprint=fingerprint, pins=self.pins)
        from chat_client.net.options import ClientOptions

        options = self.options or ClientOptions()
        if not self.settings.send_typing:
            options = dataclasses.replace(
                options, send_typing=False
            )  # client.json: never tell others we type
        client = ChatClient(
            host,
            port,
            nick,
            rooms=[room] if room else None,
            options=options,
            password=password,
            nick_password=nick_password,
            tls=trust,
            wire_log=self.wire_log if self.wire_log is not None else WireLog(),
        )
        self.wire_log = client.wire_log
        model = ChatModel(nick, clock=self.clock)
        if room:
            model.expect_join(room)
        try:
            await client.connect()
        except (LoginRefused, ConnectionLost, InvalidRequest, UntrustedServer, PinStoreError) as error:
            if isinstance(self.screen, ConnectScreen):
                code = error.code if isinstance(error, LoginRefused) else None
                reason = f"cannot connect to {describe_servers(host, port)} as {nick}: {error}"
                if code in _PASSWORD_CODES:
                    self.screen.ask_password(reason, nick=code == ErrorCode.NICK_REGISTERED)
                else:
                    self.screen.show_error(reason)
            return
        self.client = client
        self.workers.cancel_group(self, "discovery")
        if self._remember_server:
            self.settings.remember(host, port, nick, trust is not None)
        else:
            self.settings.nick = nick
        save_settings(self.settings, self.config_dir)
        chat = ChatScreen(
            model,
            client,
            address=describe_servers(host, port),
            bell=self.bell_on_mention,
            desktop=self.notify_desktop if self.desktop_notify != "off" else None,
            ask_lines=self.settings.paste_ask_lines,
        )
        self.chat_screen = chat
        await self.switch_screen(chat)
        if self._inspect:
            self.action_toggle_inspector()

    def action_toggle_inspector(self) -> None:
        """F12: open the wire inspector over the current screen (or close it)."""
        from chat_client.net.wirelog import WireLog
        from chat_client.tui.screens.inspector import InspectorScreen

        if isinstance(self.screen, InspectorScreen):
            self.screen.dismiss()
            return
        if self.wire_log is None:
            self.wire_log = WireLog()  # nothing connected yet: it fills with the first connection
        self.push_screen(InspectorScreen(self.wire_log))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed is a bug: say so (the app keeps running) and log the details."""
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            log.error("worker %s failed", event.worker.name, exc_info=error)
            self.notify(f"internal error in {event.worker.name}: {error!r}", severity="error", markup=False)

    def notify_desktop(self, title: str, body: str) -> None:
        """Ask the terminal for a desktop notification, in the style chosen (`--desktop-notify`).

        Written straight to the terminal, as `App.bell` writes its BEL (Textual has no public call for
        other sequences); nothing is written by a headless app (tests through Pilot) or with "off".
        """
        if self.desktop_notify == "off" or self.is_headless or self._driver is None:
            return
        from chat_client.tui.desktop import notification

        self._driver.write(notification(self.desktop_notify, title, body))

    async def action_quit(self) -> None:
        """Log out politely, then exit."""
        await self.quit_chat(None)

    async def quit_chat(self, reason: str | None) -> None:
        """Log out with `reason` (bounded by the client's close timeout), then exit with status 0."""
        client = self.client
        if client is not None:
            await client.close(reason)
        self.exit(0)
