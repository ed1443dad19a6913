"""Resources for the store tests: the database a test's stores live in (a SQLite file, its log
writer on a thread or in a process of its own, or a PostgreSQL schema), requests made the way the
API makes them, and a busy writer."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from uuid import uuid4

import msgspec
import psycopg
import pytest

from herald.core.events import Limits, check_batch, decode_envelope
from herald.core.schema import CustomerSchema
from herald.settings import Settings
from herald.store import open_store
from herald.store.base import AppendRequest, AppendResult, Store, StoredEvent
from herald.store.groupcommit import Observer
from herald.store.sqlite import SqliteStore
from herald.types import WorkspaceId
from tests.conftest import location_of, postgres_schema

S = TypeVar("S", bound=Store)

LIMITS = Limits(max_batch_events=10_000, max_event_bytes=64 * 1024)


def wire_event(
    customer: str = "customer-1",
    *,
    name: str = "purchase",
    uuid: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """One event as an SDK sends it, with a fresh uuid unless one is given."""
    event: dict[str, Any] = {
        "event": name,
        "correlationKey": "_id",
        "correlationValue": customer,
        "source": "custom",
        "uuid": uuid or str(uuid4()),
    }
    if timestamp is not None:
        event["timestamp"] = timestamp
    return event


def append_request(
    workspace_id: WorkspaceId,
    batch: list[dict[str, Any]],
    *,
    received_at: datetime | None = None,
    sent_at: str | None = None,
) -> AppendRequest:
    """The AppendRequest the API builds for `POST /api/events/batch/` with this batch."""
    body: dict[str, Any] = {"batch": batch}
    if sent_at is not None:
        body["sent_at"] = sent_at
    checked = check_batch(
        decode_envelope(msgspec.json.encode(body)),
        workspace_id=workspace_id,
        schema=CustomerSchema(),
        limits=LIMITS,
        new_id=lambda: uuid4().bytes,
    )
    return AppendRequest(
        workspace_id=workspace_id,
        accepted=checked.accepted,
        rejected=checked.rejected,
        received_at=received_at or datetime.now(UTC),
        sent_at=checked.sent_at,
    )


def uuids(events: list[StoredEvent]) -> list[str]:
    return [event.uuid for event in events]


def sent_uuids(batch: list[dict[str, str]]) -> list[str]:
    return [event["uuid"] for event in batch]


async def whole_log(store: Store) -> list[StoredEvent]:
    """Every event of every workspace, oldest first, read by tailing from the start."""
    events: list[StoredEvent] = []
    cursor: str | None = None
    while True:
        page = await store.tail_events(cursor, limit=1_000)
        if not page.events:
            return events
        events.extend(page.events)
        cursor = page.next_cursor


@asynccontextmanager
async def running(store: S) -> AsyncIterator[S]:
    """`store`, started, and closed on the way out (also when start fails)."""
    try:
        await store.start()
        yield store
    finally:
        await store.close()


def started(
    path: Path,
    *,
    writer: bool = True,
    writer_process: bool = False,
    max_pending_events: int = 200_000,
    observe_commit: Observer | None = None,
) -> contextlib.AbstractAsyncContextManager[SqliteStore]:
    """A SQLite store on `path`, started, and closed on the way out."""
    return running(
        SqliteStore(
            path,
            writer=writer,
            writer_process=writer_process,
            max_pending_events=max_pending_events,
            observe_commit=observe_commit,
        )
    )


@dataclass(frozen=True)
class Database:
    """Where a test's stores live: a SQLite file or a PostgreSQL schema of the test's own.

    Every store a test opens on it sees the same data, as processes sharing a database do.
    """

    url: str  # HERALD_DATABASE_URL: sqlite:///<a file in tmp_path>, or a schema's postgresql://
    writer_process: bool = False  # SQLite: the log writer in a process of its own

    def open_store(
        self,
        *,
        writer: bool = True,
        max_pending_events: int = 200_000,
        observe_commit: Observer | None = None,
    ) -> Store:
        """A store on this database, as Herald opens one, not started yet."""
        settings = Settings(database_url=self.url, max_pending_events=max_pending_events)
        return open_store(
            settings, writer=writer, writer_process=self.writer_process, observe=observe_commit
        )


@pytest.fixture(params=["sqlite-writer-thread", "sqlite-writer-process", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The store contract holds on SQLite (the log writer on a thread, or in a process of its
    own) and on PostgreSQL."""
    if request.param == "postgres":
        with postgres_schema() as url:
            yield Database(url)
    else:
        path = tmp_path / "herald.db"
        yield Database(f"sqlite:///{path}", writer_process=request.param.endswith("process"))


@pytest.fixture(params=["writer-thread", "writer-process"])
def writer_process(request: pytest.FixtureRequest) -> bool:
    """SQLite-only tests hold with the log writer on a thread and in a process of its own."""
    return bool(request.param == "writer-process")


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    async with running(database.open_store()) as store:
        yield store


@contextlib.contextmanager
def raw_connection(store: Store) -> Iterator[sqlite3.Connection | psycopg.Connection[Any]]:
    """A connection of the test's own to the store's database, in autocommit mode."""
    location = location_of(store)
    if isinstance(location, str):
        with psycopg.connect(location, autocommit=True) as conn:
            yield conn
    else:
        with contextlib.closing(sqlite3.connect(location, isolation_level=None)) as conn:
            yield conn


class WriteLock:
    """Another connection holding the event log's write lock, as a `herald` CLI write on SQLite,
    or another api process's append on PostgreSQL, does for a moment.

    SQLite: BEGIN IMMEDIATE takes the database's write lock. PostgreSQL: an open transaction
    holds the `log_head` row FOR UPDATE, which every append locks first. While it is held the
    store's writer thread waits for it, so whatever is queued stays queued: a deterministic
    "busy writer", without sleeps.
    """

    def __init__(self, store: Store) -> None:
        location = location_of(store)
        self._conn: sqlite3.Connection | psycopg.Connection[Any]
        if isinstance(location, str):
            self._conn = psycopg.connect(location, autocommit=True)
            self._conn.execute("BEGIN")
            self._conn.execute("SELECT next_seq FROM log_head WHERE id = 1 FOR UPDATE")
        else:
            self._conn = sqlite3.connect(location, isolation_level=None)
            self._conn.execute("BEGIN IMMEDIATE")
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._conn.execute("ROLLBACK")
            self._conn.close()

    def __enter__(self) -> WriteLock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


async def append_all_then_release(
    store: Store, requests: list[AppendRequest], lock: WriteLock
) -> list[AppendResult | BaseException]:
    """Submit every request while `lock` keeps the writer busy, then let it commit them."""
    appends = [asyncio.create_task(store.append(request)) for request in requests]

    async def release() -> None:
        lock.release()

    # Tasks take their first step in creation order: every append is queued (or refused)
    # before the lock goes.
    await asyncio.create_task(release())
    return await asyncio.gather(*appends, return_exceptions=True)
