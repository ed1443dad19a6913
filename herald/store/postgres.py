"""The PostgreSQL store: the event log and the processor's state in one database.

Any number of processes (api workers, processors, delivery workers, the CLI) share it. Appends
are group commits as on SQLite, one writer thread per api process; what orders them across
processes is the `log_head` row (see pg_migrations/0001_initial.sql): an append locks it, takes
the next seqs, writes its rows with COPY and commits, so seqs commit in order and a reader never
passes a seq that commits later. Event ids are deduplicated in `event_ids`: the group's ids are
copied in optimistically; when one exists already the copy fails, rolls back to a savepoint, and
the group is planned again without the ids found (as the LMDB index does on SQLite).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlparse

import psycopg
import psycopg.errors

from herald.core.events import Accepted
from herald.errors import ConfigError, ServiceError, StoreUnavailable
from herald.store.base import AppendRequest, AppendResult
from herald.store.db import Db, PgDb
from herald.store.groupcommit import GroupCommitter, Observer
from herald.store.idindex import split_ids
from herald.store.logwriter import ADD_COUNTERS, INSERT_QUARANTINE, Plan, plan_group
from herald.store.sqlstore import SqlStore
from herald.types import WorkspaceId

logger = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATION_LOCK = 0x4845_5241_4C44_4D47  # advisory lock: one process migrates at a time
COPY_BATCHES = (
    "COPY event_batches (seq, request_seq, workspace_id, partition, count, received_at_us,"
    " sent_at_us, ids, positions, events) FROM STDIN (FORMAT BINARY)"
)
BATCH_TYPES = ["int8", "int8", "int4", "int4", "int4", "int8", "int8", "bytea", "bytea", "bytea"]
COPY_IDS = "COPY event_ids (workspace_id, id, seq, position) FROM STDIN (FORMAT BINARY)"
ID_TYPES = ["int4", "bytea", "int8", "int4"]


def connect(url: str, *, role: str = "herald") -> PgDb:
    """A connection in autocommit mode (transactions are begun explicitly, as on SQLite)."""
    try:
        return PgDb.connect(url, application_name=role)
    except psycopg.ProgrammingError:  # the URL itself (libpq's words would quote the password)
        raise ConfigError(
            f"HERALD_DATABASE_URL for {_safe(url)} cannot be read: percent-encode special "
            "characters of the user and password (a space is %20, @ is %40, % is %25)."
        ) from None
    except psycopg.Error as exc:
        raise StoreUnavailable(f"Cannot connect to PostgreSQL at {_safe(url)}: {exc}") from exc


def migrate(db: PgDb) -> None:
    """Apply the files of herald/store/pg_migrations not applied yet, under an advisory lock."""
    folder = resources.files("herald.store") / "pg_migrations"
    scripts = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    try:
        with db.conn.transaction():
            db.conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            db.conn.execute(
                "CREATE TABLE IF NOT EXISTS herald_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            row = db.conn.execute("SELECT coalesce(max(version), 0) FROM herald_migrations")
            (version,) = row.fetchone() or (0,)
            for number, name in enumerate(scripts, start=1):
                if number > version:
                    db.conn.execute((folder / name).read_text().encode())
                    db.conn.execute(
                        "INSERT INTO herald_migrations (version, name) VALUES (%s, %s)",
                        (number, name),
                    )
    except psycopg.Error as exc:
        raise StoreUnavailable(f"Could not apply the database migrations: {exc}") from exc


class PgLogWriter:
    """Commits groups of requests to the event log (one connection, the committer's thread)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._db: PgDb | None = None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def write_group(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        try:
            return self._write_group(self._connection(), requests)
        except psycopg.Error as exc:
            self.close()  # a broken connection is opened again for the next group
            raise StoreUnavailable(f"The event log could not be committed: {exc}") from exc

    def _write_group(self, db: PgDb, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        conn = db.conn
        with conn.transaction():
            head = conn.execute("SELECT next_seq FROM log_head WHERE id = 1 FOR UPDATE")
            (next_seq,) = head.fetchone() or (1,)
            kept = [_unique_in_group(request) for request in requests]
            plan = plan_group(requests, kept, next_seq)
            try:
                with conn.transaction():  # a savepoint: a known id undoes only this copy
                    copy_binary(conn, COPY_IDS, ID_TYPES, id_rows(plan))
            except psycopg.errors.UniqueViolation:
                kept = _without_known(conn, requests, kept)
                plan = plan_group(requests, kept, next_seq)
                copy_binary(conn, COPY_IDS, ID_TYPES, id_rows(plan))
            copy_binary(conn, COPY_BATCHES, BATCH_TYPES, plan.rows)
            if plan.quarantine:
                db.executemany(INSERT_QUARANTINE, _quarantine_rows(plan))
            counters = [(ws, *totals) for ws, totals in plan.counters.items() if any(totals)]
            if counters:
                db.executemany(ADD_COUNTERS, counters)
            conn.execute("UPDATE log_head SET next_seq = %s WHERE id = 1", (plan.next_seq,))
        return plan.results

    def _connection(self) -> PgDb:
        if self._db is None:
            self._db = connect(self._url, role="herald-log-writer")
        return self._db


def _unique_in_group(request: AppendRequest) -> list[Accepted]:
    """The request's events without repeats of an id (the API already refuses them; cheap)."""
    seen: set[bytes] = set()
    kept = []
    for event in request.accepted:
        if event.id not in seen:
            seen.add(event.id)
            kept.append(event)
    return kept


def _without_known(
    conn: psycopg.Connection[Any], requests: Sequence[AppendRequest], kept: list[list[Accepted]]
) -> list[list[Accepted]]:
    """`kept` without the ids the log has, nor an id a request earlier in the group has."""
    wanted: dict[int, list[bytes]] = {}
    for request, events in zip(requests, kept, strict=True):
        wanted.setdefault(request.workspace_id, []).extend(event.id for event in events)
    known = {
        (workspace_id, bytes(event_id))
        for workspace_id, ids in wanted.items()
        for (event_id,) in conn.execute(
            "SELECT id FROM event_ids WHERE workspace_id = %s AND id = ANY(%s)",
            (workspace_id, ids),
        )
    }
    result = []
    for request, events in zip(requests, kept, strict=True):
        fresh = []
        for event in events:
            key = (request.workspace_id, event.id)
            if key not in known:
                known.add(key)
                fresh.append(event)
        result.append(fresh)
    return result


def _quarantine_rows(plan: Plan) -> list[tuple[Any, ...]]:
    """The plan's quarantine rows with `errors` (JSON bytes) as text: PostgreSQL would store
    bytes given for a TEXT column as bytea's escaped hex (`\\x5b7b...`), not as the JSON."""
    return [(*row[:4], bytes(row[4]).decode(), *row[5:]) for row in plan.quarantine]


def id_rows(plan: Plan) -> list[tuple[int, bytes, int, int]]:
    return [
        (row[2], event_id, row[0], position)
        for row in plan.rows
        for position, event_id in enumerate(split_ids(row[7]))
    ]


def copy_binary(
    conn: psycopg.Connection[Any], statement: str, types: list[str], rows: Sequence[Any]
) -> None:
    with conn.cursor().copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _safe(url: str) -> str:
    """`url` without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:  # libpq cannot read it: say only where it points
        parsed = urlparse(url)
        return f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}{parsed.path}"
    host, dbname = info.get("host") or "localhost", info.get("dbname") or ""
    return f"{host}:{info.get('port') or 5432}/{dbname}"


class PostgresStore(SqlStore):
    """Herald on PostgreSQL. `writer=False` opens it for reading and admin only (the CLI)."""

    def __init__(
        self,
        url: str,
        *,
        writer: bool = True,
        max_pending_events: int = 200_000,
        max_commit_events: int = 20_000,
        observe_commit: Observer | None = None,
    ) -> None:
        self.url = url
        self._local = threading.local()
        self._connections: list[PgDb] = []
        self._connections_lock = threading.Lock()
        self._log = PgLogWriter(url) if writer else None
        self._committer: GroupCommitter[AppendRequest, AppendResult] | None = None
        if self._log is not None:
            self._committer = GroupCommitter(
                self._log.write_group,
                size_of=lambda request: len(request.accepted) + len(request.rejected),
                max_pending=max_pending_events,
                max_group=max_commit_events,
                observe=observe_commit,
                name="herald-log-writer",
            )

    async def start(self) -> None:
        await asyncio.to_thread(lambda: migrate(self._connection()))
        if self._committer is not None:
            self._committer.start()

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.to_thread(self._committer.close)
        if self._log is not None:
            self._log.close()
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def append(self, request: AppendRequest) -> AppendResult:
        if self._committer is None:
            raise StoreUnavailable("This store was opened read-only; events go through the API.")
        return await self._committer.submit(request)

    def pending_events(self) -> int:
        return self._committer.pending() if self._committer is not None else 0

    async def _locate(self, workspace_id: WorkspaceId, uuid: bytes) -> tuple[int, int] | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT seq, position FROM event_ids WHERE workspace_id = ? AND id = ?",
                (workspace_id, uuid),
            ).fetchone()
        )
        return (int(row[0]), int(row[1])) if row is not None else None

    async def _run(self, work: Callable[[Db], T]) -> T:
        return await asyncio.to_thread(self._run_sync, work)

    async def _run_state(self, work: Callable[[Db, Db], T]) -> T:
        return await asyncio.to_thread(self._run_sync, lambda db: work(db, db))

    def _run_sync(self, work: Callable[[Db], T]) -> T:
        db = self._connection()
        try:
            return work(db)
        except ServiceError:
            raise
        except psycopg.Error as exc:
            self._forget_connection(db)
            raise StoreUnavailable(f"PostgreSQL at {_safe(self.url)} failed: {exc}") from exc

    def _connection(self) -> PgDb:
        db: PgDb | None = getattr(self._local, "db", None)
        if db is None or db.conn.closed:
            db = connect(self.url)
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def _forget_connection(self, db: PgDb) -> None:
        """Drop a connection that failed (a broken one would fail every later call too)."""
        if db.conn.broken or db.in_transaction:
            db.close()
            self._local.db = None
