"""The embedded store: one SQLite file in WAL mode, plus the LMDB id index beside it.

One writer thread owns the write connection and commits every queued request in one transaction
(group commit). Reads run on short-lived threads, each with its own connection (WAL readers never
block the writer). An exclusive lock file keeps a second Herald from writing the same file.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from herald.core.events import Accepted, partition_of
from herald.core.keys import KeyKind, hash_key, key_prefix
from herald.core.schema import CustomerSchema
from herald.errors import Conflict, NotFound, ServiceError, StoreUnavailable
from herald.store.base import (
    ApiKey,
    AppendRequest,
    AppendResult,
    Counters,
    EventFilter,
    EventPage,
    QuarantinedEvent,
    StoredEvent,
    Workspace,
)
from herald.store.groupcommit import GroupCommitter, Observer
from herald.store.idindex import IdIndex, IdWriter, index_key, pack_location, split_ids
from herald.store.reading import decode_cursor, encode_cursor, event_at, page_events
from herald.types import KeyId, WorkspaceId

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000  # CLI writes wait for the writer's commit instead of failing
RECOVERY_CHUNK = 5_000  # batches re-indexed per LMDB transaction at start-up

_INSERT_BATCH = (
    "INSERT INTO event_batches (seq, workspace_id, partition, count, received_at_us, sent_at_us,"
    " ids, events) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (workspace_id, batch_index, uuid, raw, errors, received_at_us)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_ADD_COUNTERS = (
    "INSERT INTO workspace_counters (workspace_id, accepted, duplicates, rejected)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id) DO UPDATE SET"
    " accepted = accepted + excluded.accepted, duplicates = duplicates + excluded.duplicates,"
    " rejected = rejected + excluded.rejected"
)
_KEY_COLUMNS = (
    "k.id, k.kind, k.prefix, k.created_at, k.last_used_at, k.revoked_at,"
    " w.id, w.name, w.created_at, w.schema"
)
_encode = msgspec.json.encode
_decode_schema = msgspec.json.Decoder(CustomerSchema).decode


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass
class _Plan:
    """What one group commit writes: rows for SQLite, ids for the index, a result per request."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    locations: list[bytes] = field(default_factory=list)
    counters: dict[int, list[int]] = field(default_factory=dict)
    results: list[AppendResult] = field(default_factory=list)
    next_seq: int = 0


class SqliteStore:
    """Herald's embedded store. `writer=False` opens it for reading and admin only (the CLI)."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        writer: bool = True,
        max_pending_events: int = 200_000,
        max_commit_events: int = 20_000,
        observe_commit: Observer | None = None,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._writer = writer
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._lock_file: int | None = None
        self._ids: IdIndex | None = None
        self._next_seq = 1
        self._committer: GroupCommitter[AppendRequest, AppendResult] = GroupCommitter(
            self._write_group,
            size_of=lambda request: len(request.accepted) + len(request.rejected),
            max_pending=max_pending_events,
            max_group=max_commit_events,
            observe=observe_commit,
            name="herald-log-writer",
        )
        self._write_conn: sqlite3.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._open)
        if self._writer:
            self._committer.start()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        _migrate(conn)
        store_id = _ensure_store_id(conn)
        index_path = self.path.with_name(self.path.name + ".ids")
        if not self._writer:
            if index_path.exists():
                self._ids = IdIndex(index_path, readonly=True)
            return
        self._lock_file = _lock_exclusively(self.path.with_name(self.path.name + ".lock"))
        self._write_conn = self._new_connection()
        self._ids = IdIndex(index_path)
        self._next_seq = _recover_index(self._write_conn, self._ids, store_id)

    async def close(self) -> None:
        await asyncio.to_thread(self._committer.close)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        if self._write_conn is not None:
            self._write_conn.close()
        if self._ids is not None:
            self._ids.close()
        if self._lock_file is not None:
            os.close(self._lock_file)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # -- the event log ------------------------------------------------------------------------

    async def append(self, request: AppendRequest) -> AppendResult:
        return await self._committer.submit(request)

    def pending_events(self) -> int:
        return self._committer.pending()

    def _write_group(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        assert self._ids is not None and self._write_conn is not None
        writer = self._ids.write()
        try:
            plan = self._plan(requests, [request.accepted for request in requests])
            if not writer.insert_all_new(plan.keys, plan.locations):
                writer.abort()  # some ids exist already: redo the group one id at a time
                writer = self._ids.write()
                plan = self._plan_without_duplicates(requests, writer)
            _commit_plan(self._write_conn, plan)
            writer.set_checkpoint(plan.next_seq - 1)
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        self._next_seq = plan.next_seq
        return plan.results

    def _plan_without_duplicates(
        self, requests: Sequence[AppendRequest], writer: IdWriter
    ) -> _Plan:
        kept = [
            [
                event
                for event in request.accepted
                if writer.insert_if_new(index_key(request.workspace_id, event.id))
            ]
            for request in requests
        ]
        plan = self._plan(requests, kept)
        writer.set_locations(zip(plan.keys, plan.locations, strict=False))
        return plan

    def _plan(self, requests: Sequence[AppendRequest], kept: list[list[Accepted]]) -> _Plan:
        plan = _Plan()
        seq = self._next_seq
        for request, events in zip(requests, kept, strict=True):
            workspace_id = request.workspace_id
            prefix = workspace_id.to_bytes(4, "big")
            received_us = to_us(request.received_at)
            sent_us = to_us(request.sent_at) if request.sent_at else None
            for partition, lane in _by_partition(events).items():
                plan.keys.extend([prefix + event.id for event in lane])
                plan.locations.extend(
                    [pack_location(seq, position) for position in range(len(lane))]
                )
                plan.rows.append(
                    (
                        seq,
                        workspace_id,
                        partition,
                        len(lane),
                        received_us,
                        sent_us,
                        b"".join([event.id for event in lane]),
                        b"[" + b",".join([event.raw for event in lane]) + b"]",
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
            result = AppendResult(
                len(events), len(request.accepted) - len(events), len(request.rejected)
            )
            plan.results.append(result)
            totals = plan.counters.setdefault(workspace_id, [0, 0, 0])
            totals[0] += result.accepted
            totals[1] += result.duplicates
            totals[2] += result.rejected
        plan.next_seq = seq
        return plan

    async def list_events(
        self, workspace_id: WorkspaceId, filters: EventFilter, *, cursor: str | None, limit: int
    ) -> EventPage:
        before = decode_cursor(cursor)

        def query(conn: sqlite3.Connection) -> EventPage:
            sql = (
                "SELECT seq, workspace_id, partition, received_at_us, sent_at_us, ids, events"
                " FROM event_batches WHERE workspace_id = ? AND seq <= ?"
            )
            params: list[Any] = [workspace_id, before[0]]
            if filters.correlation_value is not None:
                sql += " AND partition = ?"
                params.append(partition_of(workspace_id, filters.correlation_value))
            rows = conn.execute(sql + " ORDER BY seq DESC", params)
            return page_events(rows, filters, before=before, limit=limit, newest_first=True)

        return await self._run(query)

    async def last_cursor(self) -> str | None:
        row = await self._run(
            lambda conn: conn.execute(
                "SELECT seq, count FROM event_batches ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        )
        return None if row is None else encode_cursor(row[0], row[1] - 1)

    async def tail_events(self, after: str | None, *, limit: int) -> EventPage:
        start = decode_cursor(after, default=(0, -1))

        def query(conn: sqlite3.Connection) -> EventPage:
            rows = conn.execute(
                "SELECT seq, workspace_id, partition, received_at_us, sent_at_us, ids, events"
                " FROM event_batches WHERE seq >= ? ORDER BY seq",
                (start[0],),
            )
            return page_events(rows, EventFilter(), before=start, limit=limit, newest_first=False)

        return await self._run(query)

    async def get_event(self, workspace_id: WorkspaceId, uuid: bytes) -> StoredEvent:
        location = self._ids.locate(workspace_id, uuid) if self._ids is not None else None
        if location is None:
            raise NotFound(
                f"No event with uuid {uuidlib.UUID(bytes=uuid)} in this workspace; "
                "list recent events with GET /api/events."
            )
        seq, position = location

        def query(conn: sqlite3.Connection) -> StoredEvent:
            rows = conn.execute(
                "SELECT seq, workspace_id, partition, received_at_us, sent_at_us, ids, events"
                " FROM event_batches WHERE seq = ?",
                (seq,),
            )
            return event_at(rows.fetchone(), position)

        return await self._run(query)

    # -- workspaces and keys ---------------------------------------------------------------

    async def create_workspace(self, name: str) -> Workspace:
        created_at = datetime.now(UTC)
        schema = CustomerSchema()

        def insert(conn: sqlite3.Connection) -> Workspace:
            try:
                cursor = conn.execute(
                    "INSERT INTO workspaces (name, created_at, schema) VALUES (?, ?, ?)",
                    (name, _iso(created_at), _encode(schema).decode()),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"A workspace named {name!r} already exists.") from None
            return Workspace(WorkspaceId(cursor.lastrowid or 0), name, created_at, schema)

        return await self._run(insert)

    async def get_workspace(self, name: str) -> Workspace:
        def select(conn: sqlite3.Connection) -> Workspace:
            row = conn.execute(
                "SELECT id, name, created_at, schema FROM workspaces WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"No workspace named {name!r}; list them with `herald workspaces list`."
                )
            return _workspace(row)

        return await self._run(select)

    async def list_workspaces(self) -> list[Workspace]:
        return await self._run(
            lambda conn: [
                _workspace(row)
                for row in conn.execute(
                    "SELECT id, name, created_at, schema FROM workspaces ORDER BY id"
                )
            ]
        )

    async def create_key(self, workspace_id: WorkspaceId, kind: KeyKind, key: str) -> ApiKey:
        created_at = _iso(datetime.now(UTC))

        def insert(conn: sqlite3.Connection) -> ApiKey:
            try:
                conn.execute(
                    "INSERT INTO api_keys (workspace_id, kind, prefix, key_hash, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (workspace_id, kind.value, key_prefix(key), hash_key(key), created_at),
                )
            except sqlite3.IntegrityError:
                raise Conflict("That API key is already registered.") from None
            return _select_key(conn, "k.key_hash = ?", hash_key(key))

        return await self._run(insert)

    async def find_key(self, key: str) -> ApiKey | None:
        def select(conn: sqlite3.Connection) -> ApiKey | None:
            try:
                found = _select_key(conn, "k.key_hash = ?", hash_key(key))
            except NotFound:
                return None
            return None if found.revoked_at else found

        return await self._run(select)

    async def list_keys(self, workspace_id: WorkspaceId) -> list[ApiKey]:
        def select(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id"
                " WHERE k.workspace_id = ? ORDER BY k.id",
                (workspace_id,),
            )
            return [_api_key(row) for row in rows]

        return await self._run(select)

    async def revoke_key(self, workspace_id: WorkspaceId, prefix: str) -> ApiKey:
        now = _iso(datetime.now(UTC))

        def revoke(conn: sqlite3.Connection) -> ApiKey:
            rows = conn.execute(
                "SELECT id FROM api_keys WHERE workspace_id = ? AND prefix LIKE ? || '%'"
                " AND revoked_at IS NULL",
                (workspace_id, prefix),
            ).fetchall()
            if not rows:
                raise NotFound(
                    f"No live key starting with {prefix!r} in this workspace; "
                    "see `herald keys list`."
                )
            if len(rows) > 1:
                raise Conflict(f"{len(rows)} keys start with {prefix!r}; give more characters.")
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, rows[0][0]))
            return _select_key(conn, "k.id = ?", rows[0][0])

        return await self._run(revoke)

    async def touch_keys(self, used_at: dict[KeyId, datetime]) -> None:
        rows = [(_iso(moment), key_id) for key_id, moment in used_at.items()]
        await self._run(
            lambda conn: conn.executemany("UPDATE api_keys SET last_used_at = ? WHERE id = ?", rows)
        )

    # -- quarantine and counters ------------------------------------------------------------

    async def list_quarantine(
        self, workspace_id: WorkspaceId, *, after_id: int | None, limit: int
    ) -> list[QuarantinedEvent]:
        def select(conn: sqlite3.Connection) -> list[QuarantinedEvent]:
            rows = conn.execute(
                "SELECT id, batch_index, uuid, raw, errors, received_at_us, replayed_at_us"
                " FROM quarantine WHERE workspace_id = ? AND id > ? ORDER BY id LIMIT ?",
                (workspace_id, after_id or 0, limit),
            )
            return [_quarantined(row) for row in rows]

        return await self._run(select)

    async def get_quarantined(self, workspace_id: WorkspaceId, item_id: int) -> QuarantinedEvent:
        def select(conn: sqlite3.Connection) -> QuarantinedEvent:
            row = conn.execute(
                "SELECT id, batch_index, uuid, raw, errors, received_at_us, replayed_at_us"
                " FROM quarantine WHERE workspace_id = ? AND id = ?",
                (workspace_id, item_id),
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"No quarantined event {item_id} in this workspace; "
                    "list them with GET /api/quarantine."
                )
            return _quarantined(row)

        return await self._run(select)

    async def delete_quarantined(self, workspace_id: WorkspaceId, item_id: int) -> None:
        await self.get_quarantined(workspace_id, item_id)
        await self._run(
            lambda conn: conn.execute(
                "DELETE FROM quarantine WHERE workspace_id = ? AND id = ?", (workspace_id, item_id)
            )
        )

    async def mark_replayed(self, workspace_id: WorkspaceId, item_id: int) -> None:
        now = to_us(datetime.now(UTC))
        await self._run(
            lambda conn: conn.execute(
                "UPDATE quarantine SET replayed_at_us = ? WHERE workspace_id = ? AND id = ?",
                (now, workspace_id, item_id),
            )
        )

    async def counters(self, workspace_id: WorkspaceId) -> Counters:
        def select(conn: sqlite3.Connection) -> Counters:
            row = conn.execute(
                "SELECT accepted, duplicates, rejected FROM workspace_counters"
                " WHERE workspace_id = ?",
                (workspace_id,),
            ).fetchone() or (0, 0, 0)
            (open_items,) = conn.execute(
                "SELECT count(*) FROM quarantine WHERE workspace_id = ? AND replayed_at_us IS NULL",
                (workspace_id,),
            ).fetchone()
            return Counters(row[0], row[1], row[2], open_items)

        return await self._run(select)

    # -- connections ------------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._run_sync, work)

    def _run_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self._connection())
        except ServiceError:
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"The database at {self.path} failed: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new_connection()
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _new_connection(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"Cannot open the database at {self.path}: {exc}") from exc
        return conn


def _by_partition(events: list[Accepted]) -> dict[int, list[Accepted]]:
    lanes: dict[int, list[Accepted]] = {}
    for event in events:
        lane = lanes.get(event.partition)
        if lane is None:
            lanes[event.partition] = [event]
        else:
            lane.append(event)
    return lanes


def _commit_plan(conn: sqlite3.Connection, plan: _Plan) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT_BATCH, plan.rows)
        if plan.quarantine:
            conn.executemany(_INSERT_QUARANTINE, plan.quarantine)
        conn.executemany(
            _ADD_COUNTERS, [(ws, *totals) for ws, totals in plan.counters.items() if any(totals)]
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreUnavailable(f"The event log could not be committed: {exc}") from exc


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the SQL files of herald/store/migrations not yet applied (PRAGMA user_version)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    folder = resources.files("herald.store") / "migrations"
    scripts = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    for number, name in enumerate(scripts, start=1):
        if number <= version:
            continue
        script = (folder / name).read_text()
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")


def _ensure_store_id(conn: sqlite3.Connection) -> str:
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", (uuidlib.uuid4().hex,)
    )
    (store_id,) = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    return str(store_id)


def _lock_exclusively(path: Path) -> int:
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        raise StoreUnavailable(
            f"Another Herald process is writing {path.with_suffix('')}; stop it first, "
            "or give this one its own HERALD_DATABASE_URL."
        ) from None
    return handle


def _recover_index(conn: sqlite3.Connection, ids: IdIndex, store_id: str) -> int:
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


def _workspace(row: tuple[Any, ...]) -> Workspace:
    return Workspace(
        WorkspaceId(row[0]), row[1], datetime.fromisoformat(row[2]), _decode_schema(row[3])
    )


def _select_key(conn: sqlite3.Connection, where: str, value: Any) -> ApiKey:
    row = conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id"
        f" WHERE {where}",
        (value,),
    ).fetchone()
    if row is None:
        raise NotFound("No such API key.")
    return _api_key(row)


def _api_key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(
        id=KeyId(row[0]),
        kind=KeyKind(row[1]),
        prefix=row[2],
        created_at=datetime.fromisoformat(row[3]),
        last_used_at=_from_iso(row[4]),
        revoked_at=_from_iso(row[5]),
        workspace=_workspace(row[6:10]),
    )


def _quarantined(row: tuple[Any, ...]) -> QuarantinedEvent:
    return QuarantinedEvent(
        id=row[0],
        index=row[1],
        uuid=row[2],
        raw=row[3],
        errors=msgspec.json.decode(row[4]),
        received_at=from_us(row[5]),
        replayed_at=from_us(row[6]) if row[6] is not None else None,
    )
