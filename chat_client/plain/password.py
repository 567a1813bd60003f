"""Passwords in the plain line mode: asked for, never typed on the command line where everyone sees them.

A line typed on a terminal is echoed, and stays on the screen and in the scrollback. So the commands that
carry a password ask for it instead when it is left out:

* ``/register`` alone asks for the new password twice (a typo nobody sees would lock the owner out) and for
  the current one, needed only to change the password of a registered nick (Enter skips it);
* ``/unregister`` alone asks for the nick's password;
* ``/nick NEW`` is sent as typed; if the server answers that NEW is registered, its password is asked for
  and the change is sent again with it.

On a terminal the answer is read with the terminal's echo off (the prompt goes to standard error, so
standard output keeps one line per event). When standard input is not a terminal (a pipe, a script, some
screen readers), nothing is prompted: ``/register`` and ``/unregister`` alone take the password from the
next input line (one line for ``/register``: no confirmation, no current password), and ``/nick NEW``
never reads one (a script knows which nicks are registered and types ``/nick NEW PASSWORD``).

The answer is read from the same queue as every other input line (the line mode's stdin reader thread), so
the event loop never blocks while the user types. Typing the password inline still works, for scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
from typing import TextIO

from chat_client.model import commands as cmd
from chat_client.model.chat import Changes
from chat_client.model.controller import Controller, Outcome
from chat_client.net.errors import ClientError, InvalidRequest, NotConnected, ServerError
from shared import ErrorCode

#: Event loop turns given to the event printer before a prompt follows a refusal (cosmetic: its error line
#: then comes before the prompt rather than after it on the same line).
_SETTLE_TURNS = 3


class SecretReader:
    """Reads one answer from the input lines, with the terminal's echo off when `terminal` is a tty's fd."""

    def __init__(self, lines: asyncio.Queue[str | None], terminal: int | None, prompts: TextIO) -> None:
        self._lines = lines
        self._terminal = terminal
        self._prompts = prompts

    @property
    def on_terminal(self) -> bool:
        """True when the input is a terminal (the user is asked, masked), False for a pipe."""
        return self._terminal is not None

    async def read(self, prompt: str) -> str | None:
        """The next input line (its line ending removed), after `prompt` on a terminal; None at the end of
        the input (which stays ended for the caller's next read) or when the terminal's echo cannot be
        turned off (the password would show)."""
        if self._terminal is None:
            return await self._next()
        try:
            saved = termios.tcgetattr(self._terminal)
            quiet = list(saved)
            quiet[3] &= ~termios.ECHO
            termios.tcsetattr(self._terminal, termios.TCSANOW, quiet)
        except termios.error as error:
            self._say(f"cannot turn off the terminal's echo ({error}): type the password inline instead\n")
            return None
        try:
            self._say(prompt)
            return await self._next()
        finally:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self._terminal, termios.TCSANOW, saved)
            self._say("\n")  # the Enter that ended the answer was not echoed either

    async def _next(self) -> str | None:
        line = await self._lines.get()
        if line is None:
            self._lines.put_nowait(None)  # the input has ended: the main loop must see it too
            return None
        return line.rstrip("\r\n")

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._prompts.write(text)
            self._prompts.flush()


class PasswordCommands:
    """Runs the password commands of one plain session, asking for a password left out of the line."""

    def __init__(self, controller: Controller, reader: SecretReader) -> None:
        self._controller = controller
        self._reader = reader

    async def run(self, line: str) -> Outcome | None:
        """Run `line` if it is a password command that needs asking; None if it is any other line (the
        caller runs it as usual)."""
        words = line.split()
        if not words or words[0].lower() not in ("/register", "/unregister", "/nick"):
            return None
        name = words[0].lower()
        if name == "/register" and len(words) == 1:
            return await self._register()
        if name == "/unregister" and len(words) == 1:
            return await self._unregister()
        if name == "/nick" and len(words) == 2 and self._reader.on_terminal:
            return await self._change_nick(words[1])
        return None

    async def _register(self) -> Outcome:
        nick = self._controller.model.nick
        password = await self._reader.read(f"new password for {nick}: ")
        if not password:
            return self._notice("/register: no password given, nothing was sent")
        old: str | None = None
        if self._reader.on_terminal:
            again = await self._reader.read("the same again: ")
            if again != password:
                return self._notice("/register: the two passwords differ, nothing was sent")
            old = await self._reader.read("current password (only to change it; Enter if none): ") or None
        return await self._controller.execute(cmd.RegisterCommand(password, old))

    async def _unregister(self) -> Outcome:
        nick = self._controller.model.nick
        password = await self._reader.read(f"password of {nick}: ")
        if not password:
            return self._notice("/unregister: no password given, nothing was sent")
        return await self._controller.execute(cmd.UnregisterCommand(password))

    async def _change_nick(self, nick: str) -> Outcome:
        """Change the nick; when the server says it is registered, ask for its password and try again.

        Unlike the other commands this waits for the server's answer (bounded by the request timeout), so
        that the password is asked for right after the refusal, and the lines typed next follow the change.
        """
        try:
            await self._controller.client.change_nick(nick)
        except ServerError as error:
            # The refusal is also shown, as an error line, through the event stream.
            if error.code != ErrorCode.NICK_REGISTERED:
                return Outcome(Changes())
        except (InvalidRequest, NotConnected):
            return await self._controller.execute(cmd.NickCommand(nick))  # says why, as usual
        except ClientError as error:
            return self._notice(f"/nick: {error}")
        else:
            return Outcome(Changes())
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)  # the refusal's error line is printed first, not after the prompt
        password = await self._reader.read(f"password of the nick {nick}: ")
        if not password:
            return self._notice("/nick: no password given, nothing more was sent")
        return await self._controller.execute(cmd.NickCommand(nick, password))

    def _notice(self, text: str) -> Outcome:
        return Outcome(self._controller.model.notice(text, error=True))
