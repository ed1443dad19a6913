"""The client's tuning: how it queues, batches and retries. Defaults suit a backend service."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Overflow(str, Enum):
    """What track(), identify() and set() do when the queue is full.

    BLOCK: wait up to `block_timeout_s` for room, then raise QueueFull (nothing is lost silently,
    and a slow Herald slows the caller down). DROP_OLDEST: make room by dropping the oldest
    waiting event, count it in `stats().dropped` and log a warning (the caller never waits).
    """

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


@dataclass(frozen=True)
class Config:
    """How the client queues, batches and retries; every field has a default."""

    max_queue_events: int = 100_000  # waiting events; bounds memory (or the queue file)
    overflow: Overflow = Overflow.BLOCK
    block_timeout_s: float = 1.0  # with BLOCK: how long a call may wait for room
    max_batch_events: int = 1_000  # Herald takes up to 10,000 per request
    max_batch_bytes: int = 1_048_576  # of JSON before gzip; Herald takes up to 5 MiB
    max_event_bytes: int = 65_536  # Herald's per-event limit: larger events raise ValueError
    flush_interval_s: float = 0.5  # the longest an event waits for a fuller batch
    max_retries: int | None = 10  # per batch, after the first try; None retries forever
    backoff_base_s: float = 0.5  # first retry waits up to this (full jitter), doubling
    backoff_max_s: float = 30.0  # the longest wait between two tries
    timeout_s: float = 10.0  # to connect, and for each read of Herald's answer
    gzip_level: int = 1  # 1 compresses JSON batches ~10x at a fraction of level 6's cost
    close_timeout_s: float = 5.0  # how long close() (and the exit of the program) waits
    source: str = "custom"  # the `source` field of every event

    def __post_init__(self) -> None:
        object.__setattr__(self, "overflow", _overflow(self.overflow))
        for name in ("max_queue_events", "max_batch_events", "max_batch_bytes", "max_event_bytes"):
            _require_positive_int(name, getattr(self, name))
        for name in _SECONDS:
            _require_seconds(name, getattr(self, name))
        if self.max_retries is not None and (
            not isinstance(self.max_retries, int) or self.max_retries < 0
        ):
            raise ValueError(f"max_retries must be 0 or more, or None, got {self.max_retries!r}")
        if self.gzip_level not in range(10):
            raise ValueError(f"gzip_level must be 0 to 9, got {self.gzip_level!r}")


_SECONDS = (
    "block_timeout_s",
    "flush_interval_s",
    "backoff_base_s",
    "backoff_max_s",
    "timeout_s",
    "close_timeout_s",
)


def _overflow(value: object) -> Overflow:
    try:
        return Overflow(value)
    except ValueError:
        choices = ", ".join(repr(policy.value) for policy in Overflow)
        raise ValueError(f"overflow must be one of {choices}, got {value!r}") from None


def _require_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a whole number of 1 or more, got {value!r}")


def _require_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a number of seconds, 0 or more, got {value!r}")
