"""The on-disk queue: waiting events in a SQLite file, so they survive a restart of the process.

Each put is its own committed transaction before the call returns, so an event a call accepted is
in the file even if the process is killed a moment later (kill -9 included; the WAL is not
fsynced per commit, so an operating-system crash or power cut may lose the last ones). Rows are
deleted only once Herald answered for them; a batch that was sent but not yet deleted when the
process died is sent again by the next client, and Herald reports it as duplicates (same uuids).

One client per file: the connection holds SQLite's exclusive lock for as long as it is open, and
a second client gets QueueFileInUse instead of sending the same events twice.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Union

from herald_client.errors import QueueFileInUse
from herald_client.events import QueuedEvent

PathLike = Union[str, Path]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never go back, even when emptied
    uuid TEXT NOT NULL,
    event TEXT NOT NULL,
    correlation_value TEXT NOT NULL,
    data BLOB NOT NULL
)
"""
_INSERT = "INSERT INTO events (uuid, event, correlation_value, data) VALUES (?, ?, ?, ?)"
_SELECT = (
    "SELECT id, uuid, event, correlation_value, data FROM events WHERE id > ? ORDER BY id LIMIT ?"
)


class SqliteSpool:
    """Waiting events as rows of a SQLite file, oldest (lowest id) first."""

    durable = True

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._db = _open(self.path)
        self._taken_up_to = 0  # rows up to this id are in the sender's batch
        (self._waiting,) = self._db.execute("SELECT count(*) FROM events").fetchone()

    def __len__(self) -> int:
        return int(self._waiting)

    def waiting_bytes(self) -> int:
        """The size of the events left in the file, for the queue's byte count."""
        (size,) = self._db.execute("SELECT coalesce(sum(length(data)), 0) FROM events").fetchone()
        return int(size)

    def put(self, event: QueuedEvent) -> None:
        self._db.execute(_INSERT, event)
        self._waiting += 1

    def drop_oldest(self) -> QueuedEvent:
        row = self._db.execute(_SELECT, (self._taken_up_to, 1)).fetchone()
        self._db.execute("DELETE FROM events WHERE id = ?", (row[0],))
        self._waiting -= 1
        return QueuedEvent(*row[1:])

    def take(self, max_events: int, max_bytes: int) -> list[QueuedEvent]:
        batch: list[QueuedEvent] = []
        size = 0
        for row in self._db.execute(_SELECT, (self._taken_up_to, max_events)).fetchall():
            size += len(row[4])
            if batch and size > max_bytes:
                break
            batch.append(QueuedEvent(*row[1:]))
            self._taken_up_to = row[0]
        self._waiting -= len(batch)
        return batch

    def done(self) -> None:
        self._db.execute("DELETE FROM events WHERE id <= ?", (self._taken_up_to,))

    def close(self) -> None:
        self._db.close()


def _open(path: Path) -> sqlite3.Connection:
    """The queue file, created if needed, with its exclusive lock held."""
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=0)
    try:
        # EXCLUSIVE: the lock stays with this connection (one client per file), and SQLite keeps
        # the WAL index in memory instead of a -shm file. NORMAL: no fsync per commit.
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(_SCHEMA)
        db.execute("BEGIN IMMEDIATE")  # takes the lock now, not at the first event
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        db.close()
        if "locked" in str(exc):
            raise QueueFileInUse(
                f"the queue file {path} is open in another Herald client; give each client "
                "its own queue_path"
            ) from None
        raise
    return db
