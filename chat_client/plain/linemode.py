"""The plain line mode: commands and messages from standard input, one line per event on standard output.

For pipes, scripts, screen readers and very slow links. Each output line is
``HH:MM:SS [#ID] <where> <what>``, for example ``14:03:07 #42 lobby <alice> hello``, ``14:03:09 #43 @bob
<bob> psst`` or ``14:03:12 lobby -!- carol joined``: a stored message shows its id (what `/reply`,
`/edit`, `/delete`, `/react` and `/get` take) right after the time. Between the place and the nick, a
message may show ``(edited)`` or ``(message deleted)``; a reply is followed by its quote
(``  ↳ #42 alice: first words…``), a message with reactions by them (``  + 👍 2 (alice, bob)``); an edit or a
deletion that arrives later prints the message again in its new state, a reaction prints a notice.
Every piece of text the server sent goes through
`shared.text.visible`, so a line never holds an escape sequence. A message of several lines prints its
further lines indented under its text behind ``┆`` (`format_line`): an output line that starts with a
space continues the event above it, and no text can print a line that looks like another event.

Passwords are asked for, never echoed: see chat_client/plain/password.py.

Messages go out paced to the rate limits the server announced (chat_client.net.pacing), so a pipe of any
length is delivered whole, in order, without a refusal. When standard input ends, the client waits for
every message to be acknowledged (as long as the server keeps acknowledging them: `drain_timeout` seconds
without one end the wait) and for its file transfers to end (as long as they make progress), then logs out
and exits: 0 when every message line it read was delivered, `EXIT_UNDELIVERED` (with a count on standard
error) when some were not.

The measured lag is printed by `/lag`, and on its own when it crosses `lag_warning` seconds, and again
when it is back under.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from chat_client.model import attention
from chat_client.model import commands as cmd
from chat_client.model.chat import (
    DELETED_LABEL,
    EDITED_MARK,
    SERVER_KEY,
    BufferKind,
    Changes,
    ChatModel,
    ConnectionStatus,
    Line,
    LineKind,
    Update,
    UpdateKind,
    reactions_summary,
)
from chat_client.model.controller import Controller
from chat_client.model.search import SearchView, search_lines
from chat_client.net.client import ChatClient
from chat_client.net.errors import ClientError, ConnectionLost, InvalidRequest, LoginRefused, UntrustedServer
from chat_client.net.events import Closed, LagMeasured
from chat_client.net.options import DEFAULT_DRAIN_TIMEOUT, DEFAULT_LAG_WARNING, ClientOptions
from chat_client.net.pins import PinStoreError
from chat_client.net.progress import Direction, TransferState, describe
from chat_client.net.trust import TlsOptions
from chat_client.plain.password import PasswordCommands, SecretReader
from shared import ErrorCode, History, visible
from shared.addresses import describe_servers
from shared.text import CONTINUATION

#: Seconds the end of the session waits for the event printer to finish.
FLUSH_TIMEOUT = 10.0
#: Once the input has ended, running file transfers are waited for as long as one of them makes progress
#: at least this often (seconds).
TRANSFER_IDLE_TIMEOUT = 60.0
#: Seconds to wait after login for the first room to be joined before reading the input anyway.
JOIN_TIMEOUT = 5.0
#: Exit status when the first login fails.
EXIT_LOGIN_FAILED = 2
#: Exit status when some message lines read from the input were not delivered (refused, or never
#: acknowledged before the drain timeout).
EXIT_UNDELIVERED = 3
#: A running transfer's progress is printed when it crosses this fraction, or after this many seconds.
PROGRESS_STEP = 0.10
PROGRESS_EVERY = 2.0
#: Times the user is asked for a password the server refused, before giving up.
PASSWORD_TRIES = 3
#: Seconds between two moves of the read markers to what was printed (on a terminal only).
MARK_READ_EVERY = 1.0

#: Asks the user for a password without echoing it: called with the prompt, returns None to give up.
AskPassword = Callable[[str], str | None]


def ask_on_terminal(prompt: str) -> str | None:
    """Read a password from the terminal without echoing it (None at end of input or Ctrl-C)."""
    try:
        return getpass.getpass(prompt) or None
    except (EOFError, KeyboardInterrupt):
        return None


def format_line(
    line: Line,
    where: str,
    *,
    local_time: bool = True,
    quote: str | None = None,
    stamp_ts: float | None = None,
) -> str:
    """One event as plain text: one line, and for each further line of a multi-line message one more line,
    indented under the text and marked ``┆`` (it starts with a space, which no event line does). A stored
    message starts with its id (``#42``); an edited one shows ``(edited)`` and a deleted one ``(message
    deleted)`` before its nick; a reply's `quote` (``↳ alice: first words…``, from `ChatModel.reply_quote`)
    and a message's reactions follow on lines of their own, indented and marked ``↳`` and ``+``.
    `stamp_ts`: the time to print instead of the line's (an update is printed when it happens)."""
    when = line.ts if stamp_ts is None else stamp_ts
    stamp = time.strftime("%H:%M:%S", time.localtime(when) if local_time else time.gmtime(when))
    text, *more = visible(line.text).split("\n")
    nick = visible(line.nick, keep_newlines=False) if line.nick else ""
    mark = ""
    if line.deleted:
        mark, text, more = f"({DELETED_LABEL}) ", "", []
    elif line.edited is not None:
        mark = EDITED_MARK + " "
    if line.kind is LineKind.MESSAGE:
        body = f"{mark}<{nick}> {text}".rstrip() if line.deleted else f"{mark}<{nick}> {text}"
    elif line.kind is LineKind.ACTION:
        body = f"{mark}* {nick} {text}".rstrip() if line.deleted else f"{mark}* {nick} {text}"
    elif line.kind is LineKind.FILE:
        name = visible(line.text, keep_newlines=False)
        body = f"-!- {nick} offers file #{line.id}: {name} (/get {line.id})"
    elif line.kind is LineKind.ERROR:
        body = f"-!- error: {text}"
    else:
        body = f"-!- {text}"
    number = f"#{line.id} " if line.id is not None else ""
    first = f"{stamp} {number}{visible(where, keep_newlines=False)} {body}"
    column = max(2, len(first) - len(text))  # where the text starts: its further lines go under it
    lines = [first]
    if more and line.kind is not LineKind.FILE:
        lines += [" " * (column - 2) + CONTINUATION + " " + part for part in more]
    if quote is not None:
        tag = f"↳ #{line.reply_to}"
        quoted = quote if quote.startswith(tag) else tag + " " + quote.removeprefix("↳ ")
        lines.append(" " * (column - 2) + visible(quoted, keep_newlines=False))
    if line.reactions:
        shown = "  ".join(f"{r.reaction} {len(r.nicks)} ({', '.join(r.nicks)})" for r in line.reactions)
        lines.append(" " * (column - 2) + "+ " + visible(shown, keep_newlines=False))
    return "\n".join(lines)


def format_update(update: Update, where: str, quote: str | None = None) -> str:
    """A line changed in place, as plain text, printed when it happens: an edit, a deletion or a newer
    state from history prints the message again as it is now; a reaction prints a notice naming the
    message (``-!- bob reacted 👍 to #42: 👍 2  🎉 1``)."""
    line = update.line
    if update.kind in (UpdateKind.REACTED, UpdateKind.UNREACTED):
        who = visible(update.nick or "?", keep_newlines=False)
        reaction = visible(update.reaction or "", keep_newlines=False)
        verb = f"reacted {reaction} to" if update.kind is UpdateKind.REACTED else f"took {reaction} off"
        summary = visible(reactions_summary(line), keep_newlines=False) or "no reactions"
        text = f"{who} {verb} #{line.id}: {summary}"
        return format_line(Line(time.time(), LineKind.NOTICE, text), where)
    return format_line(line, where, quote=quote, stamp_ts=time.time())


def buffer_label(model: ChatModel, key: str) -> str:
    """How a buffer is named at the start of a plain line: ``lobby``, ``@bob`` or ``*``."""
    buffer = model.buffers.get(key)
    if buffer is None or key == SERVER_KEY:
        return "*"
    return "@" + buffer.name if buffer.kind is BufferKind.DIRECT else buffer.name


class PlainUI:
    """Prints what changed in the model to a text stream."""

    def __init__(self, model: ChatModel, out: TextIO) -> None:
        self.model = model
        self.out = out
        self._announced: set[str] = set()
        # The search whose hits were printed, and how many of them (a next page prints only its own).
        self._printed_view: SearchView | None = None
        self._printed = 0
        # Per transfer number: the progress step and the time of the last progress line printed.
        self._progress_shown: dict[int, tuple[int, float]] = {}
        #: Set when standard output was closed by its reader.
        self.reader_gone = asyncio.Event()

    def show(self, changes: Changes) -> None:
        """Print every new line, in order, and flush; note when the reader has gone (a closed pipe)."""
        if self.reader_gone.is_set():
            return
        try:
            for key, lines in [*changes.inserted.items(), *changes.lines.items()]:
                label = buffer_label(self.model, key)
                for line in lines:
                    quote = self.model.reply_quote(key, line)
                    self.out.write(format_line(line, label, quote=quote) + "\n")
            for update in changes.updated:
                label = buffer_label(self.model, update.key)
                quote = self.model.reply_quote(update.key, update.line)
                self.out.write(format_update(update, label, quote) + "\n")
            self._show_queued(changes)
            self._show_progress(changes)
            self._show_search(changes)
            self.out.flush()
        except BrokenPipeError:
            # `chat-client --plain | head -3`: the reader stopped. Log out quietly; point stdout at
            # /dev/null so the interpreter's final flush does not complain either.
            self.reader_gone.set()
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.out.fileno())

    def _show_search(self, changes: Changes) -> None:
        """Print the page of search hits that arrived (the first page with a heading)."""
        view = self.model.search
        if not changes.search or view is None:
            return
        start = self._printed if self._printed_view is view else 0
        self._printed_view, self._printed = view, len(view.hits)
        for text in search_lines(view, self.model.nick, start):
            self.out.write(text + "\n")

    def _show_progress(self, changes: Changes) -> None:
        """A progress line for a running transfer every `PROGRESS_STEP` of its size or `PROGRESS_EVERY` s.

        Its start and its end are ordinary lines of the model.
        """
        now = time.monotonic()
        for number in sorted(changes.transfers):
            info = self.model.transfers.get(number)
            if info is None or info.state is not TransferState.RUNNING or info.size == 0:
                continue
            step = int(info.fraction / PROGRESS_STEP)
            last_step, last_time = self._progress_shown.get(number, (0, now))
            if number in self._progress_shown and step == last_step and now - last_time < PROGRESS_EVERY:
                continue
            self._progress_shown[number] = (step, now)
            verb = "sending" if info.direction is Direction.UPLOAD else "getting"
            text = f"transfer {number}: {verb} {info.name}: {describe(info)}"
            self.out.write(format_line(Line(time.time(), LineKind.NOTICE, text), "*") + "\n")

    def _show_queued(self, changes: Changes) -> None:
        """Say once when a message is held for later because the client is offline.

        Connected, the acknowledged message itself is the confirmation, printed as an ordinary line.
        """
        if self.model.status is ConnectionStatus.CONNECTED:
            return
        for key in changes.pending:
            buffer = self.model.buffers.get(key)
            for entry in buffer.pending if buffer is not None else []:
                if entry.client_msg_id not in self._announced:
                    self._announced.add(entry.client_msg_id)
                    line = Line(entry.created, LineKind.NOTICE, f"queued until reconnected: {entry.text}")
                    self.out.write(format_line(line, buffer_label(self.model, key)) + "\n")


def _start_stdin_reader(
    source: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]
) -> None:
    """Read lines in a daemon thread (blocking reads cannot be cancelled) and hand them to the loop."""

    def pump() -> None:
        try:
            for line in source:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError):
            pass
        finally:
            # RuntimeError: the loop is already closed because the program is exiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin reader", daemon=True).start()


async def run_plain(
    host: str,
    port: int,
    nick: str,
    *,
    room: str | None = None,
    options: ClientOptions | None = None,
    source: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    password: str | None = None,
    nick_password: str | None = None,
    ask: AskPassword | None = None,
    tls: TlsOptions | None = None,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    lag_warning: float = DEFAULT_LAG_WARNING,
) -> int:
    """Run the line mode until the input ends or /quit; return the exit status.

    `ask`, if given, is used to ask for the server's or the nick's password when the server refuses the
    login for want of it (up to `PASSWORD_TRIES` times). `drain_timeout`: see `DEFAULT_DRAIN_TIMEOUT`;
    `lag_warning`: see `DEFAULT_LAG_WARNING` (0: never announce the lag).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    model = ChatModel(nick)
    ui = PlainUI(model, out)
    if room:
        model.expect_join(room)
    for attempt in range(PASSWORD_TRIES + 1):
        client = ChatClient(
            host,
            port,
            nick,
            rooms=[room] if room else None,
            options=options,
            password=password,
            nick_password=nick_password,
            tls=tls,
        )
        try:
            await client.connect()
            break
        except (LoginRefused, ConnectionLost, InvalidRequest, UntrustedServer, PinStoreError) as error:
            err.write(f"chat-client: cannot log in to {describe_servers(host, port)} as {nick}: {error}\n")
            code = error.code if isinstance(error, LoginRefused) else None
            if ask is None or attempt == PASSWORD_TRIES or code not in _PASSWORD_CODES:
                return EXIT_LOGIN_FAILED
            prompt = (
                f"password of the nick {nick}: " if code == ErrorCode.NICK_REGISTERED else "server password: "
            )
            given = ask(prompt)
            if given is None:
                return EXIT_LOGIN_FAILED
            if code == ErrorCode.NICK_REGISTERED:
                nick_password = given
            else:
                password = given
    controller = Controller(client, model)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    source = source or sys.stdin
    _start_stdin_reader(source, asyncio.get_running_loop(), lines)
    passwords = PasswordCommands(controller, SecretReader(lines, _terminal_of(source), err))
    in_a_room = asyncio.Event()
    lag = LagWatch(model, ui, lag_warning)
    events = asyncio.create_task(_show_events(client, model, ui, in_a_room, lag))
    # On a terminal, what is printed is read: the read markers follow it. Not when the output is piped.
    marking = asyncio.create_task(_mark_printed(client, model)) if _is_terminal(out) else None
    reason: str | None = None
    quitting = False
    message_lines = 0
    try:
        # Lines typed (or piped) before the first room is joined would have nowhere to go: wait for it
        # (and for its history, which holds the file offers a piped /get may name).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(JOIN_TIMEOUT):
                await in_a_room.wait()
        while (line := await _next_line(lines, ui.reader_gone)) is not None:
            if _is_message(line):
                message_lines += 1
                # Paced, the outbox empties at the server's rate: wait for room rather than refuse the line.
                if not await client.wait_outbox_room(drain_timeout):
                    message_lines += _count_messages(lines)
                    break
            outcome = await passwords.run(line)
            if outcome is None:  # not a password command that needed asking
                outcome = await controller.run(line)
            ui.show(outcome.changes)
            if outcome.quit:
                reason, quitting = outcome.quit_reason, True
                break
        await client.drain(drain_timeout)
        if not quitting and not ui.reader_gone.is_set():
            await client.wait_transfers(TRANSFER_IDLE_TIMEOUT)
    finally:
        if marking is not None:
            marking.cancel()
        await client.close(reason)
        await asyncio.wait_for(events, FLUSH_TIMEOUT)
    _, acknowledged, refused = client.delivery_counts
    undelivered = message_lines - acknowledged
    if undelivered > 0:
        unanswered = len(client.outbox)
        err.write(
            f"chat-client: {undelivered} of {message_lines} message lines were not delivered "
            f"({refused} refused by the server, {unanswered} not acknowledged, "
            f"{undelivered - refused - unanswered} not sent)\n"
        )
        return EXIT_UNDELIVERED
    return 0


def _is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (OSError, ValueError):
        return False


async def _mark_printed(client: ChatClient, model: ChatModel) -> None:
    """Once a second, move the read marker of every room and conversation to the newest message printed
    (docs/protocol.md, `mark_read`): on a terminal, plain mode shows every line as it arrives."""
    while True:
        await asyncio.sleep(MARK_READ_EVERY)  # a period, not a wait for something to happen
        for buffer in list(model.buffers.values()):
            if buffer.kind is BufferKind.SERVER:
                continue
            up_to = attention.seen(model, buffer.key)
            if up_to is None:
                continue
            room = buffer.name if buffer.kind is BufferKind.ROOM else None
            peer = buffer.name if buffer.kind is BufferKind.DIRECT else None
            try:
                await client.mark_read(up_to, room=room, peer=peer, wait=False)
            except ClientError:
                buffer.read_up_to = 0  # not sent (offline): try again after the next login
                break


def _is_message(line: str) -> bool:
    """True if the input line is a message (text, `/me`, or `/msg` with text), as the controller reads it."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return False
    try:
        command = cmd.parse(line)
    except cmd.CommandError:
        return False
    return isinstance(command, cmd.SayCommand | cmd.MeCommand) or (
        isinstance(command, cmd.MsgCommand) and bool(command.text)
    )


def _count_messages(lines: asyncio.Queue[str | None]) -> int:
    """Take the lines already read but not run (the input is abandoned): how many were messages."""
    count = 0
    while not lines.empty():
        line = lines.get_nowait()
        if line is not None and _is_message(line):
            count += 1
    return count


class LagWatch:
    """Announces the lag when it reaches `threshold` seconds, and when it is back under (0: never)."""

    def __init__(self, model: ChatModel, ui: PlainUI, threshold: float) -> None:
        self.model = model
        self.ui = ui
        self.threshold = threshold
        self.high = False

    def measured(self, seconds: float) -> None:
        """A new measurement: print a line if it crossed the threshold either way."""
        if self.threshold <= 0 or (seconds >= self.threshold) == self.high:
            return
        self.high = not self.high
        if self.high:
            text = f"lag is {cmd.describe_lag(seconds)} (at or over {self.threshold:g} s): the link is slow"
        else:
            text = f"lag is back to {cmd.describe_lag(seconds)}"
        self.ui.show(self.model.notice(text))


def _terminal_of(source: TextIO) -> int | None:
    """The file descriptor of `source` if it is a terminal (its echo is turned off for passwords)."""
    try:
        return source.fileno() if source.isatty() else None
    except (OSError, ValueError):  # a StringIO, or a closed stream
        return None


#: Login refusals that asking for a password can fix.
_PASSWORD_CODES = frozenset({ErrorCode.BAD_PASSWORD, ErrorCode.NICK_REGISTERED})


async def _next_line(lines: asyncio.Queue[str | None], reader_gone: asyncio.Event) -> str | None:
    """The next input line, or None at the end of the input or once nobody reads our output."""
    if reader_gone.is_set():
        return None
    getting = asyncio.ensure_future(lines.get())
    gone = asyncio.ensure_future(reader_gone.wait())
    await asyncio.wait({getting, gone}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if getting.done():
        return getting.result()
    getting.cancel()
    return None


async def _show_events(
    client: ChatClient, model: ChatModel, ui: PlainUI, in_a_room: asyncio.Event, lag: LagWatch
) -> None:
    while batch := await client.next_events():
        ui.show(model.apply_all(batch))
        for event in batch:
            if isinstance(event, LagMeasured):
                lag.measured(event.seconds)
        # In a room, with its backfill: piped commands can now name what it holds (`/get ID` of an offer).
        if model.current != SERVER_KEY and any(isinstance(event, History) for event in batch):
            in_a_room.set()
        if any(isinstance(event, Closed) for event in batch):
            return
