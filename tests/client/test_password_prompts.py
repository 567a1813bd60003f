"""Password commands typed without their password ask for it instead of showing it: `chat-client --plain`
in a real pseudo-terminal (echo off while the password is typed: it never appears in what the terminal
shows) and through pipes (the password is the next input line), and the TUI's `/unregister` dialog. A real
server checks that the right password was registered."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from chat_client import ChatClient
from chat_client.__main__ import EXIT_INTERRUPTED
from chat_client.net.errors import LoginRefused
from chat_client.tui.screens.register import UnregisterDialog
from tests.waiting import wait_until

from .helpers import LiveServer, fast_server_config
from .terminal import PtyProcess
from .test_library import FAST
from .test_plain import killed_on_exit, plain_client
from .tui_helpers import connected_app, submit, wait_for_chat, wait_for_text

ROOT = Path(__file__).resolve().parents[2]
#: A scrypt cost that takes microseconds, so registering is fast in tests.
CHEAP = {"scrypt_n": 16, "scrypt_r": 1, "scrypt_p": 1}
#: Seconds a `chat-client` process gets to start, log in or exit on a loaded machine.
PROCESS_DEADLINE = 60.0


@pytest.fixture
def cheap(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with cheap nick hashing, stopped after the test."""
    with LiveServer(fast_server_config(tmp_path / "cheap", **CHEAP)) as live:
        yield live


@pytest.fixture
def terminal_client(cheap: LiveServer) -> Iterator[tuple[PtyProcess, str]]:
    """`chat-client --plain` as "carol" in #dev, on a terminal, logged in; closed after the test."""
    command = [
        sys.executable,
        "-m",
        "chat_client",
        "--plain",
        "--host",
        cheap.host,
        "--port",
        str(cheap.port),
    ]
    command += ["--nick", "carol", "--room", "dev"]
    terminal = PtyProcess(command, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        terminal.read_until(b"you joined dev", PROCESS_DEADLINE)
        yield terminal, "carol"
    finally:
        terminal.close()


async def logs_in(server: LiveServer, nick: str, password: str | None) -> bool:
    """True if `nick` can log in with `password` as its nick password (False if refused)."""
    try:
        async with ChatClient(server.host, server.port, nick, options=FAST, nick_password=password):
            return True
    except LoginRefused as refused:
        if refused.code != "nick_registered":
            raise
        return False


def quit_and_wait(terminal: PtyProcess) -> None:
    terminal.write(b"/quit\r")
    assert terminal.wait(PROCESS_DEADLINE) == 0, terminal.output[-2000:]


async def test_register_alone_asks_twice_without_echo(
    cheap: LiveServer, terminal_client: tuple[PtyProcess, str]
) -> None:
    terminal, nick = terminal_client
    terminal.write(b"/register\r")
    terminal.read_until(b"new password for carol: ")
    terminal.write(b"Wobbly-Teapot-42\r")
    terminal.read_until(b"the same again: ")
    terminal.write(b"Wobbly-Teapot-42\r")
    terminal.read_until(b"current password (only to change it; Enter if none): ")
    terminal.write(b"\r")
    terminal.read_until(b"carol is registered", PROCESS_DEADLINE)
    assert terminal.echoes()  # given back after the last answer
    quit_and_wait(terminal)
    assert b"Wobbly" not in terminal.output
    assert await logs_in(cheap, nick, "Wobbly-Teapot-42")
    assert not await logs_in(cheap, nick, None)


async def test_two_different_passwords_register_nothing(
    cheap: LiveServer, terminal_client: tuple[PtyProcess, str]
) -> None:
    terminal, nick = terminal_client
    terminal.write(b"/register\r")
    terminal.read_until(b"new password for carol: ")
    terminal.write(b"Wobbly-Teapot-42\r")
    terminal.read_until(b"the same again: ")
    terminal.write(b"Wobbly-Teapot-43\r")
    terminal.read_until(b"the two passwords differ, nothing was sent")
    quit_and_wait(terminal)
    assert b"Wobbly" not in terminal.output
    assert await logs_in(cheap, nick, None)


def test_ctrl_c_at_a_prompt_gives_the_echo_back_and_exits_quietly(
    terminal_client: tuple[PtyProcess, str],
) -> None:
    terminal, _ = terminal_client
    terminal.write(b"/register\r")
    terminal.read_until(b"new password for carol: ")
    assert not terminal.echoes()
    terminal.write(b"\x03")  # Ctrl-C: SIGINT to the terminal's foreground process group
    assert terminal.wait(PROCESS_DEADLINE) == EXIT_INTERRUPTED
    assert terminal.echoes()
    assert b"Traceback" not in terminal.output


async def test_unregister_alone_asks_without_echo(
    cheap: LiveServer, terminal_client: tuple[PtyProcess, str]
) -> None:
    terminal, nick = terminal_client
    terminal.write(b"/register Inline-Works-Too\r")  # for scripts; the help prefers the prompt
    terminal.read_until(b"carol is registered", PROCESS_DEADLINE)
    terminal.write(b"/unregister\r")
    terminal.read_until(b"password of carol: ")
    terminal.write(b"Inline-Works-Too\r")
    terminal.read_until(b"carol is no longer registered", PROCESS_DEADLINE)
    quit_and_wait(terminal)
    assert terminal.output.count(b"Inline-Works-Too") == 1  # echoed once: as typed inline
    assert await logs_in(cheap, nick, None)


async def test_nick_to_a_registered_nick_asks_for_its_password(
    cheap: LiveServer, terminal_client: tuple[PtyProcess, str]
) -> None:
    async with ChatClient(cheap.host, cheap.port, "owner", options=FAST) as owner:
        await owner.register("Owners-Own-Secret")
    terminal, _ = terminal_client
    terminal.write(b"/nick owner\r")
    terminal.read_until(b"password of the nick owner: ", PROCESS_DEADLINE)
    terminal.write(b"Owners-Own-Secret\r")
    terminal.read_until(b"you are now known as owner", PROCESS_DEADLINE)
    quit_and_wait(terminal)
    assert b"error: nick_registered" in terminal.output  # the refusal is shown too
    assert b"Owners-Own-Secret" not in terminal.output


async def test_nick_to_a_free_nick_asks_nothing(terminal_client: tuple[PtyProcess, str]) -> None:
    terminal, _ = terminal_client
    terminal.write(b"/nick dora\r")
    terminal.read_until(b"you are now known as dora", PROCESS_DEADLINE)
    quit_and_wait(terminal)
    assert b"password" not in terminal.output


def run_piped(server: LiveServer, nick: str, lines: str, *extra: str) -> str:
    """Run `chat-client --plain` with `lines` as its input; its output (it must exit with status 0)."""
    with killed_on_exit(plain_client(server, nick, "--room", "dev", *extra)) as process:
        out, err = process.communicate(lines, timeout=PROCESS_DEADLINE)
    assert process.returncode == 0, err
    assert "password" not in err  # nothing is prompted on a pipe
    return out + err


async def test_through_a_pipe_the_password_is_the_next_line(cheap: LiveServer, tmp_path: Path) -> None:
    shown = run_piped(cheap, "erin", "/register\nPiped-Secret-9\n/quit\n")
    assert "erin is registered" in shown
    assert "Piped-Secret-9" not in shown
    assert await logs_in(cheap, "erin", "Piped-Secret-9")

    secret = tmp_path / "erin.pw"
    secret.write_text("Piped-Secret-9\n")
    shown = run_piped(
        cheap, "erin", "/unregister\nPiped-Secret-9\n/quit\n", "--nick-password-file", str(secret)
    )
    assert "erin is no longer registered" in shown
    assert "Piped-Secret-9" not in shown
    assert await logs_in(cheap, "erin", None)


async def test_tui_unregister_alone_asks_in_a_masked_dialog(cheap: LiveServer, private_dirs: Path) -> None:
    async with ChatClient(cheap.host, cheap.port, "hal", options=FAST) as hal:
        await hal.register("Hals-Secret")
    app = connected_app(cheap, private_dirs, "hal", nick_password="Hals-Secret")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for_chat(app, pilot)
        await submit(pilot, "/unregister")
        await wait_until(lambda: isinstance(app.screen, UnregisterDialog), what="the dialog")
        dialog = app.screen
        field = dialog.query_one("#unregister-password", Input)
        assert field.password
        await pilot.press("enter")  # nothing typed: asked again, nothing sent
        await wait_until(lambda: "type the nick" in str(dialog.query_one("#register-status").render()))
        await pilot.press(*"Hals-Secret", "enter")
        await wait_until(lambda: not isinstance(app.screen, UnregisterDialog), what="the dialog to close")
        await wait_for_text(app, pilot, "hal is no longer registered")
        await app.quit_chat(None)
    assert await logs_in(cheap, "hal", None)
