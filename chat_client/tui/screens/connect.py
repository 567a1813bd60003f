"""The connect screen: host, port and nick (remembered from last time), and the recent servers.

The status line (progress, or why connecting failed) sits under the title, and on a terminal shorter than
`SHORT_HEIGHT` rows the fields and buttons drop their borders, so that at 80x24 the whole form and its error
are visible without resizing.

It also asks for the server's password (if it has one) and, once the server says the nick is registered, the
nick's password. Both fields are masked and never saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from chat_client.settings import Recent
from shared.addresses import describe_servers, host_port, parse_servers
from shared.fingerprint import grouped
from shared.limits import DEFAULT_MAX_NICK
from shared.text import nick_problem, visible

if TYPE_CHECKING:  # the connect screen is the first paint: it imports no network or chat module
    from chat_client.net.discovery import DiscoveredServer


#: Below this height (rows) the form is compact: fields and buttons without borders.
SHORT_HEIGHT = 36


def _safe(text: str) -> str:
    """Untrusted text made visible, on one line (as `chat_client.tui.render.safe`, without its imports)."""
    return visible(text, keep_newlines=False)


class ConnectScreen(Screen[None]):
    """Asks where to connect and as whom; the app does the connecting and reports back."""

    AUTO_FOCUS = "#nick"
    BINDINGS = [Binding("escape", "app.quit", "Quit", show=False)]

    def __init__(
        self,
        *,
        host: str,
        port: int,
        nick: str,
        recent: list[Recent],
        connecting: bool = False,
        password: str | None = None,
        nick_password: str | None = None,
        tls: bool = False,
    ) -> None:
        super().__init__()
        self._password = password or ""
        self._nick_password = nick_password or ""
        self._tls = tls
        self._connecting = connecting
        self._host = host
        self._port = port
        self._nick = nick
        self._recent = recent

    def compose(self) -> ComposeResult:
        """The form, the error line and the recent servers."""
        with Vertical(id="connect-form"):
            yield Label("mpchat", id="connect-title")
            yield Static(id="connect-status")
            with Horizontal(classes="field"):
                yield Label("Host", classes="field-label")
                yield Input(value=self._host, id="host", placeholder="127.0.0.1")
            with Horizontal(classes="field"):
                yield Label("Port", classes="field-label")
                yield Input(value=str(self._port), id="port", type="integer", max_length=5)
            with Horizontal(classes="field"):
                yield Label("Nick", classes="field-label")
                yield Input(value=self._nick, id="nick", placeholder="your nick", max_length=DEFAULT_MAX_NICK)
            with Horizontal(classes="field"):
                yield Label("Password", classes="field-label")
                yield Input(
                    value=self._password, id="password", placeholder="if the server has one", password=True
                )
            with Horizontal(classes="field", id="nick-password-field"):
                yield Label("Nick pass", classes="field-label")
                yield Input(
                    value=self._nick_password,
                    id="nick-password",
                    placeholder="your registered nick's password",
                    password=True,
                )
            yield Checkbox("TLS (pin the server's key on first use)", self._tls, id="tls")
            yield Button("Connect", id="connect", variant="primary")
            yield Label("Servers on the LAN", classes="section")
            yield OptionList(id="lan")
            yield Static(Text("listening…", style="dim"), id="lan-status")
            yield Label("Recent servers", classes="section")
            options = [Option(self._recent_label(r), id=str(i)) for i, r in enumerate(self._recent)]
            recent = OptionList(*options, id="recent")
            recent.display = bool(options)
            yield recent
            if not options:
                yield Static(Text("none yet", style="dim"), id="no-recent")
        yield Footer()

    def on_mount(self) -> None:
        """Show what the app has heard so far; when it connects straight away (--host/--nick), say so."""
        from chat_client.tui.app import ChatApp

        self._lan: list[DiscoveredServer] = []
        self.query_one("#lan", OptionList).display = False
        self.query_one("#connect-status").display = False  # until there is something to say
        # Asked for only when needed (the server says the nick is registered), or when one was given.
        self.query_one("#nick-password-field").display = bool(self._nick_password)
        if isinstance(self.app, ChatApp):
            self.show_lan(self.app.lan_servers, self.app.lan_problem)
        if self._connecting:
            self.show_status(f"connecting to {describe_servers(self._host, self._port)} as {self._nick}…")
            self.query_one("#connect", Button).disabled = True

    def on_resize(self, event: Resize) -> None:
        """Make the form compact on a short terminal, so it fits with its status line."""
        short = event.size.height < SHORT_HEIGHT
        self.set_class(short, "-short")
        for widget in self.query("Input, Checkbox, Button"):
            if isinstance(widget, Input | Checkbox | Button):
                widget.compact = short

    @staticmethod
    def _recent_label(recent: Recent) -> Text:
        tls = "  TLS" if recent.tls else ""
        return Text(f"{_safe(recent.nick)} @ {host_port(_safe(recent.host), recent.port)}{tls}", end="")

    @on(Input.Submitted)
    @on(Button.Pressed, "#connect")
    def submit(self) -> None:
        """Check the form, then ask the app to connect."""
        host = self.query_one("#host", Input).value.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]  # an IPv6 address written as in a URL: [::1]
        port_text = self.query_one("#port", Input).value.strip()
        nick = self.query_one("#nick", Input).value.strip()
        if not host:
            self.show_error("enter the server's host name or address")
            return
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            self.show_error("the port is a number from 1 to 65535")
            return
        try:
            parse_servers(host, int(port_text))  # one server, or several of one chat: a.lan,b.lan:7000
        except ValueError as error:
            self.show_error(str(error))
            return
        problem = nick_problem(nick, DEFAULT_MAX_NICK)
        if problem is not None:
            self.show_error(problem)
            self.query_one("#nick", Input).focus()
            return
        tls = self.query_one("#tls", Checkbox).value
        how = " with TLS" if tls else ""
        self.show_status(f"connecting to {describe_servers(host, int(port_text))}{how} as {nick}…")
        self.query_one("#connect", Button).disabled = True
        from chat_client.tui.app import ChatApp

        app = self.app
        assert isinstance(app, ChatApp)
        password = self.query_one("#password", Input).value or None
        nick_password = self.query_one("#nick-password", Input).value or None
        app.start_chat(host, int(port_text), nick, tls, password=password, nick_password=nick_password)

    def show_lan(self, servers: list[DiscoveredServer], problem: str | None) -> None:
        """List the servers heard on the LAN (all their text is untrusted: made visible, never markup)."""
        self._lan = list(servers)
        lan = self.query_one("#lan", OptionList)
        lan.clear_options()
        lan.add_options([Option(self._lan_label(server), id=str(i)) for i, server in enumerate(self._lan)])
        lan.display = bool(self._lan)
        status = self.query_one("#lan-status", Static)
        status.display = not self._lan
        status.update(Text(_safe(problem) if problem else "none heard yet", style="dim", end=""))

    @staticmethod
    def _lan_label(server: DiscoveredServer) -> Text:
        users = f"{server.users} user{'s' if server.users != 1 else ''}"
        text = Text(end="", no_wrap=True, overflow="ellipsis")
        text.append(_safe(server.name), style="bold")
        text.append(f"  {host_port(_safe(server.host), server.port)}  {users}", style="dim")
        if server.servers:
            text.append(f"  cluster of {len(server.servers) + 1}", style="dim")
        if server.rooms:
            text.append("  " + ", ".join(_safe(name) for name, _ in server.rooms[:5]), style="dim")
        if server.tls:
            # Shown for comparing by eye; a beacon is never trusted over a pin (docs/security.md).
            key = f" key {grouped(server.fingerprint)[:19]}…" if server.fingerprint else ""
            text.append(f"  TLS{key}", style="green")
        return text

    @on(OptionList.OptionSelected, "#lan")
    def use_lan(self, event: OptionList.OptionSelected) -> None:
        """Connect to a server heard on the LAN: one key press when the nick is known, else ask for it."""
        server = self._lan[int(event.option.id or 0)]
        # A cluster's server brings the others it announces: the client fails over to them (docs/cluster.md).
        self.query_one("#host", Input).value = server.host_list
        self.query_one("#port", Input).value = str(server.port)
        self.query_one("#tls", Checkbox).value = server.tls
        nick = self.query_one("#nick", Input)
        if nick.value.strip():
            self.submit()
        else:
            nick.focus()

    @on(OptionList.OptionSelected, "#recent")
    def use_recent(self, event: OptionList.OptionSelected) -> None:
        """Fill the form from a recent server."""
        recent = self._recent[int(event.option.id or 0)]
        self.query_one("#host", Input).value = recent.host
        self.query_one("#port", Input).value = str(recent.port)
        self.query_one("#nick", Input).value = recent.nick
        self.query_one("#tls", Checkbox).value = recent.tls
        self.query_one("#connect", Button).focus()

    def ask_password(self, reason: str, *, nick: bool) -> None:
        """The server wants a (different) password: say why, show the field and put the cursor in it."""
        self.show_error(reason)
        if nick:
            self.query_one("#nick-password-field").display = True
        field = self.query_one("#nick-password" if nick else "#password", Input)
        field.value = ""
        field.focus()

    def show_error(self, reason: str) -> None:
        """Show why connecting failed, and let the user try again."""
        status = self.query_one("#connect-status", Static)
        status.update(Text(_safe(reason), style="bold red", end=""))
        status.display = True
        self.query_one("#connect", Button).disabled = False

    def show_status(self, text: str) -> None:
        """Show progress."""
        status = self.query_one("#connect-status", Static)
        status.update(Text(_safe(text), style="italic", end=""))
        status.display = True
