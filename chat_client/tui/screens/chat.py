"""The chat screen: room list, topic, log, pending messages, transfers, input, member list and status line.

Lines typed are run one at a time, in the order they were typed, by one sender worker (`send_lines`) that
reads them from a queue: Enter never waits for the network, and a slow request never reorders or blocks the
lines typed after it (docs/client.md, "Typing").
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static

from chat_client.model import attention
from chat_client.model.chat import (
    Buffer,
    BufferKind,
    Changes,
    ChatModel,
    ConnectionStatus,
    Line,
    LineKind,
    room_key,
)
from chat_client.model.commands_base import CommandError
from chat_client.model.controller import Controller, Outcome
from chat_client.model.editing import sent_text
from chat_client.model.search import SearchCommand, SearchView
from chat_client.net.client import ChatClient
from chat_client.net.errors import ClientError, ServerError
from chat_client.settings import DEFAULT_PASTE_ASK_LINES
from chat_client.tui.render import reactions_by_whom, safe
from chat_client.tui.screens.choose import ChoiceDialog
from chat_client.tui.screens.help import HelpRow, HelpScreen, command_rows, key_rows
from chat_client.tui.screens.react import ReactionPicker, picker_choices
from chat_client.tui.screens.register import NewPassword, RegisterDialog, UnregisterDialog
from chat_client.tui.screens.search import SearchScreen
from chat_client.tui.screens.thread import ThreadPanel
from chat_client.tui.ui_messages import NetEvents
from chat_client.tui.widgets.chat_input import ChatInput
from chat_client.tui.widgets.chat_log import ChatLog
from chat_client.tui.widgets.panels import BufferList, MemberList, PendingStrip, StatusLine, TopicBar
from chat_client.tui.widgets.transfers import TransfersPanel
from shared import SearchHit, fold
from shared.limits import DEFAULT_MAX_TEXT

log = logging.getLogger(__name__)

#: How many older messages one scroll past the top asks for.
HISTORY_PAGE = 100
#: Messages loaded on each side of a search hit jumped to.
JUMP_CONTEXT = 20
#: Below this width the member list is hidden to leave room for the log.
NARROW_WIDTH = 90


#: Seconds between two looks at whether the newest line on screen was seen (so a busy room moves its read
#: marker at most once a second: docs/protocol.md, `mark_read`).
MARK_READ_EVERY = 1.0

#: Most events handed to the chat screen in one message: a burst is drawn in few refreshes, yet keys
#: typed during a flood wait for at most one batch. Measured with benchmarks/client_throughput.py
#: (docs/client.md, "Performance"): batches of 50 absorb 8,000 msg/s, and a key is echoed within 40 ms
#: (p99) at 5,000 msg/s.
NET_BATCH = 50


class ChatScreen(Screen[None]):
    """Shows a `ChatModel` and sends what is typed through a `Controller` (offline when client is None)."""

    AUTO_FOCUS = "#input"
    BINDINGS = [
        Binding("ctrl+n", "next_buffer", "Next room"),
        Binding("ctrl+down", "next_buffer", "Next room", show=False),
        Binding("ctrl+up", "previous_buffer", "Prev room", show=False),
        Binding("alt+up", "select_message", "Select a message (then r, +, e, d, c, j, t, w)", show=False),
        Binding("pageup", "scroll_log(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_log(1)", "Scroll down", show=False),
        # End jumps to the newest line only while the input is empty (else it moves the cursor there).
        Binding("end", "jump_to_newest", "Newest line", show=False, priority=True),
        Binding("ctrl+end", "jump_to_newest(True)", "Newest line", show=False, priority=True),
        Binding("f1", "show_help", "Help"),
        Binding("f2", "toggle_members", "Members"),
        Binding("f3", "get_latest_file", "Get file", show=False),
        Binding("ctrl+f", "search", "Search", show=False),
        Binding("f4", "mark_all_read", "Mark all read", show=False),
    ]

    def __init__(
        self,
        model: ChatModel,
        client: ChatClient | None,
        *,
        address: str,
        bell: bool = False,
        ask_lines: int = DEFAULT_PASTE_ASK_LINES,
        desktop: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.client = client
        self.address = address
        self.bell = bell
        #: Asks the terminal for a desktop notification (title, body), or None (`ChatApp.notify_desktop`).
        self.desktop = desktop
        self.ask_lines = ask_lines
        self.controller = Controller(client, model) if client is not None else None
        self._shown_key = ""
        #: Lines typed and not yet run, in typing order (read by `send_lines`).
        self._typed: asyncio.Queue[str] = asyncio.Queue()
        #: Where texts too long for a message are written to be sent as files (made when first needed).
        self._paste_dir: Path | None = None
        #: A search hit being jumped to: (its buffer's key, its message id), until its line is in view.
        self._jump: tuple[str, int] | None = None
        #: A line was just taken by Enter (the input's next change, to empty, is not a stop of typing).
        self._sent_line = False
        #: The reactions used in this session, the latest first (the picker offers them first).
        self.recent_reactions: list[str] = []
        #: The message a jump looks for in older history (buffer key, message id), while it loads.
        self._jump_target: tuple[str, int] | None = None

    def compose(self) -> ComposeResult:
        """Lay out the screen (styles in chat.tcss)."""
        with Horizontal(id="main"):
            yield BufferList(id="rooms")
            with Vertical(id="center"):
                yield TopicBar(id="topic")
                yield ChatLog(id="log", max_lines=self.model.max_lines)
                yield Static(id="typing")
                yield Static(id="new-below")
                yield PendingStrip(id="pending")
                yield TransfersPanel(id="transfers")
                yield Static(id="block")
                yield ChatInput(
                    id="input",
                    nicks=self.model.nicks,
                    rooms=self.model.room_names,
                    max_text=self._max_text,
                    ask_lines=self.ask_lines,
                )
            with VerticalScroll(id="members-panel"):
                yield MemberList(id="members")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        """Draw everything once, keep the reconnect countdown ticking, start the sender and the event pump."""
        self.query_one("#new-below").display = False
        self.query_one("#block").display = False
        self.query_one("#typing").display = False
        self.query_one(ChatLog).quote_of = lambda line: self.model.reply_quote(self.model.current, line)
        self._show_current()
        self.set_interval(0.5, self._tick)
        self.set_interval(MARK_READ_EVERY, self._mark_current_read)
        self.run_worker(self.send_lines(), name="send_lines", group="send_lines", exit_on_error=False)
        if self.client is not None:
            self.run_worker(
                self.receive_events(self.client), name="receive_events", group="net", exit_on_error=False
            )

    def on_unmount(self) -> None:
        """Remove the texts written out to be sent as files."""
        if self._paste_dir is not None:
            shutil.rmtree(self._paste_dir, ignore_errors=True)

    def _max_text(self) -> int:
        """The longest message the server takes, in bytes (as its `welcome` announced)."""
        return self.client.limits.max_text if self.client is not None else DEFAULT_MAX_TEXT

    # -- Rendering ---------------------------------------------------------------------------------------

    def render_changes(self, changes: Changes) -> None:
        """Update the widgets that `changes` touched."""
        model = self.model
        if model.current != self._shown_key:
            self._show_current()
        else:
            key = model.current
            log = self.query_one(ChatLog)
            log.me = model.nick
            updated = [update.line for update in changes.updated if update.key == key]
            if updated:
                log.update_lines(updated)  # in place, the view kept (messages edited, deleted, reacted to)
            if key in changes.redraw and not log.shows(model.current_buffer):
                new = changes.lines.get(key, [])
                if new and log.shows(model.current_buffer, plus=new):  # updates, and lines at the end
                    log.add(new)
                else:  # lines inserted (older history, a backfill): lay the log out again
                    log.show_keeping_place(model.current_buffer)
            if self._jump_target is not None and key in changes.redraw:
                self.run_worker(self._continue_jump(), group="jump", exclusive=True)
            elif key in changes.lines and key not in changes.redraw:
                log.add(changes.lines[key])
            if key in changes.members:
                self._refresh_members()
            if key in changes.topic:
                self.query_one(TopicBar).refresh_from(model.current_buffer)
            if key in changes.pending or changes.status:
                self._refresh_pending()
            if key in changes.typing:
                self._refresh_typing()
            if self._jump is not None and self._jump[0] == key and key in changes.redraw:
                self._scroll_to_jump()
        if changes.buffers or changes.lines.keys() - {model.current}:
            self.query_one(BufferList).refresh_from(model)
        if changes.status:
            self._refresh_status()
        if changes.transfers:
            self.query_one(TransfersPanel).refresh_from(model.transfers)
        screen = self.app.screen
        if changes.search and isinstance(screen, SearchScreen) and screen.view is model.search is not None:
            screen.show(model.search)
        self._announce(changes)

    def _show_current(self) -> None:
        model = self.model
        self._shown_key = model.current
        buffer = model.current_buffer
        log = self.query_one(ChatLog)
        log.me = model.nick
        log.clear_selection()
        log.show(buffer)
        self.query_one(TopicBar).refresh_from(buffer)
        self.query_one(BufferList).refresh_from(model)
        self._refresh_members()
        self._refresh_pending()
        self._refresh_status()
        self._refresh_typing()

    def _refresh_typing(self) -> None:
        """Say under the log who is typing in the buffer shown (names as text, never markup)."""
        nicks = self.model.typists(self.model.current)
        widget = self.query_one("#typing", Static)
        widget.display = bool(nicks)
        if nicks:
            names = ", ".join(safe(nick) for nick in nicks[:3]) + (" and others" if len(nicks) > 3 else "")
            verb = "is" if len(nicks) == 1 else "are"
            widget.update(Text(f"{names} {verb} typing…", style="italic", end="", no_wrap=True))

    def _refresh_members(self) -> None:
        buffer = self.model.current_buffer
        self.query_one("#members-panel").set_class(buffer.kind is not BufferKind.ROOM, "-empty")
        online = self.model.status is ConnectionStatus.CONNECTED
        self.query_one(MemberList).refresh_from(buffer, self.model.nick, online=online)

    def _refresh_pending(self) -> None:
        connected = self.model.status is ConnectionStatus.CONNECTED
        self.query_one(PendingStrip).refresh_from(
            self.model.current_buffer, self.model.nick, connected=connected
        )

    def _refresh_status(self) -> None:
        self.query_one(StatusLine).refresh_from(self.model, self.address)

    def _tick(self) -> None:
        if self.model.status is ConnectionStatus.RECONNECTING:
            self._refresh_status()
        if self.query_one("#typing").display:
            self._refresh_typing()  # a typist whose start has expired goes
        panel = self.query_one(TransfersPanel)
        if panel.lingering:
            panel.prune()

    # -- Read markers --------------------------------------------------------------------------------------

    def _mark_current_read(self) -> None:
        """Once a second: if the newest line of the buffer on screen has been in view (the terminal has the
        focus, the log is not scrolled up above unseen lines), move the nick's read marker to it."""
        if not self.app.app_focus or not self.query_one(ChatLog).newest_seen:
            return
        up_to = attention.seen(self.model, self.model.current)
        if up_to is not None:
            self._send_mark(self.model.current_buffer, up_to)

    def action_mark_all_read(self) -> None:
        """F4: mark every room and conversation read."""
        changes = Changes()
        for buffer, up_to in attention.all_seen(self.model, changes):
            self._send_mark(buffer, up_to)
        self.render_changes(changes)

    def _send_mark(self, buffer: Buffer, up_to: int) -> None:
        client = self.client
        if client is None or not client.connected or buffer.kind is BufferKind.SERVER:
            return  # the next login's markers, and the next look, settle it
        room = buffer.name if buffer.kind is BufferKind.ROOM else None
        peer = buffer.name if buffer.kind is BufferKind.DIRECT else None

        async def send() -> None:
            try:
                await client.mark_read(up_to, room=room, peer=peer, wait=False)
            except ClientError as error:
                log.debug("mark_read of %s not sent: %s", buffer.name, error)

        self.run_worker(send(), name="mark_read", group="mark_read", exit_on_error=False)

    def _announce(self, changes: Changes) -> None:
        for key, line in changes.mentions:
            buffer = self.model.buffers.get(key)
            if buffer is None or (key == self.model.current and self.app.app_focus):
                continue
            if buffer.kind is BufferKind.DIRECT:
                what = "Message from"
            else:
                what = "Mention in" if line.mention else "Message in"
            body = f"{safe(line.nick or '')}: {safe(line.text)}"
            self.notify(body[:300], title=f"{what} {safe(buffer.name)}", markup=False, timeout=6)
            if self.bell:
                self.app.bell()
            if self.desktop is not None:
                self.desktop(f"{what} {buffer.name}", f"{line.nick or ''}: {line.text}")  # cleaned there
        for alert in changes.alerts:
            self.notify(safe(alert)[:300], severity="error", markup=False, timeout=6)

    # -- Events ------------------------------------------------------------------------------------------

    async def receive_events(self, client: ChatClient) -> None:
        """The event pump: take the client's events in batches and hand each to `on_net_events`.

        Runs until the client is closed (its last event is `Closed`); cancelled when the app exits, it
        closes the client on its way out.
        """
        try:
            while batch := await client.next_events(NET_BATCH):
                self.post_message(NetEvents(batch))
        finally:
            await client.close()

    def on_net_events(self, message: NetEvents) -> None:
        """Fold a batch of network events into the model and redraw what changed."""
        self.render_changes(self.model.apply_all(message.events))

    @on(Input.Submitted, "#input")
    def line_typed(self, event: Input.Submitted) -> None:
        """Queue the line Enter took (the input cleared itself already) for the sender."""
        event.stop()
        self._typed.put_nowait(event.value)
        self._sent_line = True  # the input empties next: that is no "stopped typing" (the message says it)

    async def send_lines(self) -> None:
        """Run the typed lines one at a time, in typing order (the sender worker)."""
        while True:
            line = await self._typed.get()
            try:
                await self.run_line(line)
            except Exception:  # a bug: say so, and keep running the lines typed after it
                log.exception("running a typed line failed")
                self.render_changes(self.model.notice("internal error: see the log file", error=True))

    async def run_line(self, line: str) -> None:
        """Run one typed line (a message or a command)."""
        word = line.strip().lower()
        if word.startswith("/help") and (word == "/help" or word.startswith("/help ")):
            self.show_help(line.split(maxsplit=1)[1] if " " in line.strip() else "")
            return
        if self.controller is None:
            self.render_changes(self.model.notice("not connected", error=True))
            return
        if word == "/search" or word.startswith("/search "):
            rest = line.strip()[len("/search") :].strip()
            if rest != "--more":
                self.open_search(rest)
                return
        if word == "/register":
            # Alone, it asks for the password in a dialog: twice, masked (see
            # chat_client.tui.screens.register).
            self.app.push_screen(RegisterDialog(self.model.nick), self._register)
            return
        if word == "/unregister":
            self.app.push_screen(UnregisterDialog(self.model.nick), self._unregister)
            return
        outcome: Outcome = await self.controller.run(line)
        self.render_changes(outcome.changes)
        if outcome.quit:
            from chat_client.tui.app import ChatApp

            if isinstance(self.app, ChatApp):
                await self.app.quit_chat(outcome.quit_reason)

    @on(Input.Changed, "#input")
    async def typed(self, event: Input.Changed) -> None:
        """Tell the room we are typing (or stopped: the input emptied); never for a command. The client
        sends at most one start every few seconds, and none with `send_typing` off."""
        buffer = self.model.current_buffer
        if self.client is None or buffer.kind is not BufferKind.ROOM or not self.client.connected:
            return
        text, sent = event.value, self._sent_line
        self._sent_line = False
        try:
            if text and not text.startswith("/"):
                await self.client.typing(buffer.name, True)
            elif not text and not sent:
                await self.client.typing(buffer.name, False)
        except ClientError:
            pass  # typing is a hint: never worth an error

    # -- Search ------------------------------------------------------------------------------------------

    def action_search(self) -> None:
        """Open the search panel (Ctrl+F)."""
        self.open_search("")

    def open_search(self, query: str) -> None:
        """Open the search panel, searching for `query` at once if given (the last search shown if not)."""
        view = self.model.search if not query else None
        screen = SearchScreen(self._search, self.model.nick, query=query, view=view)
        self.app.push_screen(screen, self._jump_to_hit)

    async def _search(self, command: SearchCommand) -> SearchView | str:
        """Run a search for the panel: the view with its hits, or what went wrong."""
        if self.controller is None:
            return "not connected"
        try:
            return await self.controller.search(command, wait=True)
        except CommandError as error:
            return str(error)
        except ServerError as error:
            return f"refused: {error.message or error.code}"
        except ClientError as error:
            return f"not sent: {error}"

    async def _jump_to_hit(self, hit: SearchHit | None) -> None:
        """Show the hit picked in the panel in its room (or conversation), with the history around it."""
        if hit is None:
            return
        model = self.model
        if hit.room is not None:
            key = room_key(hit.room)
            if key not in model.buffers:
                self.render_changes(model.notice(f"you are no longer in {hit.room}", error=True))
                return
        else:
            mine = fold(hit.nick) == fold(model.nick)
            key = model.conversation(hit.to if mine and hit.to is not None else hit.nick).key
        self.switch_to(key)
        self._jump = (key, hit.id)
        buffer = model.buffers[key]
        if any(line.id == hit.id for line in buffer.lines):
            self.call_after_refresh(self._scroll_to_jump)
            return
        if self.client is None or not self.client.connected:
            self._jump = None
            self.render_changes(model.notice("not connected: cannot load that message", error=True))
            return
        oldest = buffer.oldest_id
        model.expect_context(key, hit.id)
        room = buffer.name if buffer.kind is BufferKind.ROOM else None
        peer = buffer.name if buffer.kind is BufferKind.DIRECT else None
        try:
            await self.client.fetch_history(
                room, peer=peer, before=hit.id + 1, limit=JUMP_CONTEXT, wait=False
            )
            await self.client.fetch_history(
                room, peer=peer, after=hit.id, before=oldest, limit=JUMP_CONTEXT, forward=True, wait=False
            )
        except ClientError as error:
            buffer.context = None
            self._jump = None
            self.render_changes(model.notice(f"not sent: {error}", error=True))

    def _scroll_to_jump(self) -> None:
        """Bring the line jumped to into view, once it is laid out (after any redraw keeping the place)."""
        jump = self._jump
        if jump is None or jump[0] != self.model.current:
            return

        def scroll() -> None:
            if self._jump == jump and self.query_one(ChatLog).scroll_to_message(jump[1]):
                self._jump = None

        self.call_after_refresh(scroll)

    @on(ChatInput.BlockChanged)
    def show_block(self, event: ChatInput.BlockChanged) -> None:
        """Show the lines of a multi-line message above the input (the input holds its last line)."""
        block = event.input.block
        widget = self.query_one("#block", Static)
        widget.display = bool(block)
        if block:
            lines = block.split("\n")[:-1]
            total = len(lines) + 1
            preview = " ⏎ ".join(visible_line[:60] for visible_line in lines[-2:])
            more = "… ⏎ " if len(lines) > 2 else ""
            text = Text(f"{total} lines: ", style="bold", end="", no_wrap=True, overflow="ellipsis")
            text.append(f"{more}{safe(preview)} ⏎", style="")
            text.append("  (Backspace at the start of the line edits them, Escape drops them)", style="dim")
            widget.update(text)

    @on(ChatInput.TooLong)
    def too_long(self, event: ChatInput.TooLong) -> None:
        """Say why the message was not sent, and offer to send it as a file (or line by line if that fits)."""
        answers = [("file", "Send as a file")]
        lines = [line for line in event.text.split("\n") if line.strip()]
        if len(lines) > 1 and all(len(line.encode()) <= event.limit for line in lines):
            answers.append(("lines", f"Send as {len(lines)} messages"))
        question = (
            f"This message is {event.size:,} bytes; the server takes at most {event.limit:,} in one message. "
            "Nothing was sent: it is still in the input."
        )

        def answered(answer: str | None) -> None:
            if answer == "file":
                self._send_as_file(event.input.take())
            elif answer == "lines":
                for line in event.input.take().split("\n"):
                    if line.strip():
                        self._typed.put_nowait(line)

        self.app.push_screen(ChoiceDialog(question, answers), answered)

    @on(ChatInput.ManyLines)
    def many_lines(self, event: ChatInput.ManyLines) -> None:
        """Ask whether a message of many lines goes as one message or one per line."""
        count = event.text.count("\n") + 1
        lines = [line for line in event.text.split("\n") if line.strip()]
        question = f"Send these {count} lines as one message, or as {len(lines)} messages?"
        answers = [("one", "As one message"), ("lines", f"As {len(lines)} messages")]

        def answered(answer: str | None) -> None:
            if answer == "one":
                self._typed.put_nowait(event.input.take())
            elif answer == "lines":
                for line in event.input.take().split("\n"):
                    if line.strip():
                        self._typed.put_nowait(line)

        self.app.push_screen(ChoiceDialog(question, answers), answered)

    def _send_as_file(self, line: str) -> None:
        """Write the message's text to a file and offer it here with /send."""
        if self._paste_dir is None:
            self._paste_dir = Path(tempfile.mkdtemp(prefix="mpchat-"))
        number = sum(1 for _ in self._paste_dir.iterdir()) + 1
        path = self._paste_dir / f"message-{number}.txt"
        path.write_text(sent_text(line) or line, encoding="utf-8")
        self._typed.put_nowait(f"/send {path}")

    async def _register(self, answer: NewPassword | None) -> None:
        """Send the registration the dialog asked for (its answer, or refusal, arrives as an event)."""
        if answer is None or self.client is None:
            return
        try:
            await self.client.register(answer.password, old_password=answer.old_password, wait=False)
        except ClientError as error:
            self.render_changes(self.model.notice(f"not sent: {error}", error=True))

    async def _unregister(self, password: str | None) -> None:
        """Send the unregistration the dialog asked for (its answer, or refusal, arrives as an event)."""
        if password is None or self.client is None:
            return
        try:
            await self.client.unregister(password, wait=False)
        except ClientError as error:
            self.render_changes(self.model.notice(f"not sent: {error}", error=True))

    @on(OptionList.OptionSelected, "#rooms")
    def pick_buffer(self, event: OptionList.OptionSelected) -> None:
        """Show the buffer picked in the room list."""
        if event.option.id is not None:
            self.switch_to(event.option.id)

    def switch_to(self, key: str) -> None:
        """Show buffer `key` and put the focus back on the input."""
        if self.model.switch(key):
            self._show_current()
        self.query_one(ChatInput).focus()

    def prefill(self, text: str) -> None:
        """Put `text` in the input line (the palette uses it for commands that take arguments)."""
        chat_input = self.query_one(ChatInput)
        chat_input.value = text
        chat_input.cursor_position = len(text)
        chat_input.focus()

    @on(ChatLog.NewBelow)
    def show_new_below(self, event: ChatLog.NewBelow) -> None:
        """Show (or hide) how many new lines are below the view."""
        marker = self.query_one("#new-below", Static)
        marker.display = event.count > 0
        if event.count:
            plural = "s" if event.count != 1 else ""
            marker.update(Text(f"↓ {event.count} new message{plural} below (PageDown, End)", end=""))

    @on(ChatLog.ReachedTop)
    async def load_older(self) -> None:
        """Ask the server for the messages before the oldest one shown."""
        buffer = self.model.current_buffer
        oldest = buffer.oldest_id
        if (
            self.client is None
            or buffer.kind is BufferKind.SERVER
            or not buffer.more_before
            or buffer.fetching
            or oldest is None
            or not self.client.connected
        ):
            return
        buffer.fetching = True
        if buffer.kind is BufferKind.DIRECT:
            await self.client.fetch_history(peer=buffer.name, before=oldest, limit=HISTORY_PAGE, wait=False)
        else:
            await self.client.fetch_history(buffer.name, before=oldest, limit=HISTORY_PAGE, wait=False)

    def on_resize(self, event: Resize) -> None:
        """Hide the member list on narrow terminals."""
        self.set_class(event.size.width < NARROW_WIDTH, "-narrow")

    # -- Actions -----------------------------------------------------------------------------------------

    def _step(self, delta: int) -> None:
        keys = [b.key for b in self.model.ordered()]
        index = keys.index(self.model.current) if self.model.current in keys else 0
        self.switch_to(keys[(index + delta) % len(keys)])

    def action_next_buffer(self) -> None:
        """Show the next room or conversation."""
        self._step(1)

    def action_previous_buffer(self) -> None:
        """Show the previous room or conversation."""
        self._step(-1)

    def action_scroll_log(self, direction: int) -> None:
        """Scroll the log a page up or down (the focus stays on the input)."""
        log = self.query_one(ChatLog)
        if direction < 0:
            log.scroll_page_up(animate=False)
            if log.scroll_y <= 0:
                log.post_message(ChatLog.ReachedTop())
        elif log.scroll_y + log.scrollable_content_region.height >= log.max_scroll_y:
            # The last page: follow new lines again. (Scrolling at the bottom would release the anchor.)
            log.anchor()
        else:
            log.scroll_page_down(animate=False)

    def action_jump_to_newest(self, always: bool = False) -> None:
        """Show the newest line of the log (End does so only while the input is empty)."""
        if not always and self.query_one(ChatInput).value:
            raise SkipAction  # End then moves the input's cursor, as usual
        self.query_one(ChatLog).jump_to_end()

    def action_show_help(self) -> None:
        """Open the help screen."""
        self.show_help("")

    def show_help(self, query: str) -> None:
        """Open the help screen, searching for `query` (a command name after /help)."""
        self.app.push_screen(HelpScreen(self.help_rows(), query.strip().lstrip("/")))

    def help_rows(self) -> list[HelpRow]:
        """Every key active while typing (the input line's, this screen's, the app's), the keys of the
        message cursor, then the commands."""
        chat_input = self.query_one(ChatInput)
        sections: list[tuple[str, DOMNode]] = [("Keys in the input line", chat_input)]
        sections += [("Keys in the chat", node) for node in chat_input.ancestors if node is not self.app]
        sections.append(("Keys everywhere", self.app))
        # The message cursor has the focus while a message is selected: its keys shadow none of the above.
        cursor = [("Keys on a selected message (Alt+Up selects)", self.query_one(ChatLog))]
        return [*key_rows(sections), *key_rows(cursor), *command_rows()]

    def action_toggle_bell(self) -> None:
        """Turn the mention bell on or off."""
        self.bell = not self.bell
        self.notify("mention bell on" if self.bell else "mention bell off", markup=False)

    def action_get_latest_file(self) -> None:
        """Put `/get ID` of the newest file offered in this buffer in the input (Enter downloads it)."""
        offers = [line.id for line in self.model.current_buffer.lines if line.kind is LineKind.FILE]
        if not offers or offers[-1] is None:
            self.notify("no file has been offered here", markup=False)
            return
        self.prefill(f"/get {offers[-1]}")

    # -- The message cursor and its actions ---------------------------------------------------------------

    def action_select_message(self) -> None:
        """Select the newest message of the log (then Up and Down move, the action keys act on it)."""
        log = self.query_one(ChatLog)
        if log.select_last():
            log.focus()
        else:
            self.notify("no message to select here", markup=False)

    @on(ChatLog.SelectionEnded)
    def selection_ended(self) -> None:
        """Back to the input."""
        self.query_one(ChatInput).focus()

    @on(ChatLog.Act)
    def act(self, event: ChatLog.Act) -> None:
        """An action key on the selected message."""
        line, log = event.line, self.query_one(ChatLog)
        message_id = line.id
        if message_id is None:
            return
        if event.action in ("reply", "edit") and line.deleted:
            self.notify("that message was deleted", markup=False)
        elif event.action == "reply":
            log.clear_selection()
            self.prefill(f"/reply {message_id} ")
        elif event.action == "edit":
            if not line.own or line.kind is LineKind.FILE:
                self.notify("you can edit only your own messages", markup=False)
                return
            log.clear_selection()
            chat_input = self.query_one(ChatInput)
            chat_input.set_message(f"/edit {message_id} {line.text}")
            chat_input.focus()
        elif event.action == "delete":
            self._confirm_delete(line, message_id)
        elif event.action == "react":
            self._pick_reaction(line, message_id)
        elif event.action == "copy":
            self.app.copy_to_clipboard(line.text)
            self.notify("copied the message's text", markup=False)
        elif event.action == "jump":
            self.run_worker(self._jump_to_parent(line), group="jump", exclusive=True)
        elif event.action == "thread":
            self._show_thread(line, message_id)
        elif event.action == "who":
            who = reactions_by_whom(line)
            self.notify(safe(who)[:500] if who else "no reactions", title="Reactions", markup=False)

    def _confirm_delete(self, line: Line, message_id: int) -> None:
        whose = "your message" if line.own else f"{safe(line.nick or '?')}'s message"
        question = f'Delete {whose} #{message_id}? Everyone will see "message deleted" in its place.'

        def answered(answer: str | None) -> None:
            if answer == "delete":
                self.query_one(ChatLog).clear_selection()
                self.query_one(ChatInput).focus()
                self._typed.put_nowait(f"/delete {message_id}")

        self.app.push_screen(ChoiceDialog(question, [("delete", "Delete")]), answered)

    def _pick_reaction(self, line: Line, message_id: int) -> None:
        me = fold(self.model.nick)
        mine = [r.reaction for r in line.reactions if any(fold(nick) == me for nick in r.nicks)]

        def picked(reaction: str | None) -> None:
            if reaction is None:
                return
            self.recent_reactions = [reaction, *(r for r in self.recent_reactions if r != reaction)]
            verb = "unreact" if reaction in mine else "react"
            self._typed.put_nowait(f"/{verb} {message_id} {reaction}")

        self.app.push_screen(ReactionPicker(picker_choices(self.recent_reactions), mine), picked)

    async def _jump_to_parent(self, line: Line) -> None:
        """Select the message `line` replies to, loading older history page by page until it is there."""
        if line.reply_to is None:
            self.notify("this message is not a reply", markup=False)
        elif not self.query_one(ChatLog).select_id(line.reply_to):
            self._jump_target = (self.model.current, line.reply_to)
            self.notify(f"loading older messages to find #{line.reply_to}", markup=False)
            await self.load_older()

    async def _continue_jump(self) -> None:
        """After a page of older history: select the message looked for, or load the next page, or give up."""
        if self._jump_target is None:
            return
        key, message_id = self._jump_target
        buffer = self.model.current_buffer
        if key != self.model.current or self.query_one(ChatLog).select_id(message_id):
            self._jump_target = None
        elif buffer.fetching:
            return
        elif buffer.more_before and self.client is not None and self.client.connected:
            await self.load_older()
        else:
            self._jump_target = None
            self.notify(f"message #{message_id} is not in this room's history", markup=False)

    def _show_thread(self, line: Line, message_id: int) -> None:
        root = line
        if line.reply_to is not None:  # a reply: show the thread it belongs to
            found = self.model.find_message(line.reply_to, self.model.current)
            root = found[1] if found is not None else line
        root_id = root.id if root.id is not None else message_id
        replies = self.model.replies_to(self.model.current, root_id)
        slot_of = self.model.current_buffer.colours.slot
        self.app.push_screen(ThreadPanel(root, replies, slot_of, self.model.nick))

    def action_toggle_members(self) -> None:
        """Show or hide the member list."""
        self.toggle_class("-hide-members")
