"""What the client tells its caller after the fact: rejections, failures and counters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from herald_client.events import QueuedEvent


@dataclass(frozen=True)
class Rejection:
    """An event Herald refused; Herald keeps it in its quarantine, where an admin can fix and
    replay it. `index` is its place in the batch that carried it, `field` the wire field at
    fault when Herald names one (`payload.age`, `correlationValue`, ...)."""

    uuid: str
    event: str
    correlation_value: str
    index: int
    field: str | None
    message: str


@dataclass(frozen=True)
class Failure:
    """Events the client gave up on, and why: an answer that retrying cannot fix (401, 400...),
    retries used up, or close() before they could be sent. `events` holds each one's JSON, so it
    can be kept or sent again by hand."""

    reason: str
    status: int | None  # the HTTP status of Herald's last answer, None for a network error
    events: tuple[QueuedEvent, ...]


@dataclass(frozen=True)
class Stats:
    """Counters since the client started.

    `queued` events wait to be sent; `sent` were accepted by Herald, `duplicates` had been
    accepted before (a retry), `rejected` were refused one by one (on_rejected), `failed` given up
    (on_error), `dropped` pushed out of a full queue (policy "drop_oldest"); `retries` counts
    requests sent again, `blocked` calls that waited for room (policy "block").
    """

    queued: int
    sent: int
    duplicates: int
    rejected: int
    failed: int
    dropped: int
    retries: int
    blocked: int


OnRejected = Callable[[list[Rejection]], None]
OnError = Callable[[Failure], None]
