"""Safe, non-clobbering file names for downloads: a name from the network never becomes a path.

A file's name in an offer is display data written by another user. Before it names a file on this
machine, `safe_name()` keeps only its last component (both ``/`` and ``\\`` count as separators, whatever
the platform), drops control, bidi and zero-width characters and leading dots (no hidden files, no
``..``), replaces the characters other systems forbid in names, and caps its length. `create_unique()`
then creates the file with ``O_CREAT | O_EXCL`` inside the downloads folder, adding `` (1)``, `` (2)``...
before the extension until the name is free: an existing file is never overwritten, and a second
process racing for the same name cannot make us overwrite its file either.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

#: Longest saved name, in bytes of UTF-8: under every common file system's 255, leaving room for " (NNN)".
MAX_NAME_BYTES = 200
#: How many numbered names `create_unique` tries before giving up.
MAX_SUFFIX = 9999
# Forbidden in names on Windows (and awkward in shells everywhere); replaced by "_".
_FORBIDDEN = frozenset('<>:"|?*')
# Device names Windows reserves whatever the extension.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{n}" for n in range(1, 10)} | {f"lpt{n}" for n in range(1, 10)}
)
# Control (Cc), format (Cf: bidi overrides, zero-width), surrogate, private-use and unassigned characters.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def safe_name(name: str, fallback: str) -> str:
    """The part of `name` fit to name a file in the downloads folder, or `fallback` if nothing is left.

    `fallback` must itself be safe (e.g. ``file-44``).
    """
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(
        "_" if char in _FORBIDDEN else char
        for char in unicodedata.normalize("NFC", last)
        if unicodedata.category(char) not in _DROPPED_CATEGORIES
    )
    # No hidden files and no "." or ".."; trailing dots and spaces vanish on Windows, so drop them too.
    kept = kept.lstrip(". ").rstrip(". ")
    if not kept:
        return fallback
    if kept.split(".", 1)[0].lower() in _RESERVED:
        kept = "_" + kept
    return _cap(kept, MAX_NAME_BYTES)


def _cap(name: str, limit: int) -> str:
    """`name` cut to `limit` bytes of UTF-8, keeping a short extension."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) > 16:
        stem, extension = name, ""
    suffix = "." + extension if extension else ""
    budget = limit - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return cut + suffix


def numbered(name: str, number: int) -> str:
    """`name` with `` (number)`` before its extension: ``notes (1).txt``, ``archive (2).tar.gz``."""
    if number == 0:
        return name
    stem, extension = _split_extension(name)
    return f"{stem} ({number}){extension}"


def _split_extension(name: str) -> tuple[str, str]:
    lowered = name.lower()
    for double in (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"):
        if lowered.endswith(double) and len(name) > len(double):
            return name[: -len(double)], name[-len(double) :]
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + extension


def create_unique(folder: Path, name: str) -> Path:
    """Create an empty file named `name` (or `name (1)`, `name (2)`...) in `folder` and return its path.

    `name` must come from `safe_name`. The file is created with O_EXCL, so no existing file (or symbolic
    link) is ever opened or replaced. Raises `FileExistsError` when every numbered name is taken.
    """
    for number in range(MAX_SUFFIX + 1):
        candidate = folder / numbered(name, number)
        try:
            descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        os.close(descriptor)
        return candidate
    raise FileExistsError(f"no free name for {name!r} in {folder}")
