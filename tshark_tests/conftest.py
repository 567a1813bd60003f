"""The tests that need `tshark` and `dumpcap` (installed by `.ci/run`, run by it as `pytest tshark_tests`).

Discovery datagrams stay on loopback here as in tests/ (see tests/discovery/conftest.py).
"""

from __future__ import annotations

import os

from shared.discovery import LOOPBACK_ONLY_ENV

os.environ[LOOPBACK_ONLY_ENV] = "1"
