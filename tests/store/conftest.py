"""Builders for the store tests: requests made the way the API makes them, and a busy writer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import uuid4

import msgspec
import pytest

from herald.core.events import Limits, check_batch, decode_envelope
from herald.core.schema import CustomerSchema
from herald.store.base import AppendRequest, AppendResult, StoredEvent
from herald.store.groupcommit import Observer
from herald.store.sqlite import SqliteStore
from herald.types import WorkspaceId

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


async def whole_log(store: SqliteStore) -> list[StoredEvent]:
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
async def started(
    path: Path,
    *,
    writer: bool = True,
    writer_process: bool = False,
    max_pending_events: int = 200_000,
    observe_commit: Observer | None = None,
) -> AsyncIterator[SqliteStore]:
    """A store on `path`, started, and closed on the way out (also when start fails)."""
    store = SqliteStore(
        path,
        writer=writer,
        writer_process=writer_process,
        max_pending_events=max_pending_events,
        observe_commit=observe_commit,
    )
    try:
        await store.start()
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["writer-thread", "writer-process"])
def writer_process(request: pytest.FixtureRequest) -> bool:
    """The store contract holds with the log writer on a thread and in a process of its own."""
    return bool(request.param == "writer-process")


@pytest.fixture
async def store(tmp_path: Path, writer_process: bool) -> AsyncIterator[SqliteStore]:
    async with started(tmp_path / "herald.db", writer_process=writer_process) as store:
        yield store


class WriteLock:
    """Another connection holding SQLite's write lock, as a `herald` CLI write does for a moment.

    While it is held the store's writer thread waits for it in BEGIN IMMEDIATE, so whatever is
    queued stays queued: a deterministic "busy writer", without sleeps.
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
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
    store: SqliteStore, requests: list[AppendRequest], lock: WriteLock
) -> list[AppendResult | BaseException]:
    """Submit every request while `lock` keeps the writer busy, then let it commit them."""
    appends = [asyncio.create_task(store.append(request)) for request in requests]

    async def release() -> None:
        lock.release()

    # Tasks take their first step in creation order: every append is queued (or refused)
    # before the lock goes.
    await asyncio.create_task(release())
    return await asyncio.gather(*appends, return_exceptions=True)
