"""The Store interface: only the queries Herald needs, named for what they do."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import msgspec

from herald.core.conditions import Condition
from herald.core.events import Accepted, Rejected
from herald.core.journeys import Journey, JourneyStatus
from herald.core.keys import KeyKind
from herald.core.schema import CustomerSchema
from herald.types import KeyId, WorkspaceId


class Workspace(msgspec.Struct, frozen=True):
    id: WorkspaceId
    name: str
    created_at: datetime
    schema: CustomerSchema


class ApiKey(msgspec.Struct, frozen=True):
    id: KeyId
    workspace: Workspace
    kind: KeyKind
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class AppendRequest(msgspec.Struct, frozen=True):
    """One HTTP request's events, to be committed together with others in one group."""

    workspace_id: WorkspaceId
    accepted: list[Accepted]
    rejected: list[Rejected]
    received_at: datetime
    sent_at: datetime | None


class AppendResult(msgspec.Struct, frozen=True):
    accepted: int
    duplicates: int
    rejected: int


class StoredEvent(msgspec.Struct, frozen=True):
    """An event read back from the log: the JSON as sent plus what Herald recorded."""

    cursor: str
    workspace_id: WorkspaceId
    uuid: str
    raw: bytes
    received_at: datetime
    sent_at: datetime | None
    partition: int


class EventFilter(msgspec.Struct, frozen=True):
    correlation_value: str | None = None
    event: str | None = None
    start: datetime | None = None  # event timestamp >= start
    end: datetime | None = None  # event timestamp < end


class EventPage(msgspec.Struct, frozen=True):
    events: list[StoredEvent]
    next_cursor: str | None


class QuarantinedEvent(msgspec.Struct, frozen=True):
    id: int
    index: int
    uuid: str | None
    raw: bytes
    errors: list[dict[str, Any]]
    received_at: datetime
    replayed_at: datetime | None


class Counters(msgspec.Struct, frozen=True):
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined: int = 0


class CustomerRecord(msgspec.Struct, frozen=True):
    """A customer: Herald's id, attributes, and the `_id` values that resolve to it."""

    id: str
    attributes: dict[str, Any]
    identifiers: list[str]
    created_at: datetime
    updated_at: datetime


class CustomerPage(msgspec.Struct, frozen=True):
    customers: list[CustomerRecord]
    next_cursor: str | None


class CustomerEvent(msgspec.Struct, frozen=True):
    """One of a customer's events, with what processing did with it."""

    event: StoredEvent
    outcome: str
    detail: str | None


class CustomerEventPage(msgspec.Struct, frozen=True):
    customer_id: str
    events: list[CustomerEvent]
    next_cursor: str | None


class EventProcessing(msgspec.Struct, frozen=True):
    """What the processor did with one event: its customer (as the API names it) and outcome.

    `customer_id` is None when that customer has been deleted since (outcome customer_deleted).
    """

    customer_id: str | None
    outcome: str
    detail: str | None


class PartitionStatus(msgspec.Struct, frozen=True):
    """How far one partition is processed, who holds it, and how far behind it is."""

    partition: int
    owner: str | None
    checkpoint_seq: int
    processed: int
    behind_events: int
    behind_s: float


class JourneyRecord(msgspec.Struct, frozen=True):
    """A stored journey: its name, status, current version and that version's document."""

    name: str
    status: JourneyStatus
    version: int
    created_at: datetime
    updated_at: datetime
    definition: Journey


class MessageStatus(StrEnum):
    QUEUED = "queued"  # waiting for its (next) attempt
    SENT = "sent"
    FAILED = "failed"  # a permanent failure, or out of attempts: kept, and can be retried


class NewMessage(msgspec.Struct, frozen=True):
    """A message a journey step sends, rendered, for the outbox."""

    workspace_id: WorkspaceId
    enrollment_id: str
    step_number: int
    journey: str
    step: str
    customer_id: str
    kind: str  # "webhook" or "email"
    message: dict[str, Any]  # the channel's fields: url, method, headers, body... or to, subject...
    error: str | None = None  # why it cannot be sent (a template that would not render): failed


class OutboxMessage(msgspec.Struct, frozen=True):
    """A message in the outbox, with where its delivery stands."""

    id: str  # what receivers see: Idempotency-Key, Message-ID
    journey: str
    step: str
    step_number: int
    enrollment_id: str
    customer_id: str
    kind: str
    message: dict[str, Any]
    status: MessageStatus
    attempts: int
    due_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None


class MessagePage(msgspec.Struct, frozen=True):
    messages: list[OutboxMessage]
    next_cursor: str | None


class StepStats(msgspec.Struct, frozen=True):
    """One step: how often customers reached it, how many wait there now, its messages."""

    step: str
    entered: int
    waiting: int
    queued: int
    sent: int
    failed: int


class JourneyStats(msgspec.Struct, frozen=True):
    """A journey's enrollments by state, and each step's figures (all versions together)."""

    name: str
    version: int
    status: JourneyStatus
    entered: int
    waiting: int
    completed: int
    exited: int
    steps: list[StepStats]


class EnrollmentRecord(msgspec.Struct, frozen=True):
    """One of a customer's journeys: where it stands."""

    id: str
    journey: str
    version: int
    status: str
    step: str | None
    due_at: datetime | None
    entered_at: datetime
    updated_at: datetime


class Store(Protocol):
    """Persistence for every role; one adapter per database (SQLite embedded, PostgreSQL)."""

    async def start(self) -> None:
        """Open connections, apply migrations, start background writers."""

    async def close(self) -> None:
        """Finish pending commits and release everything."""

    async def append(self, request: AppendRequest) -> AppendResult:
        """Commit a request's events durably (group commit); raises Overloaded when full."""

    def pending_events(self) -> int:
        """Events waiting for a commit right now."""

    async def create_workspace(self, name: str) -> Workspace:
        """Create a workspace with the default customer schema; Conflict if the name is taken."""

    async def get_workspace(self, name: str) -> Workspace:
        """The workspace called `name`; NotFound otherwise."""

    async def list_workspaces(self) -> list[Workspace]: ...

    async def change_schema(
        self, workspace_id: WorkspaceId, change: Callable[[CustomerSchema], CustomerSchema]
    ) -> Workspace:
        """Apply `change` to the workspace's customer schema atomically; return the workspace."""

    async def create_key(self, workspace_id: WorkspaceId, kind: KeyKind, key: str) -> ApiKey:
        """Store a new key (hashed); the caller made the random key and shows it once."""

    async def find_key(self, key: str) -> ApiKey | None:
        """The live key matching `key`, or None when unknown or revoked."""

    async def list_keys(self, workspace_id: WorkspaceId) -> list[ApiKey]: ...

    async def revoke_key(self, workspace_id: WorkspaceId, prefix: str) -> ApiKey:
        """Revoke the key whose prefix is `prefix`; NotFound or Conflict (ambiguous prefix)."""

    async def touch_keys(self, used_at: dict[KeyId, datetime]) -> None:
        """Record when keys were last used (batched, off the ingest path)."""

    async def list_events(
        self, workspace_id: WorkspaceId, filters: EventFilter, *, cursor: str | None, limit: int
    ) -> EventPage:
        """Events newest first, filtered; `next_cursor` continues where the page ended."""

    async def get_event(self, workspace_id: WorkspaceId, uuid: bytes) -> StoredEvent:
        """The event with this id; NotFound otherwise."""

    async def last_cursor(self) -> str | None:
        """The cursor of the newest event of the log (None when empty), to tail from."""

    async def tail_events(self, after: str | None, *, limit: int) -> EventPage:
        """Events of every workspace committed after cursor `after`, oldest first."""

    async def list_quarantine(
        self, workspace_id: WorkspaceId, *, after_id: int | None, limit: int
    ) -> list[QuarantinedEvent]: ...

    async def get_quarantined(
        self, workspace_id: WorkspaceId, item_id: int
    ) -> QuarantinedEvent: ...

    async def delete_quarantined(self, workspace_id: WorkspaceId, item_id: int) -> None: ...

    async def mark_replayed(self, workspace_id: WorkspaceId, item_id: int) -> None: ...

    async def counters(self, workspace_id: WorkspaceId) -> Counters: ...

    async def upsert_customers(
        self, workspace: Workspace, rows: Sequence[tuple[Any, Mapping[str, Any]]]
    ) -> list[tuple[str, bool]]:
        """Create or update customers by primary key, (key, attributes) per row, atomically.

        Returns (id, created) per row. Values are checked against the schema by the caller.
        """

    async def find_customer(self, workspace: Workspace, key: Any) -> CustomerRecord:
        """The customer whose primary key is `key`; NotFound otherwise."""

    async def delete_customer(self, workspace: Workspace, key: Any) -> str:
        """Delete the customer whose primary key is `key` (NotFound otherwise); return its id."""

    async def get_customer(self, workspace_id: WorkspaceId, customer_id: str) -> CustomerRecord:
        """The customer with this id (a merged-away id gives the customer it became)."""

    async def search_customers(
        self,
        workspace_id: WorkspaceId,
        conditions: list[Condition],
        *,
        cursor: str | None,
        limit: int,
    ) -> CustomerPage:
        """Customers matching every condition, oldest first."""

    async def customer_events(
        self, workspace_id: WorkspaceId, customer_id: str, *, cursor: str | None, limit: int
    ) -> CustomerEventPage:
        """A customer's events in commit order, with each one's processing outcome."""

    async def check_unique(self, workspace_id: WorkspaceId, attribute: str) -> None:
        """Conflict when two customers share a value of `attribute` (before it becomes the key)."""

    async def event_processing(
        self, workspace_id: WorkspaceId, uuid: bytes
    ) -> EventProcessing | None:
        """What processing did with the event `uuid`; None while it waits to be processed."""

    async def release_processor(self, name_prefix: str) -> None:
        """Free the partitions of the processors whose names start with `name_prefix` at once
        (their process is known to be dead)."""

    async def processing_status(self) -> list[PartitionStatus]:
        """Per partition: checkpoint, owner, events and seconds behind."""

    async def save_journey(
        self, workspace_id: WorkspaceId, journey: Journey, *, create_only: bool = False
    ) -> tuple[JourneyRecord, str]:
        """Create the journey, or make its document a new version when it changed.

        Returns the record and what happened: "created", "updated" or "unchanged". With
        `create_only`, an existing name is a Conflict.
        """

    async def list_journeys(
        self, workspace_id: WorkspaceId, *, archived: bool = False
    ) -> list[JourneyRecord]: ...

    async def get_journey(
        self, workspace_id: WorkspaceId, name: str, *, version: int | None = None
    ) -> JourneyRecord:
        """The journey (at `version`, default the current one); NotFound otherwise."""

    async def set_journey_status(
        self, workspace_id: WorkspaceId, name: str, status: JourneyStatus
    ) -> JourneyRecord: ...

    async def enqueue_messages(self, messages: list[NewMessage]) -> int:
        """Put messages in the outbox, once per (enrollment, step number); return how many new."""

    async def release_deliveries(self, name_prefix: str) -> int:
        """Free the outbox claims of delivery workers known dead (names starting with the prefix):
        their messages go out again at once instead of when the claims run out."""

    async def list_messages(
        self,
        workspace_id: WorkspaceId,
        *,
        status: MessageStatus | None,
        cursor: str | None,
        limit: int,
    ) -> MessagePage: ...

    async def get_message(self, workspace_id: WorkspaceId, message_id: str) -> OutboxMessage:
        """One message; NotFound otherwise."""

    async def retry_message(self, workspace_id: WorkspaceId, message_id: str) -> OutboxMessage:
        """Queue a failed message again, due now (Conflict unless it failed)."""

    async def journey_stats(self, workspace_id: WorkspaceId, name: str) -> JourneyStats:
        """Entered, waiting, completed, exited; per step, and its messages by status."""

    async def customer_journeys(
        self, workspace_id: WorkspaceId, customer_id: str
    ) -> list[EnrollmentRecord]:
        """A customer's enrollments, newest first (a merged-away id gives the merged customer's)."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve."""
