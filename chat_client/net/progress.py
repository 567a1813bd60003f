"""What a UI shows about a file transfer: its state, bytes done, rate and time left (no I/O here).

`TransferInfo` is an immutable snapshot, handed out in `TransferUpdate` events and by
`ChatClient.transfers`; `RateMeter` turns (time, bytes done) samples into a rate over the last few seconds,
so the rate and the ETA follow the link's current speed rather than its average since the start.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from shared import FileOffered

#: Seconds of samples the rate is measured over.
RATE_WINDOW = 3.0
#: Ended transfers a UI keeps showing (the running ones are always shown).
MAX_FINISHED_TRANSFERS = 3


class Direction(enum.StrEnum):
    """Which way the bytes go."""

    UPLOAD = "upload"
    DOWNLOAD = "download"


class TransferState(enum.StrEnum):
    """Where a transfer is in its life; the last three are final."""

    QUEUED = "queued"  # waiting for its turn (another transfer runs) or for the connection
    HASHING = "hashing"  # computing the SHA-256 (before an upload, after a download)
    RUNNING = "running"
    WAITING = "waiting"  # the connection dropped: resumes after the reconnect
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({TransferState.DONE, TransferState.FAILED, TransferState.CANCELLED})


@dataclass(frozen=True, slots=True)
class TransferInfo:
    """A snapshot of one transfer.

    `number` names it for `/cancel` (a local counter); `offer_id` is the offer's message id (the id that
    `/get` takes), known for downloads from the start and for uploads once stored. `path` is the file sent,
    or the file saved once a download is done. `name` comes from the network for downloads: untrusted.
    `resumed_from` is the offset the latest attempt started from (non-zero after a resume).
    """

    number: int
    direction: Direction
    name: str
    size: int
    done: int
    state: TransferState
    rate: float | None = None
    eta: float | None = None
    room: str | None = None
    peer: str | None = None
    offer_id: int | None = None
    path: Path | None = None
    resumed_from: int = 0
    error_code: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """True once done, failed or cancelled."""
        return self.state in FINAL_STATES

    @property
    def fraction(self) -> float:
        """Bytes done as a fraction of the size (1.0 for an empty file)."""
        return 1.0 if self.size == 0 else min(1.0, self.done / self.size)


@dataclass(frozen=True, slots=True)
class TransferUpdate:
    """A transfer started, progressed, paused or ended (progress is reported a few times a second)."""

    info: TransferInfo


class RateMeter:
    """Bytes per second over the last `window` seconds."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def reset(self) -> None:
        """Forget the samples (after a pause, the old speed says nothing)."""
        self._samples.clear()

    def add(self, now: float, done: int) -> None:
        """Record that `done` bytes were done at time `now` (seconds, monotonic)."""
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Bytes per second, or None until two samples some time apart exist."""
        if len(self._samples) < 2:
            return None
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        if end - start < 0.05:
            return None
        return max(0.0, (last - first) / (end - start))

    def eta(self, size: int, done: int) -> float | None:
        """Seconds left at the current rate, or None when unknown."""
        rate = self.rate()
        if rate is None or rate <= 0:
            return None
        return max(0.0, (size - done) / rate)


def human_size(size: float) -> str:
    """A byte count for people: ``0 B``, ``12 B``, ``48.0 KiB``, ``1.5 GiB``."""
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """A duration for people: ``7 s``, ``3 min 05 s``, ``2 h 10 min``."""
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def describe(info: TransferInfo) -> str:
    """One line about a transfer's progress: ``45% of 12.0 MiB, 3.1 MiB/s, 2 s left``."""
    percent = int(info.fraction * 100)
    parts = [f"{percent}% of {human_size(info.size)}"]
    if info.state is TransferState.RUNNING and info.rate is not None:
        parts.append(f"{human_size(info.rate)}/s")
        if info.eta is not None:
            parts.append(f"{human_duration(info.eta)} left")
    elif not info.finished and info.state is not TransferState.RUNNING:
        parts.append(str(info.state))
    return ", ".join(parts)


def offer_text(offer: FileOffered) -> str:
    """How a file offer reads in a buffer (untrusted: the renderer makes it visible)."""
    return f"{offer.name} ({human_size(offer.size)})"


def started_line(info: TransferInfo) -> str:
    """The line that announces a transfer."""
    if info.direction is Direction.UPLOAD:
        return f"sending {info.name} ({human_size(info.size)}); /cancel {info.number} to stop"
    return f"downloading {info.name} ({human_size(info.size)}); /cancel {info.number} to stop"


def ended_line(info: TransferInfo) -> str:
    """The line that says how a transfer ended."""
    verb = "upload" if info.direction is Direction.UPLOAD else "download"
    if info.state is TransferState.DONE:
        if info.direction is Direction.UPLOAD:
            return f"sent {info.name} ({human_size(info.size)}), offered as #{info.offer_id}"
        return f"saved {info.name} as {info.path} ({human_size(info.size)}, SHA-256 verified)"
    if info.state is TransferState.CANCELLED:
        return f"{verb} of {info.name} cancelled"
    reason = f"{info.error_code}: {info.error}" if info.error else str(info.error_code)
    return f"{verb} of {info.name} failed ({reason})"
