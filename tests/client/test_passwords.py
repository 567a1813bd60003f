"""Passwords in the client against a real server: the library (server password, nick registration, a
reconnect that logs back in with the nick's password), the commands, the plain mode asking for a refused
password, and the TUI (the connect screen's password fields and /register) through Pilot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from chat_client import ChatClient, Connected
from chat_client.model import commands as cmd
from chat_client.model.editing import complete
from chat_client.net.errors import LoginRefused, ServerError
from chat_client.tui.app import ChatApp
from chat_client.tui.screens.connect import ConnectScreen
from chat_client.tui.screens.register import RegisterDialog
from chat_client.tui.widgets.chat_input import ChatInput
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config, run_plain_captured
from .test_cli import run_client
from .test_library import FAST, Recorder
from .tui_helpers import connected_app, submit, wait_for_chat, wait_for_text

#: A scrypt cost that takes microseconds, so registering is fast in tests.
CHEAP = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}
SIZE = (120, 36)


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with the password "sesame" (and cheap nick hashing), stopped after the test."""
    with LiveServer(fast_server_config(tmp_path / "locked", password="sesame", **CHEAP)) as live:
        yield live


@pytest.fixture
def cheap(tmp_path: Path) -> Iterator[LiveServer]:
    """A server without a password, with cheap nick hashing, stopped after the test."""
    with LiveServer(fast_server_config(tmp_path / "cheap", **CHEAP)) as live:
        yield live


def history_lines(chat_input: ChatInput) -> list[str]:
    """Every line the input history offers with Up."""
    lines = []
    while (line := chat_input.history.previous("")) is not None:
        lines.append(line)
    return lines


# -- Library -----------------------------------------------------------------------------------------------


async def test_library_server_password(locked: LiveServer) -> None:
    """No or a wrong password: LoginRefused bad_password at once (never retried); the right one logs in."""
    for password in (None, "wrong"):
        with pytest.raises(LoginRefused) as refused:
            await ChatClient(locked.host, locked.port, "alice", options=FAST, password=password).connect()
        assert refused.value.code == "bad_password"
    async with ChatClient(locked.host, locked.port, "alice", options=FAST, password="sesame") as alice:
        assert alice.connected


async def test_library_registration_survives_a_reconnect(cheap: LiveServer) -> None:
    """After `register`, a server restart makes the client log in again with the nick's password (kept in
    memory); another client cannot take the nick; after `unregister` it can."""
    async with ChatClient(cheap.host, cheap.port, "alice", options=FAST) as alice:
        events = Recorder(alice)
        answer = await alice.register("p4ss")
        assert answer is not None
        assert answer.registered
        await cheap.astop()
        await cheap.astart()
        await wait_until(lambda: len(events.of(Connected)) >= 1 and alice.connected, what="a relogin")
        with pytest.raises(LoginRefused) as refused:
            await ChatClient(cheap.host, cheap.port, "alice", options=FAST).connect()
        assert refused.value.code == "nick_registered"
        with pytest.raises(ServerError) as wrong:
            await alice.unregister("not it")
        assert wrong.value.code == "nick_registered"
        answer = await alice.unregister("p4ss")
        assert answer is not None
        assert not answer.registered
    async with ChatClient(cheap.host, cheap.port, "alice", options=FAST) as anyone:
        assert anyone.nick == "alice"


async def test_library_nick_change_to_a_registered_nick(cheap: LiveServer) -> None:
    """`change_nick` to a registered nick needs its password; with it, later logins use that password."""
    async with ChatClient(cheap.host, cheap.port, "owner", options=FAST) as owner:
        await owner.register("mine")
    async with ChatClient(cheap.host, cheap.port, "guest", options=FAST) as guest:
        with pytest.raises(ServerError) as refused:
            await guest.change_nick("owner")
        assert refused.value.code == "nick_registered"
        await guest.change_nick("Owner", password="mine")
        assert guest.nick == "Owner"
        await cheap.astop()
        await cheap.astart()
        await wait_until(lambda: guest.connected, what="the relogin as Owner")
        assert guest.nick == "Owner"


# -- Commands ----------------------------------------------------------------------------------------------


def test_password_commands_parse() -> None:
    """/register, /unregister and /nick with a password parse; wrong word counts are usage errors."""
    assert cmd.parse("/register s3cret") == cmd.RegisterCommand("s3cret")
    assert cmd.parse("/register new old") == cmd.RegisterCommand("new", "old")
    assert cmd.parse("/unregister s3cret") == cmd.UnregisterCommand("s3cret")
    assert cmd.parse("/nick alice pw") == cmd.NickCommand("alice", "pw")
    assert cmd.parse("/nick alice") == cmd.NickCommand("alice")
    for bad in ("/register", "/register a b c", "/unregister", "/unregister a b", "/nick", "/nick a b c"):
        with pytest.raises(cmd.CommandError):
            cmd.parse(bad)
    assert any("/register" in line for line in cmd.help_text())
    assert cmd.help_text("unregister")[0].startswith("/unregister [PASSWORD]")


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("/register", False),
        ("/register ", True),
        ("/register s3cret", True),
        ("/REGISTER s3cret", True),
        ("/unregister x", True),
        ("/nick bob", False),
        ("/nick bob ", True),
        ("/nick bob pw", True),
        ("//register s3cret", False),
        ("register me", False),
        ("/msg bob /register", False),
    ],
)
def test_lines_holding_a_password(line: str, secret: bool) -> None:
    """Exactly the lines that carry (or are about to carry) a password are secret."""
    assert cmd.holds_password(line) is secret


# -- Plain mode --------------------------------------------------------------------------------------------


async def test_plain_mode_asks_for_refused_passwords(locked: LiveServer) -> None:
    """--plain with a terminal: a refused server password and then a refused nick password are asked for
    (without echo, through `ask`), and the login goes on; what was asked never reaches the output."""
    async with ChatClient(locked.host, locked.port, "carol", options=FAST, password="sesame") as carol:
        await carol.register("carols")
    asked: list[str] = []
    answers = iter(["sesame", "carols"])

    def ask(prompt: str) -> str | None:
        asked.append(prompt)
        return next(answers)

    run = await run_plain_captured(locked, "carol", lines="/quit\n", options=FAST, ask=ask)
    assert run.status == 0, run.err
    assert asked == ["server password: ", "password of the nick carol: "]
    assert "bad_password" in run.err
    assert "nick_registered" in run.err
    assert "carols" not in run.out + run.err
    assert "sesame" not in run.out + run.err


async def test_plain_mode_without_a_terminal_fails_at_once(locked: LiveServer) -> None:
    """Without `ask` (input is not a terminal) a refused password ends with the login-failed status."""
    run = await run_plain_captured(locked, "dan", options=FAST)
    assert run.status == 2
    assert "bad_password" in run.err


# -- TUI ---------------------------------------------------------------------------------------------------


async def test_tui_server_password_nick_password_and_register(locked: LiveServer, private_dirs: Path) -> None:
    """The connect screen: a wrong server password is refused and the password field is asked again; the
    right one logs in. /register is masked while typed, answered, and kept out of the input history. Next
    time the nick is registered: the nick password field appears when the server asks for it, and the
    right password logs in. No password is ever written to the settings file."""
    app = ChatApp(config_dir=private_dirs, options=FAST, discovery=None)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ConnectScreen)
        assert not screen.query_one("#nick-password-field").display
        screen.query_one("#host").value = locked.host  # type: ignore[attr-defined]
        screen.query_one("#port").value = str(locked.port)  # type: ignore[attr-defined]
        screen.query_one("#nick").value = "erin"  # type: ignore[attr-defined]
        password = screen.query_one("#password")
        assert password.password  # type: ignore[attr-defined]
        password.value = "wrong"  # type: ignore[attr-defined]
        await pilot.click("#connect")
        await wait_until(lambda: "bad_password" in str(screen.query_one("#connect-status").render()))
        assert password.has_focus
        assert password.value == ""  # type: ignore[attr-defined]
        password.value = "sesame"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for_chat(app, pilot)
        chat_input = app.screen.query_one(ChatInput)
        await pilot.press(*"/register ")
        assert chat_input.password  # masked while typed
        await pilot.press(*"erins-pw", "enter")
        await wait_for_text(app, pilot, "erin is registered")
        assert not chat_input.password
        await submit(pilot, "/nick erin wrong")
        await wait_for_text(app, pilot, "wrong password")
        await submit(pilot, "just chatting")
        assert history_lines(chat_input) == ["just chatting"]
        await app.quit_chat(None)
    settings_text = (private_dirs / "client.json").read_text()
    assert "sesame" not in settings_text
    assert "erins-pw" not in settings_text

    again = ChatApp(config_dir=private_dirs, options=FAST, discovery=None)
    async with again.run_test(size=SIZE) as pilot:
        screen = again.screen
        assert isinstance(screen, ConnectScreen)
        assert screen.query_one("#nick").value == "erin"  # type: ignore[attr-defined]
        screen.query_one("#password").value = "sesame"  # type: ignore[attr-defined]
        await pilot.click("#connect")
        field = screen.query_one("#nick-password")
        await wait_until(lambda: screen.query_one("#nick-password-field").display and field.has_focus)
        assert "nick_registered" in str(screen.query_one("#connect-status").render())
        assert field.password  # type: ignore[attr-defined]
        field.value = "erins-pw"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for_chat(again, pilot)
        assert again.client is not None
        assert again.client.nick == "erin"
        await again.quit_chat(None)


async def test_tui_nick_command_with_password(cheap: LiveServer, private_dirs: Path) -> None:
    """`/nick NEW PASSWORD` takes a registered nick in the TUI."""
    async with ChatClient(cheap.host, cheap.port, "frank", options=FAST) as frank:
        await frank.register("franks")
    app = connected_app(cheap, private_dirs, "guest")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_chat(app, pilot)
        await submit(pilot, "/nick frank wrong")
        await wait_for_text(app, pilot, "wrong password")
        await submit(pilot, "/nick frank franks")
        await wait_until(lambda: app.client is not None and app.client.nick == "frank", what="the new nick")
        await app.quit_chat(None)


# -- Command line ------------------------------------------------------------------------------------------


def test_cli_password_file_and_environment(
    locked: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--password-file` (first line) and MPCHAT_PASSWORD give the server password to --plain; without it
    the login fails with status 2 and says why; --help documents both and the nick password options."""
    address = ("--plain", "--host", locked.host, "--port", str(locked.port))
    secret = tmp_path / "pw"
    secret.write_text("sesame\n")
    done = run_client(*address, "--nick", "gina", "--password-file", str(secret), stdin="/quit\n")
    assert done.returncode == 0, done.stderr
    refused = run_client(*address, "--nick", "hal", stdin="/quit\n")
    assert refused.returncode == 2
    assert "bad_password" in refused.stderr
    monkeypatch.setenv("MPCHAT_PASSWORD", "sesame")
    done = run_client(*address, "--nick", "ivy", stdin="/quit\n")
    assert done.returncode == 0, done.stderr
    assert "sesame" not in done.stdout + done.stderr
    usage = run_client("--help").stdout
    for word in ("--password-file", "--nick-password-file", "MPCHAT_PASSWORD", "MPCHAT_NICK_PASSWORD"):
        assert word in usage


async def test_tui_register_dialog_asks_twice(cheap: LiveServer, private_dirs: Path) -> None:
    """`/register` alone opens a dialog with masked fields: Escape cancels; two different passwords are
    refused with a clear message; the same twice registers the nick (the server's answer is shown)."""
    app = connected_app(cheap, private_dirs, "gwen")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_chat(app, pilot)
        await submit(pilot, "/register")
        await wait_until(lambda: isinstance(app.screen, RegisterDialog), what="the dialog")
        await pilot.press("escape")
        await wait_until(lambda: not isinstance(app.screen, RegisterDialog), what="the dialog to close")
        await submit(pilot, "/register")
        await wait_until(lambda: isinstance(app.screen, RegisterDialog), what="the dialog again")
        dialog = app.screen
        fields = [dialog.query_one(f"#{name}-password", Input) for name in ("new", "again", "old")]
        assert all(field.password for field in fields)
        await pilot.press(*"gwens-pw", "tab", *"gwens-pq", "enter")
        await wait_until(lambda: "differ" in str(dialog.query_one("#register-status").render()))
        assert fields[1].has_focus
        await pilot.press(*"gwens-pw", "enter")
        await wait_until(lambda: not isinstance(app.screen, RegisterDialog), what="the dialog to close")
        await wait_for_text(app, pilot, "gwen is registered")
        await app.quit_chat(None)
    with pytest.raises(LoginRefused) as refused:
        await ChatClient(cheap.host, cheap.port, "gwen", options=FAST, nick_password="gwens-pq").connect()
    assert refused.value.code == "nick_registered"
    async with ChatClient(cheap.host, cheap.port, "gwen", options=FAST, nick_password="gwens-pw") as gwen:
        assert gwen.nick == "gwen"


def test_tab_completes_the_password_commands() -> None:
    """Tab completes /reg to /register and /unreg to /unregister (/unr is shared with /unreact)."""
    for typed, expected in (("/reg", "/register "), ("/unreg", "/unregister ")):
        result = complete(typed, len(typed), nicks=["regina"], rooms=[])
        assert result is not None
        assert result.value == expected
