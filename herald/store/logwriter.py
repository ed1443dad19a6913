"""The write side of the event log: one owner of the SQLite write connection and the id index.

`write_group` commits every request of a group in one SQLite transaction (one fsync), after
checking each event id against the index, and records the ids afterwards. It runs on the
store's writer thread, or in a writer process of its own (`herald.store.writerprocess`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import msgspec

from herald.core.events import Accepted
from herald.errors import StoreUnavailable
from herald.store.base import AppendRequest, AppendResult
from herald.store.idindex import (
    IdIndex,
    IdWriter,
    index_key,
    pack_location,
    pack_positions,
    split_ids,
)
from herald.store.sqlitedb import (
    connect,
    ensure_store_id,
    index_path,
    lock_path,
    migrate,
    to_us,
)

logger = logging.getLogger(__name__)

RECOVERY_CHUNK = 5_000  # batches re-indexed per LMDB transaction at start-up
# A writer that was just killed may hold the lock for a moment while its process ends.
LOCK_WAIT_S = 5.0
LOCK_RETRY_S = 0.05

_INSERT_BATCH = (
    "INSERT INTO event_batches (seq, request_seq, workspace_id, partition, count, received_at_us,"
    " sent_at_us, ids, positions, events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_QUARANTINE = (
    "INSERT INTO quarantine (workspace_id, batch_index, uuid, raw, errors, received_at_us)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
ADD_COUNTERS = (
    "INSERT INTO workspace_counters (workspace_id, accepted, duplicates, rejected)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id) DO UPDATE SET"
    " accepted = workspace_counters.accepted + excluded.accepted,"
    " duplicates = workspace_counters.duplicates + excluded.duplicates,"
    " rejected = workspace_counters.rejected + excluded.rejected"
)
_encode = msgspec.json.encode


@dataclass
class Plan:
    """What one group commit writes: rows for SQLite, ids for the index, a result per request."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    locations: list[bytes] = field(default_factory=list)
    counters: dict[int, list[int]] = field(default_factory=dict)
    results: list[AppendResult] = field(default_factory=list)
    next_seq: int = 0


class LogWriter:
    """Owns the lock file, the write connection and the id index of one SQLite store."""

    def __init__(self, path: Path, *, synchronous: str) -> None:
        self.path = path
        self._synchronous = synchronous
        self._lock_file: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._ids: IdIndex | None = None
        self._next_seq = 1
        self._store_id = ""
        self._index_stale = False

    def open(self) -> None:
        """Take the lock, apply migrations, and bring the id index up to the log."""
        self._lock_file = lock_exclusively(lock_path(self.path))
        self._conn = connect(self.path, synchronous=self._synchronous)
        migrate(self._conn)
        self._store_id = ensure_store_id(self._conn)
        self._ids = IdIndex(index_path(self.path))
        self._next_seq = recover_index(self._conn, self._ids, self._store_id)

    @property
    def ids(self) -> IdIndex:
        assert self._ids is not None, "open() first"
        return self._ids

    def close(self) -> None:
        """Release everything; closing twice is harmless."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._ids is not None:
            self._ids.close()
            self._ids = None
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def write_group(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        assert self._ids is not None and self._conn is not None, "open() first"
        if self._index_stale:  # an earlier index commit failed: catch up from the log first
            recover_index(self._conn, self._ids, self._store_id)
            self._index_stale = False
        writer = self._ids.write()
        try:
            plan = self._plan(requests, [request.accepted for request in requests])
            if not writer.insert_all_new(plan.keys, plan.locations):
                writer.abort()  # some ids exist already: redo the group one id at a time
                writer = self._ids.write()
                plan = self._plan_without_duplicates(requests, writer)
            _commit_plan(self._conn, plan)
        except BaseException:
            writer.abort()
            raise
        self._next_seq = plan.next_seq  # committed: the log is the truth from here on
        try:
            writer.set_checkpoint(plan.next_seq - 1)
            writer.commit()
        except lmdb.Error:
            writer.abort()
            logger.exception("The id index fell behind the log; it catches up on the next commit")
            self._index_stale = True
        return plan.results

    def _plan_without_duplicates(self, requests: Sequence[AppendRequest], writer: IdWriter) -> Plan:
        kept = [
            [
                event
                for event in request.accepted
                if writer.insert_if_new(index_key(request.workspace_id, event.id))
            ]
            for request in requests
        ]
        plan = self._plan(requests, kept)
        writer.set_locations(zip(plan.keys, plan.locations, strict=True))
        return plan

    def _plan(self, requests: Sequence[AppendRequest], kept: list[list[Accepted]]) -> Plan:
        return plan_group(requests, kept, self._next_seq)


def plan_group(requests: Sequence[AppendRequest], kept: list[list[Accepted]], seq: int) -> Plan:
    """The rows of a group of requests whose kept events are `kept`, from seq `seq` on."""
    plan = Plan()
    for request, events in zip(requests, kept, strict=True):
        seq = plan_request(plan, request, events, seq)
    plan.next_seq = seq
    return plan


def plan_request(plan: Plan, request: AppendRequest, events: list[Accepted], seq: int) -> int:
    """Add one request's rows to `plan`: one record batch per partition; return the next seq."""
    workspace_id = request.workspace_id
    prefix = workspace_id.to_bytes(4, "big")
    received_us = to_us(request.received_at)
    sent_us = to_us(request.sent_at) if request.sent_at else None
    request_seq = seq
    for partition, places in _by_partition(events).items():
        lane = [events[place] for place in places]
        plan.keys.extend([prefix + event.id for event in lane])
        plan.locations.extend([pack_location(seq, position) for position in range(len(lane))])
        ids = b"".join([event.id for event in lane])
        blob = b"[" + b",".join([event.raw for event in lane]) + b"]"
        plan.rows.append(
            (
                seq,
                request_seq,
                workspace_id,
                partition,
                len(lane),
                received_us,
                sent_us,
                ids,
                pack_positions(places),
                blob,
            )
        )
        seq += 1
    plan.quarantine.extend(
        (
            workspace_id,
            rejected.index,
            next((error.uuid for error in rejected.errors if error.uuid), None),
            rejected.raw,
            _encode(rejected.errors),
            received_us,
        )
        for rejected in request.rejected
    )
    result = AppendResult(len(events), len(request.accepted) - len(events), len(request.rejected))
    plan.results.append(result)
    totals = plan.counters.setdefault(workspace_id, [0, 0, 0])
    totals[0] += result.accepted
    totals[1] += result.duplicates
    totals[2] += result.rejected
    return seq


def _by_partition(events: list[Accepted]) -> dict[int, list[int]]:
    """The places in `events` of each partition's events, in order."""
    lanes: dict[int, list[int]] = {}
    for place, event in enumerate(events):
        lane = lanes.get(event.partition)
        if lane is None:
            lanes[event.partition] = [place]
        else:
            lane.append(place)
    return lanes


def _commit_plan(conn: sqlite3.Connection, plan: Plan) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT_BATCH, plan.rows)
        if plan.quarantine:
            conn.executemany(INSERT_QUARANTINE, plan.quarantine)
        conn.executemany(
            ADD_COUNTERS, [(ws, *totals) for ws, totals in plan.counters.items() if any(totals)]
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreUnavailable(f"The event log could not be committed: {exc}") from exc


def lock_exclusively(path: Path, *, wait_s: float = LOCK_WAIT_S) -> int:
    """Hold `path` locked for as long as the returned descriptor is open."""
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(LOCK_RETRY_S)
                continue
            os.close(handle)
            raise StoreUnavailable(
                f"Another Herald process is writing {path.with_suffix('')}; stop it first, "
                "or give this one its own HERALD_DATABASE_URL."
            ) from None
        return handle


def recover_index(conn: sqlite3.Connection, ids: IdIndex, store_id: str) -> int:
    """Bring the id index up to the log; return the next batch seq."""
    (max_seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM event_batches").fetchone()
    if ids.store_id() != store_id or ids.checkpoint() > max_seq:
        ids.reset(store_id)
    checkpoint = ids.checkpoint()
    while checkpoint < max_seq:
        rows = conn.execute(
            "SELECT seq, workspace_id, ids FROM event_batches WHERE seq > ? ORDER BY seq LIMIT ?",
            (checkpoint, RECOVERY_CHUNK),
        ).fetchall()
        writer = ids.write()
        writer.set_locations(
            (index_key(workspace_id, event_id), pack_location(seq, position))
            for seq, workspace_id, blob in rows
            for position, event_id in enumerate(split_ids(blob))
        )
        checkpoint = rows[-1][0]
        writer.set_checkpoint(checkpoint)
        writer.commit()
    return int(max_seq) + 1
