"""File-sharing settings: the ``[files]`` table of server.toml and the ``--files-*`` command-line options.

Every limit has a named default here; `FilesConfig.policy()` is what `welcome.files` announces. See
docs/server.md (the settings table) and docs/security.md (the abuse limits).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.limits import DEFAULT_FILE_CHUNK, DEFAULT_FILE_WINDOW
from shared.messages import FilePolicy

#: Largest file one offer may announce, in bytes.
DEFAULT_FILE_MAX_SIZE = 1024**3
#: Bytes of stored files one nick may hold at once (counted by the nick's folded key).
DEFAULT_FILE_USER_QUOTA = 2 * 1024**3
#: Bytes of stored files the whole server may hold.
DEFAULT_FILE_TOTAL_QUOTA = 20 * 1024**3
#: Days a stored file is kept after its latest upload; its history entry stays, `file_get` says no_such_file.
DEFAULT_FILE_RETENTION_DAYS = 30.0
#: Days an interrupted upload is kept for a resume before the sweep deletes it.
DEFAULT_FILE_PARTIAL_DAYS = 2.0
#: Seconds between two sweeps of expired files and abandoned uploads.
DEFAULT_FILE_SWEEP_INTERVAL = 3600.0
#: Uploads one connection may have in progress at once (one more: `too_many_transfers`).
DEFAULT_FILE_MAX_UPLOADS = 2
#: Largest chunk the server accepts and sends; a chunk frame must fit `max_frame` with this much to spare.
CHUNK_FRAME_OVERHEAD = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class FilesConfig:
    """What the server accepts for file sharing (the ``[files]`` table); each default is named above."""

    enabled: bool = True
    #: Folder for stored and partial files; None means ``files`` next to the history database.
    folder: Path | None = None
    max_size: int = DEFAULT_FILE_MAX_SIZE
    user_quota: int = DEFAULT_FILE_USER_QUOTA
    total_quota: int = DEFAULT_FILE_TOTAL_QUOTA
    retention_days: float = DEFAULT_FILE_RETENTION_DAYS
    partial_days: float = DEFAULT_FILE_PARTIAL_DAYS
    sweep_interval: float = DEFAULT_FILE_SWEEP_INTERVAL
    chunk: int = DEFAULT_FILE_CHUNK
    window: int = DEFAULT_FILE_WINDOW
    max_uploads: int = DEFAULT_FILE_MAX_UPLOADS

    def __post_init__(self) -> None:
        folder: Any = self.folder  # from a TOML file: a str
        if folder is not None and not isinstance(folder, Path):
            object.__setattr__(self, "folder", Path(str(folder)))
        enabled: Any = self.enabled  # from a TOML file it may be anything
        if not isinstance(enabled, bool):
            raise ValueError(f"files.enabled must be true or false, not {self.enabled!r}")
        for field in dataclasses.fields(self):
            if field.type not in ("int", "float"):
                continue
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"files.{field.name} must be a number, not {value!r}")
            if value <= 0:
                raise ValueError(f"files.{field.name} must be positive, not {value!r}")
        if self.user_quota > self.total_quota:
            raise ValueError("files.user_quota must not be larger than files.total_quota")

    @property
    def retention_seconds(self) -> float:
        """`retention_days` in seconds."""
        return self.retention_days * 86400.0

    @property
    def partial_seconds(self) -> float:
        """`partial_days` in seconds."""
        return self.partial_days * 86400.0

    def policy(self) -> FilePolicy | None:
        """What `welcome.files` announces: None when file sharing is off."""
        if not self.enabled:
            return None
        return FilePolicy(chunk=self.chunk, window=self.window, max_size=self.max_size)

    def fitted(self, max_frame: int) -> FilesConfig:
        """These settings with `chunk` lowered if a chunk frame would not fit `max_frame`."""
        largest = max_frame - CHUNK_FRAME_OVERHEAD
        return self if self.chunk <= largest else dataclasses.replace(self, chunk=largest)


def files_config_from_table(table: Mapping[str, Any]) -> FilesConfig:
    """Build a `FilesConfig` from the ``[files]`` table of a config file (unknown keys: ValueError)."""
    known = {field.name for field in dataclasses.fields(FilesConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"unknown files setting(s): {', '.join(unknown)}")
    return FilesConfig(**table)


#: Command-line options: flag name -> (field, type, help).
_OPTIONS: dict[str, tuple[str, type, str]] = {
    "--files-folder": ("folder", Path, "folder for stored files (default: DATA_DIR/files)"),
    "--max-file-size": ("max_size", int, f"largest file in bytes (default {DEFAULT_FILE_MAX_SIZE})"),
    "--file-user-quota": ("user_quota", int, f"bytes one nick may store (default {DEFAULT_FILE_USER_QUOTA})"),
    "--file-total-quota": (
        "total_quota",
        int,
        f"bytes the server may store (default {DEFAULT_FILE_TOTAL_QUOTA})",
    ),
    "--file-retention-days": (
        "retention_days",
        float,
        f"days a file is kept after its upload (default {DEFAULT_FILE_RETENTION_DAYS:g})",
    ),
}


def add_files_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-files`` and the ``--files-*`` / ``--*-file-*`` options to `parser`."""
    group = parser.add_argument_group("file sharing")
    group.add_argument("--no-files", action="store_true", default=None, help="turn file sharing off")
    for flag, (field, kind, text) in _OPTIONS.items():
        group.add_argument(flag, dest=f"files_{field}", type=kind, metavar=field.upper(), help=text)


def files_config_from_args(args: argparse.Namespace, base: FilesConfig | None = None) -> FilesConfig:
    """Return `base` (default: the defaults) with the command-line options applied."""
    changes: dict[str, Any] = {}
    if getattr(args, "no_files", None):
        changes["enabled"] = False
    for field, _kind, _text in _OPTIONS.values():
        value = getattr(args, f"files_{field}", None)
        if value is not None:
            changes[field] = value
    return dataclasses.replace(base or FilesConfig(), **changes)
