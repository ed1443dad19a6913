"""SQLite plumbing shared by the store and the log writer: connections, migrations, time units."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from herald.errors import StoreUnavailable
from herald.store.db import state_transaction, write_turn

__all__ = ["state_transaction", "write_turn"]  # the shared helpers, where they used to be

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
