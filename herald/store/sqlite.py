"""The embedded store: one SQLite file in WAL mode, plus the LMDB id index beside it.

One log writer (herald.store.logwriter) owns the write connection and commits every queued request
in one transaction (group commit): on a thread of this process, or in a writer process of its own
(`writer_process=True`, what `herald serve` uses, so that commits never wait for this process's
GIL). Reads run on worker threads, each with its own connection (WAL readers never block the
writer). An exclusive lock file keeps a second Herald from writing the same file.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from herald.core.conditions import Condition
from herald.core.events import PARTITIONS, partition_of
from herald.core.journeys import Journey, JourneyStatus
from herald.core.keys import KEY_PREFIX_LENGTH, KeyKind, hash_key, key_prefix
from herald.core.numbers import whole_number
from herald.core.schema import CustomerSchema
from herald.errors import Conflict, InvalidRequest, NotFound, ServiceError, StoreUnavailable
from herald.store import customers, journeys, outbox
from herald.store.base import (
    ApiKey,
    AppendRequest,
    AppendResult,
    Counters,
    CustomerEventPage,
    CustomerPage,
    CustomerRecord,
    EnrollmentRecord,
    EventFilter,
    EventPage,
    EventProcessing,
    JourneyRecord,
    JourneyStats,
    MessagePage,
    MessageStatus,
    NewMessage,
    OutboxMessage,
    PartitionStatus,
    QuarantinedEvent,
    StoredEvent,
    Workspace,
)
from herald.store.groupcommit import GroupCommitter, Observer
from herald.store.idindex import IdIndex, unpack_positions
from herald.store.ledger import record_id
from herald.store.logwriter import LogWriter
from herald.store.reading import (
    COLUMNS,
    decode_cursor,
    encode_cursor,
    event_at,
    page_events,
)
from herald.store.sqlitedb import (
    connect,
    ensure_store_id,
    from_us,
    index_path,
    migrate,
    state_path,
    state_transaction,
    to_us,
)
from herald.store.writerprocess import ProcessCommitter
from herald.types import KeyId, WorkspaceId

T = TypeVar("T")

_KEY_COLUMNS = (
    "k.id, k.kind, k.prefix, k.created_at, k.last_used_at, k.revoked_at,"
    " w.id, w.name, w.created_at, w.schema"
)
WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_REVOKE_PREFIX = 8  # "hk_w_" plus a few characters: never a prefix that matches every key
_encode = msgspec.json.encode
_decode_schema = msgspec.json.Decoder(CustomerSchema).decode


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class _Committer(Protocol):
    async def submit(self, request: AppendRequest) -> AppendResult: ...

    def pending(self) -> int: ...


class SqliteStore:
    """Herald's embedded store. `writer=False` opens it for reading and admin only (the CLI)."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        writer: bool = True,
        writer_process: bool = False,
        max_pending_events: int = 200_000,
        max_commit_events: int = 20_000,
        observe_commit: Observer | None = None,
        on_writer_lost: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._writer = writer
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._ids: IdIndex | None = None
        self._log: LogWriter | None = None
        self._thread: GroupCommitter[AppendRequest, AppendResult] | None = None
        self._process: ProcessCommitter | None = None
        self._committer: _Committer | None = None
        if writer and writer_process:
            self._process = ProcessCommitter(
                path,
                synchronous=synchronous,
                max_pending=max_pending_events,
                max_group=max_commit_events,
                observe=observe_commit,
                on_lost=on_writer_lost,
            )
            self._committer = self._process
        elif writer:
            self._log = LogWriter(path, synchronous=synchronous)
            self._thread = GroupCommitter(
                self._log.write_group,
                size_of=lambda request: len(request.accepted) + len(request.rejected),
                max_pending=max_pending_events,
                max_group=max_commit_events,
                observe=observe_commit,
                name="herald-log-writer",
            )
            self._committer = self._thread

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._open)
        if self._log is not None and self._thread is not None:
            await asyncio.to_thread(self._log.open)
            self._thread.start()
        if self._process is not None:
            await self._process.start()
        if self._log is not None:
            self._ids = self._log.ids  # LMDB allows one environment per file per process
        elif index_path(self.path).exists():
            self._ids = IdIndex(index_path(self.path), readonly=True)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        migrate(conn)
        ensure_store_id(conn)
        migrate(self._state_connection(), "state_migrations")

    async def close(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._thread.close)
        if self._process is not None:
            await self._process.close()
        if self._log is not None:
            self._log.close()
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        if self._ids is not None and self._log is None:
            self._ids.close()

    # -- customers (the state database) ----------------------------------------------------

    async def upsert_customers(
        self, workspace: Workspace, rows: Sequence[tuple[Any, Mapping[str, Any]]]
    ) -> list[tuple[str, bool]]:
        return await self._run_state(
            lambda state, _: customers.upsert(
                state, workspace_id=workspace.id, schema=workspace.schema, rows=rows
            )
        )

    async def find_customer(self, workspace: Workspace, key: Any) -> CustomerRecord:
        return await self._run_state(
            lambda state, _: customers.find_by_key(
                state, workspace_id=workspace.id, schema=workspace.schema, key=key
            )
        )

    async def delete_customer(self, workspace: Workspace, key: Any) -> str:
        return await self._run_state(
            lambda state, _: customers.delete(
                state, workspace_id=workspace.id, schema=workspace.schema, key=key
            )
        )

    async def get_customer(self, workspace_id: WorkspaceId, customer_id: str) -> CustomerRecord:
        return await self._run_state(
            lambda state, _: customers.get(state, workspace_id=workspace_id, herald_id=customer_id)
        )

    async def search_customers(
        self,
        workspace_id: WorkspaceId,
        conditions: list[Condition],
        *,
        cursor: str | None,
        limit: int,
    ) -> CustomerPage:
        return await self._run_state(
            lambda state, _: customers.search(
                state, workspace_id=workspace_id, conditions=conditions, cursor=cursor, limit=limit
            )
        )

    async def customer_events(
        self, workspace_id: WorkspaceId, customer_id: str, *, cursor: str | None, limit: int
    ) -> CustomerEventPage:
        return await self._run_state(
            lambda state, log: customers.events(
                state,
                log,
                workspace_id=workspace_id,
                herald_id=customer_id,
                cursor=cursor,
                limit=limit,
            )
        )

    async def check_unique(self, workspace_id: WorkspaceId, attribute: str) -> None:
        await self._run_state(
            lambda state, _: customers.unique_values(
                state, workspace_id=workspace_id, name=attribute
            )
        )

    async def event_processing(
        self, workspace_id: WorkspaceId, uuid: bytes
    ) -> EventProcessing | None:
        location = self._ids.locate(workspace_id, uuid) if self._ids is not None else None
        if location is None:
            return None
        return await self._run_state(
            lambda state, log: customers.processing_of(state, log, record_id(*location))
        )

    # -- journeys (the state database) -------------------------------------------------------

    async def save_journey(
        self, workspace_id: WorkspaceId, journey: Journey, *, create_only: bool = False
    ) -> tuple[JourneyRecord, str]:
        return await self._run_state(
            lambda state, _: journeys.save(
                state, workspace_id=workspace_id, journey=journey, create_only=create_only
            )
        )

    async def list_journeys(
        self, workspace_id: WorkspaceId, *, archived: bool = False
    ) -> list[JourneyRecord]:
        return await self._run_state(
            lambda state, _: journeys.listing(state, workspace_id=workspace_id, archived=archived)
        )

    async def get_journey(
        self, workspace_id: WorkspaceId, name: str, *, version: int | None = None
    ) -> JourneyRecord:
        return await self._run_state(
            lambda state, _: journeys.get(
                state, workspace_id=workspace_id, name=name, version=version
            )
        )

    async def set_journey_status(
        self, workspace_id: WorkspaceId, name: str, status: JourneyStatus
    ) -> JourneyRecord:
        return await self._run_state(
            lambda state, _: journeys.set_status(
                state, workspace_id=workspace_id, name=name, status=status
            )
        )

    async def release_processor(self, name_prefix: str) -> None:
        await self._run_state(lambda state, _: customers.release_processor(state, name_prefix))

    # -- the outbox (the state database) -----------------------------------------------------

    async def enqueue_messages(self, messages: list[NewMessage]) -> int:
        now_us = to_us(datetime.now(UTC))

        def insert(state: sqlite3.Connection, _: sqlite3.Connection) -> int:
            with state_transaction(state):
                return outbox.enqueue(state, messages, now_us=now_us)

        return await self._run_state(insert)

    async def release_deliveries(self, name_prefix: str) -> int:
        return await self._run_state(
            lambda state, _: outbox.release(state, worker_prefix=name_prefix)
        )

    async def list_messages(
        self,
        workspace_id: WorkspaceId,
        *,
        status: MessageStatus | None,
        cursor: str | None,
        limit: int,
    ) -> MessagePage:
        after = whole_number(cursor) if cursor is not None else 0
        if after is None:
            raise InvalidRequest(f"cursor {cursor!r} is not one Herald gave out.", field="cursor")
        return await self._run_state(
            lambda state, _: outbox.listing(
                state, workspace_id=workspace_id, status=status, after=after, limit=limit
            )
        )

    async def get_message(self, workspace_id: WorkspaceId, message_id: str) -> OutboxMessage:
        return await self._run_state(
            lambda state, _: outbox.get(state, workspace_id=workspace_id, message_id=message_id)
        )

    async def retry_message(self, workspace_id: WorkspaceId, message_id: str) -> OutboxMessage:
        now_us = to_us(datetime.now(UTC))
        return await self._run_state(
            lambda state, _: outbox.retry(
                state, workspace_id=workspace_id, message_id=message_id, now_us=now_us
            )
        )

    async def journey_stats(self, workspace_id: WorkspaceId, name: str) -> JourneyStats:
        return await self._run_state(
            lambda state, _: journeys.stats(state, workspace_id=workspace_id, name=name)
        )

    async def customer_journeys(
        self, workspace_id: WorkspaceId, customer_id: str
    ) -> list[EnrollmentRecord]:
        def select(state: sqlite3.Connection, _: sqlite3.Connection) -> list[EnrollmentRecord]:
            internal = customers.live_id(state, workspace_id=workspace_id, herald_id=customer_id)
            return journeys.enrollments_of(state, workspace_id=workspace_id, customer_id=internal)

        return await self._run_state(select)

    async def processing_status(self) -> list[PartitionStatus]:
        return await self._run_state(
            lambda state, log: customers.partition_status(state, log, now=datetime.now(UTC))
        )

    async def ping(self) -> None:
        if self._process is not None and not self._process.healthy():
            raise StoreUnavailable("The log writer process stopped; restart Herald.")
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # -- the event log ------------------------------------------------------------------------

    async def append(self, request: AppendRequest) -> AppendResult:
        if self._committer is None:
            raise StoreUnavailable("This store was opened read-only; events go through serve.")
        return await self._committer.submit(request)

    def pending_events(self) -> int:
        return self._committer.pending() if self._committer is not None else 0

    async def list_events(
        self, workspace_id: WorkspaceId, filters: EventFilter, *, cursor: str | None, limit: int
    ) -> EventPage:
        before = decode_cursor(cursor)

        def query(conn: sqlite3.Connection) -> EventPage:
            # The rows of request R have seqs R .. R + PARTITIONS - 1.
            sql = (
                f"SELECT {COLUMNS} FROM event_batches"
                " WHERE workspace_id = ? AND seq < ? AND request_seq <= ?"
            )
            params: list[Any] = [workspace_id, before[0] + PARTITIONS, before[0]]
            if filters.correlation_value is not None:
                sql += " AND partition = ?"
                params.append(partition_of(workspace_id, filters.correlation_value))
            rows = conn.execute(sql + " ORDER BY seq DESC", params)
            return page_events(rows, filters, cursor=before, limit=limit, newest_first=True)

        return await self._run(query)

    async def last_cursor(self) -> str | None:
        def query(conn: sqlite3.Connection) -> str | None:
            rows = conn.execute(
                "SELECT request_seq, positions FROM event_batches WHERE request_seq ="
                " (SELECT request_seq FROM event_batches ORDER BY seq DESC LIMIT 1)"
            ).fetchall()
            if not rows:
                return None
            return encode_cursor((rows[0][0], max(max(unpack_positions(p)) for _, p in rows)))

        return await self._run(query)

    async def tail_events(self, after: str | None, *, limit: int) -> EventPage:
        start = decode_cursor(after, default=(0, -1))

        def query(conn: sqlite3.Connection) -> EventPage:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM event_batches WHERE seq >= ? ORDER BY seq", (start[0],)
            )
            return page_events(rows, EventFilter(), cursor=start, limit=limit, newest_first=False)

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
            row = conn.execute(
                f"SELECT {COLUMNS} FROM event_batches WHERE seq = ?", (seq,)
            ).fetchone()
            return event_at(row, position)

        return await self._run(query)

    # -- workspaces and keys ---------------------------------------------------------------

    async def create_workspace(self, name: str) -> Workspace:
        if not WORKSPACE_NAME.fullmatch(name):
            raise InvalidRequest(
                f"Workspace name {name[:80]!r} is not usable: use 1 to 64 letters, digits, "
                "'-', '_' or '.', starting with a letter or digit."
            )
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

    async def change_schema(
        self, workspace_id: WorkspaceId, change: Callable[[CustomerSchema], CustomerSchema]
    ) -> Workspace:
        def update(conn: sqlite3.Connection) -> Workspace:
            conn.execute("BEGIN IMMEDIATE")  # read and write under one lock: no lost update
            try:
                row = conn.execute(
                    "SELECT id, name, created_at, schema FROM workspaces WHERE id = ?",
                    (workspace_id,),
                ).fetchone()
                if row is None:
                    raise NotFound(f"No workspace with id {workspace_id}.")
                schema = change(_workspace(row).schema)
                conn.execute(
                    "UPDATE workspaces SET schema = ? WHERE id = ?",
                    (_encode(schema).decode(), workspace_id),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return Workspace(WorkspaceId(row[0]), row[1], datetime.fromisoformat(row[2]), schema)

        return await self._run(update)

    async def create_key(self, workspace_id: WorkspaceId, kind: KeyKind, key: str) -> ApiKey:
        created_at = _iso(datetime.now(UTC))

        def insert(conn: sqlite3.Connection) -> ApiKey:
            try:
                conn.execute(
                    "INSERT INTO api_keys (workspace_id, kind, prefix, key_hash, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (workspace_id, kind.value, key_prefix(key), hash_key(key), created_at),
                )
            except sqlite3.IntegrityError as exc:
                if "FOREIGN KEY" in str(exc):
                    raise NotFound(f"No workspace with id {workspace_id}.") from None
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
        if len(prefix) < MIN_REVOKE_PREFIX:
            raise InvalidRequest(
                f"Give at least {MIN_REVOKE_PREFIX} characters of the key to revoke "
                f"(got {prefix!r}); `herald keys list` shows each key's prefix."
            )
        now = _iso(datetime.now(UTC))

        def revoke(conn: sqlite3.Connection) -> ApiKey:
            # The whole key (say, a leaked one) names its key exactly; otherwise match the
            # stored prefix case-sensitively (LIKE would ignore case and treat _ as a wildcard).
            rows = conn.execute(
                "SELECT id FROM api_keys WHERE workspace_id = ? AND key_hash = ?"
                " AND revoked_at IS NULL",
                (workspace_id, hash_key(prefix)),
            ).fetchall()
            if not rows:
                given = prefix[:KEY_PREFIX_LENGTH]
                rows = conn.execute(
                    "SELECT id FROM api_keys WHERE workspace_id = ? AND substr(prefix, 1, ?) = ?"
                    " AND revoked_at IS NULL",
                    (workspace_id, len(given), given),
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

        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE quarantine SET replayed_at_us = ? WHERE workspace_id = ? AND id = ?",
                (now, workspace_id, item_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"No quarantined event {item_id} in this workspace.")

        await self._run(update)

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

    async def _run_state(self, work: Callable[[sqlite3.Connection, sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(
            self._run_sync, lambda log: work(self._state_connection(), log)
        )

    def _state_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "state", None)
        if conn is None:
            conn = connect(state_path(self.path), synchronous=self._synchronous)
            self._local.state = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new_connection()
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _new_connection(self) -> sqlite3.Connection:
        return connect(self.path, synchronous=self._synchronous)


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
