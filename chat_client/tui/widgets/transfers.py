"""The transfers panel: one row per file transfer, with a progress bar, its rate and time left.

Rows follow the model's `transfers` (updated a few times a second per transfer by the client library's
throttled `TransferUpdate` events). A row stays a few seconds after its transfer ended, showing how it
ended, then goes; the line in the buffer keeps the record. File names are untrusted: they reach the
screen only as `Text` made visible by `render.safe`, never as markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from chat_client.net.progress import Direction, TransferInfo, TransferState, describe, human_size
from chat_client.tui.render import safe

#: Seconds a row stays after its transfer ended.
LINGER = 8.0


class TransferRow(Horizontal):
    """One transfer: number, direction and name; the bar; rate and ETA, or how it ended."""

    DEFAULT_CSS = """
    TransferRow { height: 1; }
    TransferRow .transfer-name { width: 1fr; }
    TransferRow ProgressBar { width: auto; padding: 0 1; }
    TransferRow .transfer-detail { width: 34; }
    """

    def __init__(self, info: TransferInfo) -> None:
        super().__init__(id=f"transfer-{info.number}")
        self.info = info
        #: When the transfer ended (monotonic seconds), once it has.
        self.ended_at: float | None = None

    def compose(self) -> ComposeResult:
        """The name, the bar and the detail."""
        yield Static(classes="transfer-name")
        yield ProgressBar(total=max(self.info.size, 1), show_eta=False)
        yield Static(classes="transfer-detail")

    def on_mount(self) -> None:
        """Show the first snapshot."""
        self.show(self.info)

    def show(self, info: TransferInfo) -> None:
        """Show a new snapshot of the transfer."""
        self.info = info
        if info.finished and self.ended_at is None:
            self.ended_at = time.monotonic()
        arrow = "↑" if info.direction is Direction.UPLOAD else "↓"
        name = Text(end="", no_wrap=True, overflow="ellipsis")
        name.append(f"{info.number} {arrow} ", style="bold")
        name.append(safe(info.name))
        name.append(f"  {human_size(info.size)}", style="dim")
        self.query_one(".transfer-name", Static).update(name)
        done = info.size if info.state is TransferState.DONE else info.done
        self.query_one(ProgressBar).update(
            total=max(info.size, 1), progress=done if info.size else int(done > 0)
        )
        self.query_one(".transfer-detail", Static).update(_detail(info))


def _detail(info: TransferInfo) -> Text:
    if info.state is TransferState.DONE:
        return Text("✓ done, SHA-256 verified" if info.direction is Direction.DOWNLOAD else "✓ sent", "green")
    if info.state is TransferState.CANCELLED:
        return Text("cancelled", "yellow")
    if info.state is TransferState.FAILED:
        return Text(f"✗ {safe(info.error_code or 'failed')}", "bold red")
    if info.state is TransferState.RUNNING:
        parts = describe(info).split(", ")[1:]  # the bar shows the percentage
        return Text(", ".join(parts) or "starting", "dim", no_wrap=True)
    return Text(str(info.state), "italic yellow")


class TransfersPanel(Vertical):
    """Every running transfer and the ones that ended in the last `LINGER` seconds (hidden when none)."""

    def __init__(self, *, id: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._rows: dict[int, TransferRow] = {}

    DEFAULT_CSS = """
    TransfersPanel { display: none; }
    """

    def refresh_from(self, transfers: Mapping[int, TransferInfo]) -> None:
        """Add, update and retire rows to match `transfers`."""
        for number, info in transfers.items():
            row = self._rows.get(number)
            if row is None:
                if info.finished:
                    continue  # ended before it was ever shown: the buffer's line says how
                row = TransferRow(info)
                self._rows[number] = row
                self.mount(row)
            else:
                row.show(info)
        self.prune(keep=transfers.keys())

    def prune(self, keep: Collection[int] | None = None) -> None:
        """Remove the rows of transfers that ended more than `LINGER` seconds ago (or are not in `keep`)."""
        now = self._clock()
        for number, row in list(self._rows.items()):
            gone = keep is not None and number not in keep
            if gone or (row.ended_at is not None and now - row.ended_at > LINGER):
                del self._rows[number]
                row.remove()
        self.display = bool(self._rows)

    @property
    def lingering(self) -> bool:
        """True while a row of an ended transfer is shown (the screen's timer then prunes)."""
        return any(row.ended_at is not None for row in self._rows.values())
