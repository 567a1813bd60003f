"""Pinned server keys (trust on first use): which key each TLS server presented the first time.

The pins live in ``known_servers.json`` in the client's data folder (`settings.data_dir`, e.g.
``~/.local/share/mpchat`` on Linux), one entry per ``host:port``: the SHA-256 fingerprint of the server's
public key (`shared.fingerprint`). Like SSH's ``StrictHostKeyChecking accept-new``: an unknown server is
pinned on the first connection, a known one must present the same key, forever, until the user removes the
pin (``chat-client --forget-pin HOST:PORT``).

A damaged pins file is never silently replaced: a pin that cannot be read cannot be checked, so the store
refuses to work (`PinStoreError`) until the user repairs or removes the file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from chat_client.net.errors import ClientError
from chat_client.settings import data_dir
from shared.fingerprint import BadFingerprint, parse_fingerprint

log = logging.getLogger(__name__)

PINS_FILE = "known_servers.json"


class PinStoreError(ClientError):
    """The pins file cannot be read or written (a connection that needs it cannot be verified)."""

    code = "pin_store"


def pin_key(host: str, port: int) -> str:
    """The name of a server in the pins file: ``host:port`` (``[v6addr]:port``), host in lower case."""
    host = host.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_pin_key(text: str) -> str:
    """``HOST:PORT`` as typed (``[::1]:7879`` for IPv6) to the pins file's name for it; ValueError if bad."""
    host, separator, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, not {text!r}")
    return pin_key(host, int(port))


class PinStore:
    """The pins file: read on every check (another client may have pinned meanwhile), written atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else data_dir() / PINS_FILE

    def load(self) -> dict[str, str]:
        """Every pin, ``host:port`` -> fingerprint. Raises `PinStoreError` if the file is damaged."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise PinStoreError(f"cannot read the pinned server keys in {self.path}: {error}") from None
        if not isinstance(data, dict):
            raise PinStoreError(f"{self.path} is damaged (not a JSON object); repair or remove it")
        pins: dict[str, str] = {}
        for key, value in data.items():
            try:
                pins[str(key)] = parse_fingerprint(str(value))
            except BadFingerprint:
                raise PinStoreError(
                    f"{self.path} is damaged (pin for {key!r}); repair or remove it"
                ) from None
        return pins

    def get(self, key: str) -> str | None:
        """The fingerprint pinned for `key` (see `pin_key`), or None."""
        return self.load().get(key)

    def add(self, key: str, fingerprint: str) -> None:
        """Pin `fingerprint` for `key` (replacing nothing: callers check first)."""
        pins = self.load()
        pins[key] = fingerprint
        self._save(pins)

    def forget(self, key: str) -> bool:
        """Remove the pin for `key`; return whether there was one."""
        pins = self.load()
        if pins.pop(key, None) is None:
            return False
        self._save(pins)
        return True

    def _save(self, pins: dict[str, str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            with temporary.open("rb") as file:
                os.fsync(file.fileno())  # a pin must survive a crash right after it was shown
            temporary.replace(self.path)
        except OSError as error:
            raise PinStoreError(f"cannot save the pinned server keys in {self.path}: {error}") from None
