"""The sender's rules that need no network: retry delays, Retry-After, where batches go."""

from __future__ import annotations

import email.utils
import random
import time

import pytest
from herald_client.sender import retry_delay_s
from herald_client.transport import MAX_RETRY_AFTER_S, Endpoint, parse_retry_after


@pytest.mark.parametrize(("attempt", "ceiling_s"), [(1, 0.5), (2, 1.0), (3, 2.0), (8, 30.0)])
def test_retry_delays_are_full_jitter_under_a_doubling_ceiling(
    attempt: int, ceiling_s: float
) -> None:
    rng = random.Random(7)

    delays = [
        retry_delay_s(attempt, base_s=0.5, max_s=30.0, retry_after_s=None, rng=rng)
        for _ in range(500)
    ]

    assert all(0.0 <= delay <= ceiling_s for delay in delays)
    assert max(delays) > ceiling_s * 0.9  # spread over the whole range, not a fixed step
    assert min(delays) < ceiling_s * 0.1


def test_retry_after_is_the_shortest_wait() -> None:
    rng = random.Random(7)

    delays = [
        retry_delay_s(1, base_s=0.5, max_s=30.0, retry_after_s=3.0, rng=rng) for _ in range(100)
    ]

    assert min(delays) == 3.0


def test_a_thousandth_retry_still_has_a_bounded_delay() -> None:
    delay = retry_delay_s(1000, base_s=0.5, max_s=30.0, retry_after_s=None, rng=random.Random(1))

    assert 0.0 <= delay <= 30.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("2", 2.0),
        ("0.25", 0.25),
        ("-5", 0.0),
        ("1e9", MAX_RETRY_AFTER_S),
        ("nan", None),
        ("soon", None),
    ],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    header = email.utils.formatdate(time.time() + 60, usegmt=True)

    seconds = parse_retry_after(header)

    assert seconds is not None and 50.0 < seconds <= 60.0


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:8000", Endpoint(False, "127.0.0.1", 8000, "/api/events/batch/")),
        (
            "https://herald.example.com/",
            Endpoint(True, "herald.example.com", None, "/api/events/batch/"),
        ),
        (
            "https://example.com/herald",
            Endpoint(True, "example.com", None, "/herald/api/events/batch/"),
        ),
    ],
)
def test_the_batch_route_is_under_the_host_url(url: str, endpoint: Endpoint) -> None:
    assert Endpoint.parse(url) == endpoint
