"""Where the client keeps its settings, and what it remembers: last server and nick, recent servers, theme.

The folders follow each platform's convention (`platformdirs`): on Linux ``~/.config/mpchat`` and
``~/.local/share/mpchat``. The environment variables ``MPCHAT_CONFIG_DIR`` and ``MPCHAT_DATA_DIR`` override
them (and ``MPCHAT_DOWNLOADS_DIR`` the downloads folder), which is how the tests keep away from the real
home folder. A missing or damaged settings file is
never an error: the defaults are used, and the next save replaces it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

log = logging.getLogger(__name__)

APP_NAME = "mpchat"
SETTINGS_FILE = "client.json"
DEFAULT_HOST = "127.0.0.1"
#: The server's default port (`chat_server.config.DEFAULT_PORT`).
DEFAULT_PORT = 7878
#: Recent servers remembered for the connect screen.
MAX_RECENT = 8
#: A message of more lines than this asks, on Enter, whether to send it as one message or one per line
#: (setting `paste_ask_lines`).
DEFAULT_PASTE_ASK_LINES = 10


def config_dir() -> Path:
    """The folder for the settings file."""
    override = os.environ.get("MPCHAT_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))


def downloads_dir() -> Path:
    """The folder files are downloaded into: ``MPCHAT_DOWNLOADS_DIR``, else the platform's downloads folder
    plus ``mpchat`` (``~/Downloads/mpchat`` on most systems)."""
    override = os.environ.get("MPCHAT_DOWNLOADS_DIR")
    return Path(override) if override else Path(platformdirs.user_downloads_dir()) / APP_NAME


def data_dir() -> Path:
    """The folder for data (the embedded server's history with ``--local``)."""
    override = os.environ.get("MPCHAT_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


@dataclass(frozen=True, slots=True)
class Recent:
    """A server connected to before, and the nick used there."""

    host: str
    port: int
    nick: str
    tls: bool = False


#: How notifications reach the desktop through the terminal (chat_client.tui.desktop); "off": they do not.
DESKTOP_NOTIFY_STYLES = ("off", "osc9", "osc777", "osc99")


@dataclass(slots=True)
class Settings:
    """What the client remembers between runs."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    nick: str = ""
    theme: str = "textual-dark"
    bell: bool = False
    #: Desktop notifications through the terminal: one of `DESKTOP_NOTIFY_STYLES`.
    desktop_notify: str = "off"
    #: Where downloads go ("" for the default folder, `downloads_dir()`).
    downloads: str = ""
    #: Whether the last server was reached with TLS.
    tls: bool = False
    recent: list[Recent] = field(default_factory=list)
    #: A message of more lines than this asks, on Enter, whether to go as one message or one per line.
    paste_ask_lines: int = DEFAULT_PASTE_ASK_LINES
    #: Tell the others in a room when you are typing (false: never; others' typing is still shown).
    send_typing: bool = True

    def remember(self, host: str, port: int, nick: str, tls: bool = False) -> None:
        """Make this server the default and the first of the recent ones."""
        self.host, self.port, self.nick, self.tls = host, port, nick, tls
        entry = Recent(host, port, nick, tls)
        self.recent = [entry, *(r for r in self.recent if (r.host, r.port) != (host, port))][:MAX_RECENT]


def load_settings(folder: Path | None = None) -> Settings:
    """Read the settings, or return the defaults if there are none or they cannot be read."""
    path = (folder or config_dir()) / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _from_json(data)
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning("ignoring unreadable settings file %s: %s", path, error)
        return Settings()


def save_settings(settings: Settings, folder: Path | None = None) -> None:
    """Write the settings atomically (a crash never leaves half a file); errors are logged, not raised."""
    target = folder or config_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
        temporary = target / (SETTINGS_FILE + ".tmp")
        temporary.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
        temporary.replace(target / SETTINGS_FILE)
    except OSError as error:
        log.warning("could not save settings in %s: %s", target, error)


def _from_json(data: Any) -> Settings:
    if not isinstance(data, dict):
        raise ValueError("settings must be a JSON object")
    settings = Settings()
    if isinstance(data.get("host"), str):
        settings.host = data["host"]
    if isinstance(data.get("port"), int) and 0 < data["port"] < 65536:
        settings.port = data["port"]
    if isinstance(data.get("nick"), str):
        settings.nick = data["nick"]
    if isinstance(data.get("theme"), str):
        settings.theme = data["theme"]
    if isinstance(data.get("bell"), bool):
        settings.bell = data["bell"]
    if data.get("desktop_notify") in DESKTOP_NOTIFY_STYLES:
        settings.desktop_notify = data["desktop_notify"]
    if isinstance(data.get("downloads"), str):
        settings.downloads = data["downloads"]
    if isinstance(data.get("tls"), bool):
        settings.tls = data["tls"]
    if isinstance(data.get("paste_ask_lines"), int) and data["paste_ask_lines"] >= 1:
        settings.paste_ask_lines = data["paste_ask_lines"]
    if isinstance(data.get("send_typing"), bool):
        settings.send_typing = data["send_typing"]
    for item in data.get("recent", []) if isinstance(data.get("recent"), list) else []:
        if isinstance(item, dict) and isinstance(item.get("port"), int):
            tls = item.get("tls") is True
            settings.recent.append(
                Recent(str(item.get("host", "")), item["port"], str(item.get("nick", "")), tls)
            )
    settings.recent = settings.recent[:MAX_RECENT]
    return settings
