"""One connection interface over SQLite and PostgreSQL, for the SQL both stores share.

The shared modules (customers, journeys, outbox, the ledger, the processor, delivery) are written
against `Db`: `execute`/`executemany` with `?` placeholders, rows as tuples, `rowcount`. A sqlite3
connection is one as it is; `PgDb` wraps a psycopg connection (autocommit, so that `BEGIN` and
`COMMIT` are explicit as on SQLite) and rewrites each statement once: `?` becomes `%s`, and
`INSERT OR IGNORE` becomes `INSERT ... ON CONFLICT DO NOTHING`. Statements are prepared by
psycopg after their fifth use.

What differs in meaning is said by the helpers here, not by the callers:
- `state_transaction`: one writer of the state at a time. SQLite has one write lock (plus a fair
  turn between processes); on PostgreSQL a transaction-scoped advisory lock gives the same order,
  so processing stays exactly as on SQLite (see docs/design.md, "PostgreSQL").
- `write_turn`: SQLite's fair turn for single statements; nothing on PostgreSQL (row locks).
- `snapshot`: several reads that see one moment of the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import psycopg
import psycopg.errors

STATE_LOCK = 0x4845_5241_4C44  # "HERALD": the advisory lock that orders state writers

# Errors of either database, for the few places that handle them.
Error: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
IntegrityError: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    psycopg.errors.IntegrityError,
)
# Worth retrying the whole transaction: a lock wait ran out, a deadlock, a serialization failure.
TransientError: tuple[type[Exception], ...] = (
    sqlite3.OperationalError,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.LockNotAvailable,
    psycopg.OperationalError,
)


class Rows(Protocol):
    """What a statement gives back (a DB-API cursor)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection in autocommit mode; `?` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Rows: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Rows: ...

    def close(self) -> None: ...


class PgDb:
    """A psycopg connection that takes the statements written for SQLite (see the module doc)."""

    postgres = True

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    @classmethod
    def connect(cls, url: str, *, application_name: str = "herald") -> PgDb:
        conn = psycopg.connect(url, autocommit=True, application_name=application_name)
        return cls(conn)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Rows:
        return self.conn.execute(_postgres(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Rows:
        cursor = self.conn.cursor()
        cursor.executemany(_postgres(sql), parameters)
        return cursor

    def close(self) -> None:
        self.conn.close()

    def copy_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def is_postgres(db: Db) -> bool:
    return getattr(db, "postgres", False)


def insert_rows(db: Db, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` (plain inserts: a duplicate key fails the transaction). PostgreSQL takes
    them in one COPY: executemany runs one INSERT per row, a round of the protocol each."""
    if not rows:
        return
    if isinstance(db, PgDb):
        db.copy_rows(table, columns, rows)
        return
    places = ", ".join("?" * len(rows[0]))
    db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({places})", rows)


_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT OR IGNORE INTO", re.IGNORECASE)
_RETURNING = re.compile(r"\sRETURNING\s", re.IGNORECASE)


@functools.lru_cache(maxsize=1_024)
def _postgres(sql: str) -> str:
    """`sql` as PostgreSQL takes it (no statement here has a `?` or `%` inside a literal)."""
    text = sql.replace("%", "%%").replace("?", "%s")
    if _INSERT_OR_IGNORE.match(text):
        text = _INSERT_OR_IGNORE.sub("INSERT INTO", text, count=1)
        returning = _RETURNING.search(text)
        cut = returning.start() if returning else len(text)
        text = f"{text[:cut]} ON CONFLICT DO NOTHING{text[cut:]}"
    return text


@contextlib.contextmanager
def write_turn(db: Db) -> Iterator[None]:
    """Take turns writing the database of `db` with the other processes, fairly.

    SQLite's own wait for the write lock polls (sleeping up to 100 ms between tries), so a writer
    that commits and begins again at once (the processor, step after step) can starve the others
    until their busy timeout. A blocking flock on a file beside the database wakes the waiters as
    soon as it is released, and the processor asks for it again only after reading its next rows.
    PostgreSQL queues lock waiters itself: nothing to do there.
    """
    if is_postgres(db):
        yield
        return
    (_, _, file_name) = db.execute("PRAGMA database_list").fetchone()
    with open(f"{file_name}.turn", "a+b") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)


@contextlib.contextmanager
def state_transaction(db: Db) -> Iterator[None]:
    """One write transaction on the state, with no other state writer at the same time:
    committed when the block ends, rolled back if it raises."""
    with write_turn(db):
        if is_postgres(db):
            with _transaction(db, "BEGIN", f"SELECT pg_advisory_xact_lock({STATE_LOCK})"):
                yield
        else:
            with _transaction(db, "BEGIN IMMEDIATE"):
                yield


@contextlib.contextmanager
def transaction(db: Db) -> Iterator[None]:
    """A plain transaction (row locks only on PostgreSQL; the write lock on SQLite)."""
    if is_postgres(db):
        with _transaction(db, "BEGIN"):
            yield
    else:
        with state_transaction(db):
            yield


@contextlib.contextmanager
def _transaction(db: Db, *begin: str) -> Iterator[None]:
    for statement in begin:
        db.execute(statement)
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextlib.contextmanager
def snapshot(db: Db) -> Iterator[None]:
    """Reads that all see the database at one moment."""
    db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if is_postgres(db) else "BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def for_update(db: Db) -> str:
    """What a SELECT adds to lock the rows it reads until the transaction ends."""
    return " FOR UPDATE" if is_postgres(db) else ""


def skip_locked(db: Db) -> str:
    """What a claiming SELECT adds: lock the rows it reads, skipping those others hold."""
    return " FOR UPDATE SKIP LOCKED" if is_postgres(db) else ""
