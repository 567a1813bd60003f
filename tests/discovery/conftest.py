"""Discovery tests: keep every datagram on loopback, whatever else the session sets.

The beacon and the discovery client refuse non-loopback destinations while `MPCHAT_DISCOVERY_LOOPBACK_ONLY`
is "1" (see `shared.discovery.check_destination`). The top-level tests/conftest.py sets it too; setting it
here as well keeps this folder safe when it is run on its own or moved. Only the network-namespace tests
unset it, and only in the environment of the subprocesses they start inside their own namespaces.
"""

from __future__ import annotations

import os

from shared.discovery import LOOPBACK_ONLY_ENV

os.environ[LOOPBACK_ONLY_ENV] = "1"
