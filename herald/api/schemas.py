"""What the HTTP API sends back, as Structs shared by the handlers and the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from herald.core.events import EventError


class IngestResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """The fate of every event of a batch; sent with 201 once the accepted ones are durable.

    `warnings` (only when there are some) names fields of accepted events that are outside the
    event schema: stored as sent, but ignored.
    """

    accepted: int
    duplicates: int
    rejected: int
    errors: list[EventError]
    warnings: list[EventError] = msgspec.field(default_factory=list)


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """Every error response: a stable code, a message saying what to fix, and details."""

    error: str
    message: str
    errors: list[EventError] | None = None
    field: str | None = None
    line: int | None = None
    column: int | None = None
    limits: dict[str, int] | None = None
    retry_after_s: int | None = None


class EventOut(msgspec.Struct, frozen=True, omit_defaults=True):
    """An event as stored: the fields as sent plus what Herald recorded about it."""

    uuid: str
    event: str
    correlationKey: str
    correlationValue: str
    source: str
    payload: dict[str, Any]
    receivedAt: datetime
    cursor: str
    timestamp: str | None = None
    sentAt: datetime | None = None
    context: dict[str, Any] | None = None
    fcm: dict[str, Any] | None = msgspec.field(default=None, name="$fcm")


class EventList(msgspec.Struct, frozen=True):
    events: list[EventOut]
    next_cursor: str | None


class QuarantineItem(msgspec.Struct, frozen=True):
    id: int
    index: int
    uuid: str | None
    raw: str
    errors: list[dict[str, Any]]
    received_at: datetime
    replayed_at: datetime | None


class QuarantineList(msgspec.Struct, frozen=True):
    items: list[QuarantineItem]
    next_cursor: str | None


class ReplayResult(msgspec.Struct, frozen=True):
    """A corrected quarantined event, committed (or found a duplicate)."""

    id: int
    uuid: str
    duplicate: bool


class CountersOut(msgspec.Struct, frozen=True):
    workspace: str
    accepted: int
    duplicates: int
    rejected: int
    quarantined: int


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    pending_events: int | None = None
