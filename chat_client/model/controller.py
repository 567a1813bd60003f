"""Carry out what the user typed: parse the line, make the request, and say what to show.

Shared by the TUI and the plain line mode, so both understand exactly the same commands. Requests are
sent without waiting for their answers: the answers (and refusals) come back as events through the
model, so a slow server never freezes the input line.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat_client.model import attention
from chat_client.model import commands as cmd
from chat_client.model.buffers import merge
from chat_client.model.chat import SERVER_KEY, BufferKind, Changes, ChatModel, room_key
from chat_client.model.moderation import key_notice
from chat_client.model.search import SearchView
from chat_client.model.status_events import session_lines
from chat_client.net.client import ChatClient
from chat_client.net.errors import (
    ClientError,
    FilesUnsupported,
    InvalidRequest,
    NotConnected,
    TransferError,
    UnknownFile,
)
from shared import nick_problem

#: Messages `/more` asks for at once.
MORE_PAGE = 100


@dataclass(slots=True)
class Outcome:
    """What running one line did: lines to show, and whether the user asked to quit."""

    changes: Changes
    quit: bool = False
    quit_reason: str | None = None
    switched: bool = False


class Controller:
    """Runs input lines against one client and one model."""

    def __init__(self, client: ChatClient, model: ChatModel) -> None:
        self.client = client
        self.model = model

    async def run(self, line: str) -> Outcome:
        """Run one input line; errors become error lines, never exceptions."""
        line = line.rstrip("\r\n")
        if not line.strip():
            return Outcome(Changes())
        try:
            command = cmd.parse(line)
        except cmd.CommandError as error:
            return Outcome(self.model.notice(str(error), error=True))
        return await self.execute(command)

    async def execute(self, command: cmd.Command) -> Outcome:
        """Carry out one parsed command (the plain mode's password prompts build theirs); errors become
        error lines, never exceptions."""
        try:
            return await self._execute(command)
        except cmd.CommandError as error:
            return Outcome(self.model.notice(str(error), error=True))
        except InvalidRequest as error:
            return Outcome(self.model.notice(f"not sent: {error.message}", error=True))
        except NotConnected:
            return Outcome(self.model.notice("not connected: try again once reconnected", error=True))
        except ClientError as error:
            return Outcome(self.model.notice(f"not sent: {error}", error=True))

    async def _execute(self, command: cmd.Command) -> Outcome:
        model, client = self.model, self.client
        match command:
            case cmd.SayCommand(text=text) | cmd.MeCommand(text=text):
                await self._send_to_current(text, action=isinstance(command, cmd.MeCommand))
            case cmd.JoinCommand(room=room, key=room_secret):
                key = room_key(room)
                if key in model.buffers and model.buffers[key].joined:
                    model.switch(key)
                    return Outcome(Changes(buffers=True), switched=True)
                model.expect_join(room)
                await client.join(room, key=room_secret, wait=False)
            case cmd.LeaveCommand(room=room, reason=reason):
                target = room or self._current_room()
                await client.leave(target, reason, wait=False)
            case cmd.MsgCommand(nick=nick, text=text):
                problem = nick_problem(nick, client.limits.max_nick)
                if problem is not None:
                    raise cmd.CommandError(problem)
                if text:
                    await client.tell(nick, text)
                buffer = model.conversation(nick)
                model.switch(buffer.key)
                return Outcome(Changes(buffers=True), switched=True)
            case cmd.NickCommand(nick=nick, password=password):
                await client.change_nick(nick, password=password, wait=False)
            case cmd.RegisterCommand(password=password, old_password=old):
                await client.register(password, old_password=old, wait=False)
            case cmd.UnregisterCommand(password=password):
                await client.unregister(password, wait=False)
            case cmd.TopicCommand(topic=None):
                self._current_room()
                buffer = model.current_buffer
                text = (
                    f"topic of {buffer.name}: {buffer.topic}"
                    if buffer.topic
                    else f"{buffer.name} has no topic"
                )
                return Outcome(model.notice(text))
            case cmd.TopicCommand(topic=topic):
                await client.set_topic(self._current_room(), topic or "", wait=False)
            case cmd.AwayCommand(message=message):
                await client.set_away(message, wait=False)
            case cmd.NotifyCommand(level=None) | cmd.KeywordsCommand(words=None):
                return Outcome(model.notice(attention.describe_settings(model)))
            case cmd.NotifyCommand(level=level):
                buffer = model.current_buffer
                if buffer.kind is BufferKind.SERVER:
                    raise cmd.CommandError("/notify applies to the room or conversation on screen")
                in_room = buffer.name if buffer.kind is BufferKind.ROOM else None
                with_peer = buffer.name if buffer.kind is BufferKind.DIRECT else None
                chosen = None if level == "default" else level
                await client.set_notify(chosen, room=in_room, peer=with_peer, wait=False)
            case cmd.KeywordsCommand(words=words):
                await client.set_keywords(words or (), wait=False)
            case cmd.WhoCommand(room=room):
                target = room or self._current_room()
                model.expect_member_list(target)
                await client.who(target, wait=False)
            case cmd.RoomsCommand():
                await client.list_rooms(wait=False)
            case cmd.SendCommand(path=path):
                await self._send_file(path)
            case cmd.GetCommand(offer_id=offer_id):
                try:
                    client.get_file(offer_id)
                except (UnknownFile, FilesUnsupported) as error:
                    raise cmd.CommandError(str(error)) from None
            case cmd.CancelCommand(number=number):
                if not client.cancel_transfer(number):
                    raise cmd.CommandError(f"no running transfer {number}")
            case cmd.MoreCommand():
                await self._more_history()
            case cmd.SearchCommand():
                await self.search(command, wait=False)
            case cmd.ReplyCommand(message_id=message_id, text=text):
                await self._reply(message_id, text)
            case cmd.EditCommand(message_id=message_id, text=text):
                await client.edit(message_id, text, wait=False)
            case cmd.DeleteCommand(message_id=message_id, reason=reason):
                await client.delete(message_id, reason=reason, wait=False)
            case cmd.ReactCommand(message_id=message_id, reaction=reaction):
                await client.react(message_id, reaction, wait=False)
            case cmd.UnreactCommand(message_id=message_id, reaction=reaction):
                await client.unreact(message_id, reaction, wait=False)
            case cmd.SubstituteCommand(old=old, new=new, every=every):
                line = model.last_own_message()
                if line is None or line.id is None:
                    raise cmd.CommandError("no message of yours here to correct")
                if old not in line.text:
                    raise cmd.CommandError(f"your last message here does not contain {old!r}")
                text = line.text.replace(old, new) if every else line.text.replace(old, new, 1)
                if not text.strip():
                    raise cmd.CommandError("that would leave the message empty: /delete it instead")
                await client.edit(line.id, text, wait=False)
            case cmd.HelpCommand(command=name):
                changes = Changes()
                for text in cmd.help_text(name):
                    more = model.notice(text)
                    for key, lines in more.lines.items():
                        changes.lines.setdefault(key, []).extend(lines)
                return Outcome(changes)
            case cmd.ModerateCommand():
                await client.moderate(command.request(self._current_room()), wait=False)
            case cmd.StatsCommand(nick=nick):
                await client.stats(nick, wait=False)
            case cmd.KeyCommand():
                buffer = model.buffers[room_key(self._current_room())]
                return Outcome(model.notice(key_notice(buffer)))
            case cmd.ReconnectCommand():
                client.reconnect_now()
                return Outcome(model.notice("reconnecting now"))
            case cmd.LagCommand():
                return Outcome(model.notice(f"lag: {cmd.describe_lag(client.lag)}"))
            case cmd.SessionsCommand():
                changes = Changes()
                for text in session_lines(model):
                    merge(changes, model.notice(text))
                return Outcome(changes)
            case cmd.QuitCommand(reason=reason):
                return Outcome(Changes(), quit=True, quit_reason=reason)
        return Outcome(Changes())

    async def search(self, command: cmd.SearchCommand, *, wait: bool) -> SearchView:
        """Send a search (or, for `/search --more`, ask for the next page of the last one) and return the
        model's view of it; with `wait`, once the page has arrived (a refusal raises `ServerError`), else at
        once (the page arrives as an event). Raises `CommandError` for `--more` with nothing more to show."""
        model = self.model
        if command.more:
            view = model.search
            if view is None or not view.more:
                raise cmd.CommandError("no more search results: /search WORDS starts a search")
            command, offset = view.command, len(view.hits)
        else:
            view = model.search = SearchView(command)
            offset = 0
        view.waiting = True
        reply = await self.client.search(
            command.query,
            room=command.room,
            direct=command.direct,
            nick=command.nick,
            since=command.since,
            until=command.until,
            offset=offset,
            wait=wait,
        )
        if reply is not None and model.search is view:
            view.take(reply)
        return view

    async def _more_history(self) -> None:
        """Ask for the next page of the messages a reconnect skipped in the current room (oldest first);
        the model inserts it where it belongs when it arrives."""
        buffer = self.model.current_buffer
        gap = buffer.gap
        if buffer.kind is not BufferKind.ROOM or gap is None:
            raise cmd.CommandError("no skipped messages to show here")
        if buffer.fetching:
            return
        buffer.fetching = True
        await self.client.fetch_history(
            buffer.name, after=gap.after, before=gap.before, limit=MORE_PAGE, forward=True, wait=False
        )

    async def _reply(self, message_id: int, text: str) -> None:
        """Send a reply to message `message_id` where that message is (its room or conversation, found in the
        buffers: the current one first), or to the current buffer when it is not loaded (the server says
        `no_such_message` if it is not there either)."""
        found = self.model.find_message(message_id)
        buffer = self.model.buffers[found[0]] if found is not None else self.model.current_buffer
        if buffer.kind is BufferKind.SERVER:
            raise cmd.CommandError(f"no message {message_id} here: switch to its room or conversation")
        if buffer.kind is BufferKind.DIRECT:
            await self.client.tell(buffer.name, text, reply_to=message_id)
        else:
            await self.client.say(buffer.name, text, reply_to=message_id)

    def _current_room(self) -> str:
        buffer = self.model.current_buffer
        if buffer.kind is not BufferKind.ROOM:
            raise cmd.CommandError("this is not a room: name one, or switch to a room first")
        return buffer.name

    async def _send_file(self, path: str) -> None:
        buffer = self.model.current_buffer
        if buffer.kind is BufferKind.SERVER:
            raise cmd.CommandError("this is the server buffer: /join a room or /msg someone first")
        direct = buffer.kind is BufferKind.DIRECT
        try:
            await self.client.send_file(
                path, room=None if direct else buffer.name, to=buffer.name if direct else None
            )
        except (TransferError, FilesUnsupported) as error:
            raise cmd.CommandError(f"cannot send: {error}") from None

    async def _send_to_current(self, text: str, *, action: bool) -> None:
        buffer = self.model.current_buffer
        if buffer.key == SERVER_KEY:
            raise cmd.CommandError("this is the server buffer: /join a room or /msg someone first")
        if buffer.kind is BufferKind.DIRECT:
            await self.client.tell(buffer.name, text, action=action)
        else:
            await self.client.say(buffer.name, text, action=action)
