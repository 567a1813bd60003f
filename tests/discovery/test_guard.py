"""The loopback-only guard: the test session cannot send a discovery datagram off this machine."""

from __future__ import annotations

import os

import pytest

from shared.discovery import LOOPBACK_ONLY_ENV, DestinationRefused, check_destination, loopback_only


def test_the_guard_is_on_for_the_whole_test_session() -> None:
    """conftest.py turned the guard on, so no test can fall back to a LAN destination."""
    assert os.environ[LOOPBACK_ONLY_ENV] == "1"
    assert loopback_only()


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "127.255.255.255", "::1"])
def test_loopback_destinations_are_allowed(address: str) -> None:
    """Every loopback address passes, including the loopback broadcast."""
    check_destination(address)


@pytest.mark.parametrize(
    "address", ["255.255.255.255", "239.255.78.79", "224.0.0.1", "10.213.0.255", "0.0.0.0", "localhost", ""]
)
def test_other_destinations_are_refused(address: str) -> None:
    """Broadcast, multicast, LAN, wildcard and host names are refused with the typed error."""
    with pytest.raises(DestinationRefused, match=LOOPBACK_ONLY_ENV):
        check_destination(address)


@pytest.mark.parametrize("value", ["", "0", "yes"])
def test_only_the_value_1_turns_the_guard_on(value: str) -> None:
    """Outside the guard (a real deployment), every destination is allowed."""
    check_destination("255.255.255.255", environ={LOOPBACK_ONLY_ENV: value})
    assert not loopback_only({LOOPBACK_ONLY_ENV: value})
