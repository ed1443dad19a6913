"""Retry delays: full jitter under an exponential bound, a cap, Retry-After as a floor."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from herald.core.backoff import BASE_S, CAP_S, MAX_ATTEMPTS, next_attempt_at, retry_delay_s

NOW = datetime(2024, 3, 15, 2, 31, 5, tzinfo=UTC)
DRAWS = 500  # enough draws that a seeded sample reaches near both ends of its range


def draws(attempt: int, *, seed: int = 1, **options: float) -> list[float]:
    """DRAWS delays for `attempt` from one seeded generator."""
    rng = random.Random(seed)
    return [retry_delay_s(attempt, rng=rng, **options) for _ in range(DRAWS)]


@pytest.mark.parametrize(
    ("attempt", "bound_s"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (6, 64.0), (10, 1_024.0), (11, 2_048.0)],
)
def test_the_delay_is_drawn_between_zero_and_base_times_two_to_the_attempts_before(
    attempt: int, bound_s: float
) -> None:
    delays = draws(attempt)

    assert all(0 <= delay <= bound_s for delay in delays)
    assert min(delays) < 0.05 * bound_s
    assert max(delays) > 0.95 * bound_s


@pytest.mark.parametrize("attempt", [12, 13, 20, 31, 32, 1_000, 10**9])
def test_the_delay_never_exceeds_the_cap_however_many_attempts_failed(attempt: int) -> None:
    delays = draws(attempt)

    assert all(0 <= delay <= CAP_S for delay in delays)
    assert max(delays) > 0.95 * CAP_S


def test_the_defaults_start_at_two_seconds_and_cap_at_an_hour() -> None:
    assert (BASE_S, CAP_S) == (2.0, 3_600.0)


def test_base_and_cap_can_be_chosen() -> None:
    first = draws(1, base_s=0.5, cap_s=10.0)
    late = draws(9, base_s=0.5, cap_s=10.0)

    assert all(0 <= delay <= 0.5 for delay in first)
    assert all(0 <= delay <= 10.0 for delay in late)
    assert max(late) > 9.5


@pytest.mark.parametrize("seed", range(5))
def test_retry_after_is_a_floor_above_the_drawn_delay(seed: int) -> None:
    delay = retry_delay_s(1, rng=random.Random(seed), retry_after_s=7.0)

    assert delay == 7.0


def test_a_drawn_delay_above_retry_after_is_kept() -> None:
    delays = draws(12, retry_after_s=1.0)

    assert all(1.0 <= delay <= CAP_S for delay in delays)
    assert len(set(delays)) == DRAWS
    assert max(delays) > 0.95 * CAP_S


@pytest.mark.parametrize("retry_after_s", [CAP_S + 1, 86_400.0, 1e12])
def test_retry_after_beyond_the_cap_is_capped(retry_after_s: float) -> None:
    delay = retry_delay_s(1, rng=random.Random(3), retry_after_s=retry_after_s)

    assert delay == CAP_S


def test_retry_after_is_capped_by_a_chosen_cap() -> None:
    delay = retry_delay_s(1, rng=random.Random(3), retry_after_s=120.0, cap_s=60.0)

    assert delay == 60.0


def test_jitter_spreads_the_delays_of_one_attempt() -> None:
    delays = draws(4)

    assert len(set(delays)) == DRAWS
    assert sum(delays) / DRAWS == pytest.approx(16.0 / 2, rel=0.1)  # uniform on [0, 16]


def test_different_seeds_draw_different_delays_and_one_seed_repeats_its_own() -> None:
    assert draws(5, seed=1) == draws(5, seed=1)
    assert draws(5, seed=1) != draws(5, seed=2)


@pytest.mark.parametrize("attempt", range(1, MAX_ATTEMPTS))
def test_next_attempt_is_now_plus_the_delay(attempt: int) -> None:
    expected = NOW + timedelta(seconds=retry_delay_s(attempt, rng=random.Random(attempt)))

    at = next_attempt_at(attempt, NOW, rng=random.Random(attempt))

    assert at == expected
    assert at is not None and at.tzinfo is UTC
    assert NOW <= at <= NOW + timedelta(seconds=min(CAP_S, BASE_S * 2 ** (attempt - 1)))


def test_next_attempt_honours_retry_after() -> None:
    at = next_attempt_at(1, NOW, rng=random.Random(0), retry_after_s=60.0)

    assert at == NOW + timedelta(seconds=60)


@pytest.mark.parametrize("attempt", [MAX_ATTEMPTS, MAX_ATTEMPTS + 1, 1_000])
def test_no_attempt_is_left_after_max_attempts(attempt: int) -> None:
    at = next_attempt_at(attempt, NOW, rng=random.Random(0), retry_after_s=5.0)

    assert at is None


def test_the_last_attempt_before_the_limit_still_gets_a_retry() -> None:
    at = next_attempt_at(MAX_ATTEMPTS - 1, NOW, rng=random.Random(0))

    assert at is not None
    assert at > NOW
