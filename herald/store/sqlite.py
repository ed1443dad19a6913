"""The embedded store: one SQLite file in WAL mode, plus the LMDB id index beside it.

One log writer (herald.store.logwriter) owns the write connection and commits every queued request
in one transaction (group commit): on a thread of this process, or in a writer process of its own
(`writer_process=True`, what `herald serve` uses, so that commits never wait for this process's
GIL). Reads run on worker threads, each with its own connection (WAL readers never block the
writer). An exclusive lock file keeps a second Herald from writing the same file. The queries
other than the log's writes are the PostgreSQL store's too (herald.store.sqlstore).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from herald.errors import ServiceError, StoreUnavailable
from herald.store.base import AppendRequest, AppendResult
from herald.store.db import Db
from herald.store.groupcommit import GroupCommitter, Observer
from herald.store.idindex import IdIndex
from herald.store.logwriter import LogWriter
from herald.store.sqlitedb import connect, ensure_store_id, index_path, migrate, state_path
from herald.store.sqlstore import SqlStore
from herald.store.writerprocess import ProcessCommitter
from herald.types import WorkspaceId

T = TypeVar("T")


class _Committer(Protocol):
    async def submit(self, request: AppendRequest) -> AppendResult: ...

    def pending(self) -> int: ...


class SqliteStore(SqlStore):
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

    async def ping(self) -> None:
        if self._process is not None and not self._process.healthy():
            raise StoreUnavailable("The log writer process stopped; restart Herald.")
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def _locate(self, workspace_id: WorkspaceId, uuid: bytes) -> tuple[int, int] | None:
        return self._ids.locate(workspace_id, uuid) if self._ids is not None else None

    async def append(self, request: AppendRequest) -> AppendResult:
        if self._committer is None:
            raise StoreUnavailable("This store was opened read-only; events go through serve.")
        return await self._committer.submit(request)

    def pending_events(self) -> int:
        return self._committer.pending() if self._committer is not None else 0

    async def _run(self, work: Callable[[Db], T]) -> T:
        return await asyncio.to_thread(self._run_sync, work)

    def _run_sync(self, work: Callable[[Db], T]) -> T:
        try:
            return work(self._connection())
        except ServiceError:
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"The database at {self.path} failed: {exc}") from exc

    async def _run_state(self, work: Callable[[Db, Db], T]) -> T:
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
