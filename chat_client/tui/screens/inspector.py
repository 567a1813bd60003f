"""The wire inspector (F12, or `chat-client --inspect`): every frame in and out of the connection.

One row per frame, oldest at the top: its number, time, direction (`→` sent, `←` received), size on the
wire, type and decoded map. The row under the cursor is shown whole below the table, and `x` adds its
bytes as a hex dump (the 4-byte length first). `f` focuses the filter (types, or parts of them, separated
by spaces or commas: `say ack`); `p` or space pauses the view (frames are still recorded) and resumes it.
The frames come from the client's `WireLog` (chat_client.net.wirelog), which keeps the last 1,000 and never
holds a secret: passwords and the resume token show as `«redacted»`, in the map and in the bytes.

Everything shown came from the network: it is made visible (`shared.text.visible`) and drawn as plain
`Text`, never as markup.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from chat_client.net.wirelog import WireFrame, WireLog
from shared.text import visible

#: Seconds between two looks at the wire log while live.
REFRESH_EVERY = 0.25
#: Characters of the decoded map shown in a row (the whole map is shown below the table).
ROW_FIELDS_CHARS = 90


def compact(fields: dict[str, Any]) -> str:
    """A frame's map on one line, without its type (bytes shown as their length)."""
    shown = {key: value for key, value in fields.items() if key != "type"}
    return json.dumps(shown, ensure_ascii=False, default=_plain, separators=(", ", ": "))


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def hex_dump(data: bytes) -> str:
    """`data` as lines of 16 bytes: offset, hex, and the printable ASCII."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{byte:02x}" for byte in chunk)
        text = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in chunk)
        lines.append(f"{offset:08x}  {hexes:<47}  {text}")
    return "\n".join(lines)


def matches(frame: WireFrame, terms: list[str]) -> bool:
    """True if the frame's type contains one of `terms` (no terms: every frame)."""
    return not terms or any(term in frame.type for term in terms)


class InspectorScreen(Screen[None]):
    """The wire inspector; see the module docstring."""

    BINDINGS = [
        Binding("escape,f12", "close", "Close"),
        Binding("p,space", "toggle_live", "Pause/live"),
        Binding("x", "toggle_hex", "Hex"),
        Binding("f", "focus_filter", "Filter"),
    ]

    DEFAULT_CSS = """
    InspectorScreen #inspector-status { height: 1; padding: 0 1; background: $boost; }
    InspectorScreen #inspector-filter { height: 3; }
    InspectorScreen DataTable { height: 1fr; }
    InspectorScreen #inspector-detail { height: auto; max-height: 50%; overflow-y: auto; padding: 0 1; }
    """

    def __init__(self, wire_log: WireLog) -> None:
        super().__init__()
        self.wire_log = wire_log
        #: Frames are taken from the log as they come (False: paused).
        self.live = True
        self.show_hex = False
        self._terms: list[str] = []
        self._last = 0  # the number of the last frame taken from the log
        self._frames: dict[str, WireFrame] = {}  # by row key

    def compose(self) -> ComposeResult:
        """The status line, the filter, the table and the detail of the frame under the cursor."""
        yield Static(id="inspector-status")
        yield Input(placeholder="filter by type: say ack (f)", id="inspector-filter")
        table: DataTable[Text] = DataTable(id="inspector-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="inspector-detail")
        yield Footer()

    def on_mount(self) -> None:
        """Set up the table, show what the log holds, and keep following it."""
        table = self.query_one(DataTable)
        table.add_columns("#", "time", "", "bytes", "type", "fields")
        self._refill()
        table.focus()
        self.set_interval(REFRESH_EVERY, self._follow)

    # -- Keeping up with the log -------------------------------------------------------------------------

    def _refill(self) -> None:
        """Show every frame the log holds that passes the filter."""
        table = self.query_one(DataTable)
        table.clear()
        self._frames.clear()
        self._last = 0
        self._add(self.wire_log.since(0))

    def _follow(self) -> None:
        if self.live:
            self._add(self.wire_log.since(self._last))
        self._show_status()

    def _add(self, frames: list[WireFrame]) -> None:
        table = self.query_one(DataTable)
        at_end = table.cursor_row >= table.row_count - 1
        for frame in frames:
            self._last = frame.number
            if not matches(frame, self._terms):
                continue
            key = str(frame.number)
            self._frames[key] = frame
            table.add_row(*self._cells(frame), key=key)
        # The table holds no more than the log: the oldest rows go as the log drops their frames.
        while table.row_count > (self.wire_log.frames.maxlen or table.row_count):
            oldest = next(iter(self._frames))
            table.remove_row(oldest)
            del self._frames[oldest]
        if frames and at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1)

    @staticmethod
    def _cells(frame: WireFrame) -> tuple[Text, ...]:
        fields = visible(compact(frame.fields), keep_newlines=False)
        if len(fields) > ROW_FIELDS_CHARS:
            fields = fields[: ROW_FIELDS_CHARS - 1] + "…"
        return (
            Text(str(frame.number), style="dim"),
            Text(time.strftime("%H:%M:%S", time.localtime(frame.ts)) + f".{int(frame.ts * 1000) % 1000:03d}"),
            Text("→" if frame.outgoing else "←", style="bold cyan" if frame.outgoing else "bold green"),
            Text(str(frame.size), justify="right"),
            Text(visible(frame.type), style="bold"),
            Text(fields),
        )

    def _show_status(self) -> None:
        waiting = self.wire_log.total - self._last
        state = "live" if self.live else f"paused ({waiting} new)" if waiting else "paused"
        shown = self.query_one(DataTable).row_count
        kept = len(self.wire_log.frames)
        text = f"wire inspector · {state} · {shown} shown of {kept} kept ({self.wire_log.total} seen)"
        if self._terms:
            text += f" · filter: {' '.join(self._terms)}"
        self.query_one("#inspector-status", Static).update(Text(visible(text)))

    # -- The frame under the cursor ----------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Show the highlighted frame whole."""
        self._show_detail(event.row_key.value)

    def _show_detail(self, key: str | None) -> None:
        detail = self.query_one("#inspector-detail", Static)
        frame = self._frames.get(key or "")
        if frame is None:
            detail.update("")
            return
        way = "sent" if frame.outgoing else "received"
        head = f"#{frame.number} {frame.type}, {way}, {frame.size} bytes on the wire"
        if frame.redacted:
            head += " (secrets redacted: the bytes below are the frame encoded again without them)"
        body = json.dumps(frame.fields, ensure_ascii=False, default=_plain, indent=2)
        text = Text(visible(head), style="bold")
        text.append("\n" + visible(body))
        if self.show_hex:
            text.append("\n" + hex_dump(frame.raw), style="dim")
        detail.update(text)

    # -- Keys and the filter -----------------------------------------------------------------------------

    def action_close(self) -> None:
        """Back to the chat."""
        self.dismiss()

    def action_toggle_live(self) -> None:
        """Pause the view, or follow the log again (catching up at once)."""
        self.live = not self.live
        self._follow()

    def action_toggle_hex(self) -> None:
        """Show or hide the bytes of the frame under the cursor."""
        self.show_hex = not self.show_hex
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            self._show_detail(key)

    def action_focus_filter(self) -> None:
        """Type a filter; Enter applies it."""
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply the filter and go back to the table."""
        self._terms = [term for term in event.value.replace(",", " ").split() if term]
        self._refill()
        self._show_status()
        self.query_one(DataTable).focus()
