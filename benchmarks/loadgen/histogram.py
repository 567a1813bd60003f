"""A fixed-bucket latency histogram: cheap to add to in the receive loop, exact to merge across processes.

Buckets are 10 µs wide up to 100 ms and 1 ms wide from there up to one minute (anything later lands in the
last bucket), so a percentile is exact to 10 µs where latencies are small and to 1 ms where they are not.
"""

from __future__ import annotations

from collections.abc import Iterable

FINE_US = 10
FINE_LIMIT_US = 100_000
COARSE_US = 1_000
COARSE_LIMIT_US = 60_000_000
FINE_BUCKETS = FINE_LIMIT_US // FINE_US
BUCKETS = FINE_BUCKETS + (COARSE_LIMIT_US - FINE_LIMIT_US) // COARSE_US + 1


def bucket_of(latency_us: int) -> int:
    """The bucket index for a latency in microseconds (negative latencies count as 0)."""
    if latency_us < FINE_LIMIT_US:
        return latency_us // FINE_US if latency_us > 0 else 0
    return min(BUCKETS - 1, FINE_BUCKETS + (latency_us - FINE_LIMIT_US) // COARSE_US)


def upper_ms(bucket: int) -> float:
    """The upper edge of a bucket, in milliseconds (what a percentile reports: "at most this")."""
    if bucket < FINE_BUCKETS:
        return (bucket + 1) * FINE_US / 1000
    return (FINE_LIMIT_US + (bucket - FINE_BUCKETS + 1) * COARSE_US) / 1000


def new() -> list[int]:
    """An empty histogram."""
    return [0] * BUCKETS


def merge(histograms: Iterable[list[int]]) -> list[int]:
    """The sum of several histograms."""
    total = new()
    for histogram in histograms:
        for index, count in enumerate(histogram):
            if count:
                total[index] += count
    return total


def percentiles(histogram: list[int], points: Iterable[float]) -> dict[float, float | None]:
    """The latency (ms) at each percentile in `points` (0-100); None for all when the histogram is empty."""
    wanted = sorted(points)
    count = sum(histogram)
    result: dict[float, float | None] = dict.fromkeys(wanted)
    if not count:
        return result
    seen, position = 0, 0
    for index, in_bucket in enumerate(histogram):
        seen += in_bucket
        while position < len(wanted) and seen >= wanted[position] / 100 * count:
            result[wanted[position]] = upper_ms(index)
            position += 1
        if position == len(wanted):
            break
    return result
