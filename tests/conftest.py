"""Settings for the whole test session.

The LAN discovery code can send UDP broadcast and multicast datagrams. On the machines this project is built
on, such a datagram leaves through the real network interface, which a test must never do. This variable
makes the beacon and the discovery client refuse any non-loopback destination for the whole session; the
tests that need a real broadcast run it inside network namespaces they create, and unset it only there.
"""

from __future__ import annotations

import os

os.environ["MPCHAT_DISCOVERY_LOOPBACK_ONLY"] = "1"
