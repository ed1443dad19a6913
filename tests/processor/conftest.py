"""Resources for the processor tests: a hand-moved clock, a workspace, an opened processor.

Events reach the log the way the API puts them there (check_batch with the workspace's schema,
then `store.append`), and results are read back the way a user reads them: through the store's
customer queries. `state_rows` reads what only the processor keeps (checkpoints, the processing
log): in herald.db.state beside a SQLite log, or in the PostgreSQL schema. The `store` fixture
(tests/conftest.py) makes every test run on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec
import pytest

from herald.core.events import Limits, check_batch, decode_envelope
from herald.processor.loop import Processor
from herald.store import postgres
from herald.store.base import (
    AppendRequest,
    AppendResult,
    CustomerEvent,
    CustomerRecord,
    Store,
    Workspace,
)
from herald.store.db import Db
from herald.store.sqlitedb import state_path
from tests.conftest import Keys, location_of

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
LIMITS = Limits(max_batch_events=10_000, max_event_bytes=64 * 1024)
START_S = 1_700_000_000.0  # the clock's first reading: any fixed moment will do

Event = dict[str, Any]
Database = Path | str  # what a processor opens: the SQLite log file, or a PostgreSQL URL


class Clock:
    """Seconds since the epoch that move only when the test moves them."""

    def __init__(self, start_s: float = START_S) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def an_event(
    value: str,
    name: str = "purchase",
    *,
    key: str = "_id",
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> Event:
    """One event as an SDK sends it, with a fresh uuid; `fields` add or replace fields."""
    return {
        "event": name,
        "correlationKey": key,
        "correlationValue": value,
        "source": "custom",
        "uuid": str(uuid4()),
        "payload": payload or {},
        **fields,
    }


def identify(value: str, distinct_id: str) -> Event:
    return an_event(value, "$identify", payload={"distinct_id": distinct_id})


def set_attributes(value: str, key: str = "_id", **attributes: Any) -> Event:
    return an_event(value, "$set", key=key, payload=attributes)


async def send(store: Store, workspace: Workspace, batch: list[Event]) -> AppendResult:
    """Commit `batch` to the log as `POST /api/events/batch/` does; every event must be valid."""
    checked = check_batch(
        decode_envelope(msgspec.json.encode({"batch": batch})),
        workspace_id=workspace.id,
        schema=workspace.schema,
        limits=LIMITS,
        new_id=lambda: uuid4().bytes,
    )
    assert not checked.rejected, [
        error.message for item in checked.rejected for error in item.errors
    ]
    request = AppendRequest(
        workspace_id=workspace.id,
        accepted=checked.accepted,
        rejected=[],
        received_at=datetime.now(UTC),
        sent_at=checked.sent_at,
    )
    return await store.append(request)


async def all_customers(store: Store, workspace: Workspace) -> list[CustomerRecord]:
    """Every live customer of the workspace, oldest first (GET /api/customers, all pages)."""
    found: list[CustomerRecord] = []
    cursor: str | None = None
    while True:
        page = await store.search_customers(workspace.id, [], cursor=cursor, limit=100)
        found.extend(page.customers)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def events_of(store: Store, workspace: Workspace, customer_id: str) -> list[CustomerEvent]:
    """A customer's events in commit order (GET /api/customers/{id}/events, all pages)."""
    found: list[CustomerEvent] = []
    cursor: str | None = None
    while True:
        page = await store.customer_events(workspace.id, customer_id, cursor=cursor, limit=100)
        found.extend(page.events)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def uuids(events: list[CustomerEvent]) -> list[str]:
    return [event.event.uuid for event in events]


def uuid_of(event: Event) -> str:
    return str(event["uuid"]).lower()


def seed_example(document: str, number: int) -> str:
    """The `number`-th (1-based) JSON example of tests/seeds/`document`.txt, exactly as written.

    The seeds hold no braces inside strings, so counting braces finds each top-level example.
    """
    text = (SEEDS / f"{document}.txt").read_text()
    examples: list[str] = []
    depth = start = 0
    for position, character in enumerate(text):
        if character == "{":
            start = position if depth == 0 else start
            depth += 1
        elif character == "}":
            depth -= 1
            if depth == 0:
                examples.append(text[start : position + 1])
    return examples[number - 1]


# What processing leaves behind, table by table (the processing log's owners and times aside).
STATE_QUERIES = {
    "customers": "SELECT id, workspace_id, attributes, created_at_us, updated_at_us, merged_into"
    " FROM customers ORDER BY id",
    "customer_keys": "SELECT * FROM customer_keys ORDER BY workspace_id, name, value, customer_id",
    "key_names": "SELECT * FROM key_names ORDER BY workspace_id, name",
    "event_records": "SELECT * FROM event_records ORDER BY id",
    "message_events": "SELECT * FROM message_events ORDER BY event_id",
    "partitions": "SELECT partition, checkpoint_seq, processed FROM partitions ORDER BY partition",
}


def state_snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row processing wrote to customers, keys, records and checkpoints."""
    return {table: state_rows(database, sql) for table, sql in STATE_QUERIES.items()}


def copy_database(source: Path, target: Path) -> None:
    """Copy a live SQLite database (its WAL included) with the backup API."""
    source_conn, target_conn = sqlite3.connect(source), sqlite3.connect(target)
    try:
        source_conn.backup(target_conn)
    finally:
        source_conn.close()
        target_conn.close()


def state_rows(database: Database, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of the processor's own state (read-only use): herald.db.state beside a SQLite log,
    or the PostgreSQL schema."""
    db: Db = (
        postgres.connect(database)
        if isinstance(database, str)
        else sqlite3.connect(state_path(database))
    )
    try:
        return [tuple(row) for row in db.execute(sql, params).fetchall()]
    finally:
        db.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database(store: Store) -> Database:
    """What a processor opens: the SQLite log the `store` fixture writes (herald.db.state beside
    it is the processor's), or the PostgreSQL schema holding both."""
    return location_of(store)


@pytest.fixture
async def workspace(store: Store, keys: Keys) -> Workspace:
    """Workspace `default` (primary key `email`): `keys.write` and `keys.admin` belong to it."""
    return await store.get_workspace("default")


@pytest.fixture
def processor(database: Database, store: Store, clock: Clock) -> Iterator[Processor]:
    """A processor over the store's log, opened (it takes its partitions on its first step)."""
    processor = Processor(database, clock=clock, name="processor-a")
    processor.open()
    yield processor
    processor.close()


OpenProcessor = Callable[..., Processor]


@pytest.fixture
def open_processor(database: Database, store: Store) -> Iterator[OpenProcessor]:
    """Open processors over the store's log by name (`clock=`, options); all closed at the end."""
    opened: list[Processor] = []

    def open_processor(name: str, *, clock: Clock, **options: Any) -> Processor:
        processor = Processor(database, clock=clock, name=name, **options)
        processor.open()
        opened.append(processor)
        return processor

    yield open_processor
    for processor in opened:
        processor.close()  # closing twice is harmless


@pytest.fixture
async def other_workspace(store: Store, keys: Keys) -> Workspace:
    """Workspace `other`, with keys of its own (`keys.other_write`)."""
    return await store.get_workspace("other")
