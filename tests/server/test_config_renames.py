"""Renamed settings: a server.toml written for an older release still loads, with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chat_server.config import RENAMED_SETTINGS, ServerConfig, load_toml


def test_old_names_of_the_history_queue_settings_still_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "server.toml"
    path.write_text("sequencer_queue = 7\nsequencer_wait = 0.5\n")
    with caplog.at_level(logging.WARNING, logger="chat_server.config"):
        config = ServerConfig(**load_toml(path))
    assert (config.history_queue, config.history_wait) == (7, 0.5)
    assert "sequencer_queue is now called history_queue" in caplog.text
    assert "sequencer_wait is now called history_wait" in caplog.text


def test_an_old_name_beside_its_new_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text("sequencer_queue = 7\nhistory_queue = 8\n")
    with pytest.raises(ValueError, match="sequencer_queue is the old name of history_queue"):
        load_toml(path)


def test_every_new_name_is_a_setting() -> None:
    names = {field for field in ServerConfig.__dataclass_fields__}
    assert set(RENAMED_SETTINGS.values()) <= names
    assert not set(RENAMED_SETTINGS) & names
