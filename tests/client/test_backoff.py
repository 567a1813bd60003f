"""The reconnect schedule (chat_client.net.backoff): full jitter over a window that grows with the crowd.

Pure arithmetic with a seeded random generator: the same draws on every run."""

from __future__ import annotations

import random

import pytest

from chat_client.net.backoff import DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY, DEFAULT_SPREAD_PER_PEER, Backoff


def test_window_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.ceiling(10_000) == 30.0  # a long outage never overflows


def test_delays_cover_the_whole_window_full_jitter() -> None:
    """Uniform from 0 to the ceiling: some draws near 0, some near the top, none outside."""
    backoff = Backoff(rng=random.Random(1))
    for attempt in range(6):
        draws = [backoff.delay(attempt) for _ in range(2000)]
        top = backoff.ceiling(attempt)
        assert all(0 <= d <= top for d in draws)
        assert min(draws) < 0.05 * top
        assert max(draws) > 0.95 * top


def test_the_window_grows_with_the_crowd_and_keeps_its_cap() -> None:
    backoff = Backoff()
    assert backoff.ceiling(0, peers=0) == DEFAULT_INITIAL_DELAY
    assert backoff.ceiling(0, peers=49) == pytest.approx(49 * DEFAULT_SPREAD_PER_PEER)
    assert backoff.ceiling(0, peers=100_000) == DEFAULT_MAX_DELAY
    assert backoff.ceiling(8, peers=1) == DEFAULT_MAX_DELAY


def test_fifty_clients_first_attempts_are_spread() -> None:
    """50 people who shared a room: the first 10 of their first attempts span well over 1 s (seeded)."""
    delays = sorted(Backoff(rng=random.Random(n)).delay(0, peers=49) for n in range(50))
    assert delays[9] - delays[0] >= 1.0
    # The old "equal jitter" with a 0.5 s window put all fifty within 0.25 s.
    assert delays[-1] - delays[0] > 5.0


def test_a_lone_client_keeps_the_short_window() -> None:
    backoff = Backoff(rng=random.Random(5))
    assert all(backoff.delay(0, peers=0) <= DEFAULT_INITIAL_DELAY for _ in range(100))
    assert all(backoff.crowd_delay(0) == 0 for _ in range(10))


def test_crowd_delay_spreads_a_crowd_once_the_server_is_back() -> None:
    backoff = Backoff(rng=random.Random(9))
    draws = [backoff.crowd_delay(49) for _ in range(1000)]
    assert all(0 <= d <= 49 * DEFAULT_SPREAD_PER_PEER for d in draws)
    assert max(draws) - min(draws) > 10


def test_seeded_schedules_repeat() -> None:
    first = [Backoff(rng=random.Random(42)).delay(n, peers=3) for n in range(10)]
    second = [Backoff(rng=random.Random(42)).delay(n, peers=3) for n in range(10)]
    assert first == second


@pytest.mark.parametrize(
    "arguments", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}, {"spread": -1}]
)
def test_nonsense_policies_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(**arguments)


@pytest.mark.parametrize(
    "arguments",
    [{"ping_every": 0}, {"ping_grace": 0}, {"probe_interval": -1}, {"ping_rtt_multiple": 0.5}],
)
def test_nonsense_liveness_options_are_refused(arguments: dict[str, float]) -> None:
    from chat_client import ClientOptions

    with pytest.raises(ValueError, match="must be"):
        ClientOptions(**arguments)
