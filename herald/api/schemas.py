"""What the HTTP API sends back, as Structs shared by the handlers and the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from herald.core.events import EventError
from herald.core.journeys import JourneyError
from herald.store.base import CustomerRecord, EnrollmentRecord, JourneyRecord


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
    problems: list[JourneyError] | None = None  # a journey document's problems (step, field)


class ProcessingOut(msgspec.Struct, frozen=True, omit_defaults=True):
    """What the processor did with an event: `pending` until it has run, then the customer and
    the outcome (created, attributed, identified, merged, conflict) with the reason if any;
    `customer_deleted` (no customer_id) when its customer was deleted since."""

    outcome: str
    customer_id: str | None = None
    detail: str | None = None


class EventOut(msgspec.Struct, frozen=True, omit_defaults=True):
    """An event as stored: the fields as sent plus what Herald recorded about it.

    `processing` is given for one event read by its uuid.
    """

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
    processing: ProcessingOut | None = None


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


class UpsertedCustomer(msgspec.Struct, frozen=True):
    """The customer's Herald id; 201 and created=true when the upsert made it."""

    id: str
    created: bool


class DeletedCustomer(msgspec.Struct, frozen=True):
    id: str
    deleted: bool


# A customer goes out as the store describes it (id, attributes, identifiers, times).
CustomerOut = CustomerRecord


class CustomerList(msgspec.Struct, frozen=True):
    customers: list[CustomerOut]
    next_cursor: str | None


class CustomerEventOut(msgspec.Struct, frozen=True):
    """One of a customer's events and what processing did with it (created, merged, ...)."""

    event: EventOut
    outcome: str
    detail: str | None


class CustomerEventsOut(msgspec.Struct, frozen=True):
    customer_id: str
    events: list[CustomerEventOut]
    next_cursor: str | None


class JourneySaved(msgspec.Struct, frozen=True):
    """What saving a journey did (created, updated: a new version, unchanged) and the result."""

    change: str
    journey: JourneyRecord


class JourneyList(msgspec.Struct, frozen=True):
    journeys: list[JourneyRecord]


class EnrollmentList(msgspec.Struct, frozen=True):
    """A customer's journeys, newest first."""

    enrollments: list[EnrollmentRecord]
