"""SQLite plumbing shared by the store and the log writer: connections, migrations, time units."""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from herald.errors import StoreUnavailable

BUSY_TIMEOUT_MS = 10_000  # CLI writes wait for the writer's commit instead of failing


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def connect(path: Path, *, synchronous: str) -> sqlite3.Connection:
    """A connection in autocommit mode, WAL journal, with the durability setting applied."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"Cannot open the database at {path}: {exc}") from exc
    return conn


def migrate(conn: sqlite3.Connection, folder_name: str = "migrations") -> None:
    """Apply the SQL files of herald/store/<folder_name> not yet applied (PRAGMA user_version)."""
    folder = resources.files("herald.store") / folder_name
    scripts = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version >= len(scripts):  # the common case: no write lock to wait for
            return
        conn.execute("BEGIN IMMEDIATE")  # read the version under the write lock: two processes
        (version,) = conn.execute("PRAGMA user_version").fetchone()  # never both migrate
        for number, name in enumerate(scripts, start=1):
            if number > version:
                for statement in _statements((folder / name).read_text()):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreUnavailable(f"Could not apply the database migrations: {exc}") from exc


def _statements(script: str) -> list[str]:
    """Split a migration into statements (they hold no semicolons inside literals)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


@contextlib.contextmanager
def write_turn(conn: sqlite3.Connection) -> Iterator[None]:
    """Take turns writing the database of `conn` with the other processes, fairly.

    SQLite's own wait for the write lock polls (sleeping up to 100 ms between tries), so a writer
    that commits and begins again at once (the processor, step after step) can starve the others
    until their busy timeout. A blocking flock on a file beside the database wakes the waiters as
    soon as it is released, and the processor asks for it again only after reading its next rows.
    """
    (_, _, file_name) = conn.execute("PRAGMA database_list").fetchone()
    with open(f"{file_name}.turn", "a+b") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)


@contextlib.contextmanager
def state_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on the state database, in turn with its other writers (write_turn):
    committed when the block ends, rolled back if it raises."""
    with write_turn(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def ensure_store_id(conn: sqlite3.Connection) -> str:
    """A random id for this database file, made once: tells a stale id index from a fresh one."""
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,)
    )
    (store_id,) = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    return str(store_id)


def index_path(path: Path) -> Path:
    return path.with_name(path.name + ".ids")


def state_path(path: Path) -> Path:
    """The processor's database (customers, checkpoints) beside the event log's."""
    return path.with_name(path.name + ".state")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")
