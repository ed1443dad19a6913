"""Retry delays: exponential backoff with full jitter, capped, honouring Retry-After."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

BASE_S = 2.0  # the first retry waits up to this long
CAP_S = 3_600.0  # no retry waits longer than an hour
MAX_ATTEMPTS = 10  # then the message is failed (and kept, to be retried by hand)


def retry_delay_s(
    attempt: int,
    *,
    rng: random.Random,
    retry_after_s: float | None = None,
    base_s: float = BASE_S,
    cap_s: float = CAP_S,
) -> float:
    """How long to wait before attempt `attempt + 1` (attempt counts from 1).

    Full jitter (a uniform draw up to the exponential bound) spreads retries of many messages
    that failed together; a receiver's Retry-After is a floor, still capped.
    """
    bound = min(cap_s, base_s * 2 ** min(attempt - 1, 30))
    delay = rng.uniform(0, bound)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, cap_s))
    return delay


def next_attempt_at(
    attempt: int, now: datetime, *, rng: random.Random, retry_after_s: float | None = None
) -> datetime | None:
    """When to try again after attempt `attempt` failed; None when no attempt is left."""
    if attempt >= MAX_ATTEMPTS:
        return None
    return now + timedelta(seconds=retry_delay_s(attempt, rng=rng, retry_after_s=retry_after_s))
