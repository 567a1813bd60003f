"""The small panels around the log: room list, member list, topic bar, status line, pending strip."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from chat_client.model.chat import Buffer, ChatModel, ConnectionStatus
from chat_client.model.moderation import mode_flags
from chat_client.tui.render import buffer_label, nick_colour, render_pending, safe
from shared import fold


class BufferList(OptionList):
    """Rooms and conversations, with unread counts and a mention marker; selecting one shows it."""

    def refresh_from(self, model: ChatModel) -> None:
        """Rebuild the rows from the model, keeping the current buffer highlighted."""
        buffers = model.ordered()
        self.clear_options()
        self.add_options([Option(buffer_label(b, current=b.key == model.current), id=b.key) for b in buffers])
        keys = [b.key for b in buffers]
        if model.current in keys:
            self.highlighted = keys.index(model.current)


class MemberList(Static):
    """The members of the current room, operators first and marked `@`, away members dimmed; the whole
    list greyed out (and titled "offline") while the connection is down, since it may be out of date."""

    def refresh_from(self, buffer: Buffer, my_nick: str, *, online: bool = True) -> None:
        """Show `buffer`'s members."""
        text = Text(end="")
        if not online and buffer.members:
            text.append("(offline)\n", style="dim italic")
        members = sorted(buffer.members.values(), key=lambda m: (not m.op, fold(m.nick)))
        for index, member in enumerate(members):
            if index:
                text.append("\n")
            text.append("@" if member.op else " ", style="bold yellow" if online else "dim")
            colour = nick_colour(member.nick, buffer.colours.slot)
            style = f"bold {colour}" if member.away is None and online else "dim"
            text.append(safe(member.nick), style=style)
            if fold(member.nick) == fold(my_nick):
                text.append(" (you)", style="dim")
            if member.away is not None:
                text.append(" away", style="dim italic")
        self.update(text)


class TopicBar(Static):
    """The name and topic of the current buffer."""

    def refresh_from(self, buffer: Buffer) -> None:
        """Show `buffer`'s name and topic."""
        text = Text(end="", no_wrap=True, overflow="ellipsis")
        text.append(safe(buffer.name), style="bold")
        modes = mode_flags(buffer.modes)
        if modes:
            text.append(f" [{modes}]", style="dim")
        if buffer.topic:
            text.append("  " + safe(buffer.topic))
        self.update(text)


class StatusLine(Static):
    """Connection state, server, nick and lag; counts down to the next reconnect attempt."""

    def refresh_from(self, model: ChatModel, address: str) -> None:
        """Show the model's connection status."""
        text = Text(end="", no_wrap=True, overflow="ellipsis")
        status = model.status
        if status is ConnectionStatus.CONNECTED:
            text.append("● connected", style="bold green")
        elif status is ConnectionStatus.RECONNECTING:
            text.append("◌ reconnecting", style="bold yellow")
            if model.reconnect_at is not None:
                seconds = max(0.0, model.reconnect_at - model.clock())
                text.append(f" in {seconds:.0f} s", style="bold yellow")
        elif status is ConnectionStatus.CONNECTING:
            text.append("◌ connecting", style="bold yellow")
        else:
            text.append("○ offline", style="bold red")
        text.append(f"  {safe(model.server_name or address)}")
        if model.server_name:
            text.append(f" ({safe(address)})", style="dim")
        text.append("  as ")
        colour = nick_colour(model.nick, model.current_buffer.colours.slot)
        text.append(safe(model.nick), style=f"bold {colour}")
        if model.away is not None:
            text.append("  away", style="bold magenta")
            if model.away:
                text.append(f": {safe(model.away)}", style="magenta")
        if model.identity is not None and status is ConnectionStatus.CONNECTED:
            text.append(f"  encrypted ({model.identity.version})", style="green")
        if model.lag is not None and status is ConnectionStatus.CONNECTED:
            text.append(f"  lag {model.lag * 1000:.0f} ms", style="dim")
        if status is not ConnectionStatus.CONNECTED and model.status_reason:
            text.append(f"  ({safe(model.status_reason)})", style="dim")
        self.update(text)


class PendingStrip(Static):
    """My messages to the current buffer that the server has not acknowledged yet."""

    def refresh_from(self, buffer: Buffer, nick: str, *, connected: bool) -> None:
        """Show `buffer`'s pending messages (hidden when there are none)."""
        self.display = bool(buffer.pending)
        if buffer.pending:
            self.update(
                Text("\n", end="").join(render_pending(e, nick, connected=connected) for e in buffer.pending)
            )
