"""The processor loop: lease partitions, read them in commit order, apply, checkpoint.

Every step is one write transaction on the state database that applies a chunk of the log and
advances the checkpoints of the partitions it covered, so a crash at any moment leaves each
partition either before or after the whole chunk: reprocessing after a restart changes nothing.

Partitions are leased (`partitions.owner`, `lease_until_us`): each processor holds about
PARTITIONS / live processors of them and renews its leases every third of the lease time; a
processor that stops renewing loses them when the lease runs out. Ownership is checked inside the
step's transaction, which holds the database's write lock, so two processors never commit progress
on the same partition.

Rows of the partitions a processor owns are merged by seq (and a request's rows by the events'
places in it), so one processor applies events in commit order across partitions too.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from herald.core.events import PARTITIONS
from herald.core.identity import ANONYMOUS_KEY
from herald.core.schema import CustomerSchema
from herald.processor.attribution import (
    IDENTITY_EVENTS,
    LoggedEvent,
    apply_event,
    decode_events,
    lookup_keys,
)
from herald.processor.journeys import JourneyCache, JourneyRunner
from herald.store import postgres
from herald.store.db import Db, PgDb, TransientError, snapshot, state_transaction
from herald.store.db import Error as DbError
from herald.store.idindex import unpack_positions
from herald.store.ledger import Ledger, record_id
from herald.store.sqlitedb import connect, from_us, migrate, state_path

logger = logging.getLogger(__name__)

TIMER_PARTITION = 0  # the processor holding this partition fires journey timers
PAUSE_S = 0.05  # after a step that was not full: events gather into larger steps
LEASE_S = 10.0  # a stopped processor's partitions move to another one after this long
MAX_STEP_EVENTS = (
    20_000  # events per transaction: bounds memory and how long the write lock is held
)

STATE_SYNCHRONOUS = "normal"  # see open()
STATE_CACHE_KIB = 256 * 1024  # SQLite page cache of the state database, per processor

STATE_CHECKPOINT_PAGES = 20_000  # WAL pages (4 KiB) before the state database checkpoints
MAX_KNOWN_IDS = 500_000  # identifiers remembered across steps (~100 bytes each), then forgotten

_decode_schema = msgspec.json.Decoder(CustomerSchema).decode

# seq, request_seq, workspace_id, partition, count, positions, events
LogRow = tuple[int, int, int, int, int, bytes, bytes, int]


@dataclass(frozen=True)
class _Lane:
    partition: int
    checkpoint: int


def processor_name_prefix(pid: int) -> str:
    """How the names of this host's processor `pid` start (host:pid:random by default)."""
    return f"{socket.gethostname()}:{pid}:"


class LeaseLost(Exception):
    """Raised when a partition this processor held was taken over (its lease had run out)."""


class Processor:
    """One processor: owns some partitions and applies their events, one transaction per step."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "full",
        lease_s: float = LEASE_S,
        max_step_events: int = MAX_STEP_EVENTS,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.name = name or f"{processor_name_prefix(os.getpid())}{uuid.uuid4().hex[:6]}"
        self._synchronous = synchronous
        self._lease_s = lease_s
        self._max_step_events = max_step_events
        # Record batches read per partition per step: enough to fill a step when requests carry
        # a few events per partition; the rows past the step are read again by the next one.
        self._fetch_rows = max(16, max_step_events // PARTITIONS // 4)
        self._clock = clock
        self._log: Db | None = None
        self._state: Db | None = None
        self._owned: dict[int, int] = {}  # partition -> checkpoint seq
        self._next_refresh = 0.0
        self._schemas: dict[int, CustomerSchema] = {}
        self._schemas_read_at = -math.inf
        # Who each `_id` identifier of the owned partitions names, remembered across steps: only
        # this processor changes those keys while it holds their partitions (an identifier is the
        # correlationValue that made it), except deletes, which bump customers_generation.
        self._known_ids: dict[int, dict[str, int | None]] = {}  # workspace -> identifier -> id
        self._known_count = 0
        self._generation: str | None = None
        self._journeys = JourneyCache()  # decoded journey documents, across steps
        self.processed = 0  # events applied by this processor since it opened

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (and migrate): `path` is the SQLite log file, or a PostgreSQL URL."""
        if isinstance(self.path, str):
            db = postgres.connect(self.path, role="herald-processor")
            postgres.migrate(db)
            self._log = self._state = db
        else:
            self._open_sqlite(self.path)
        self._state_db().executemany(
            "INSERT OR IGNORE INTO partitions (partition) VALUES (?)",
            [(partition,) for partition in range(PARTITIONS)],
        )

    def _open_sqlite(self, path: Path) -> None:
        self._log = connect(path, synchronous=self._synchronous)
        migrate(self._log)
        # No fsync per step: the state is derived from the log, and in WAL mode a power cut can
        # only roll it back to an earlier step, which is then redone from the log (kill -9 loses
        # nothing: committed pages are in the OS's cache). Its fsyncs queued with the log's.
        state = connect(state_path(path), synchronous=STATE_SYNCHRONOUS)
        # Customer keys and the per-customer index of event records take random inserts: a
        # cache that holds their hot pages saves re-reading them from the OS on every step.
        state.execute(f"PRAGMA cache_size = -{STATE_CACHE_KIB}")
        # A step dirties pages all over the customer index; checkpointing the WAL every 1,000
        # pages (the default) copied most of them back after every step.
        state.execute(f"PRAGMA wal_autocheckpoint = {STATE_CHECKPOINT_PAGES}")
        migrate(state, "state_migrations")
        self._state = state

    def close(self) -> None:
        """Give the partitions back at once (the next processor need not wait for the lease)."""
        if self._state is not None:
            try:
                self._state.execute(
                    "UPDATE partitions SET owner = NULL, lease_until_us = 0 WHERE owner = ?",
                    (self.name,),
                )
                self._state.execute("DELETE FROM processors WHERE id = ?", (self.name,))
            except DbError:
                logger.warning("Processor %s could not hand its partitions back", self.name)
            self._state.close()
        if self._log is not None and self._log is not self._state:
            self._log.close()
        self._state = self._log = None
        self._owned = {}

    def run(self, stop: threading.Event, *, pause_s: float = PAUSE_S) -> None:
        """Process until `stop` is set; pause `pause_s` after a step that was not full.

        Pausing lets events gather into larger steps when the processor keeps up: a step dirties
        about one page of the customer index per customer it touches, so ten small steps write
        (and make the disk flush) several times what one step over the same events does, and
        that writeback is what the log's fsync queues behind. Lag grows by at most `pause_s`.
        """
        while not stop.is_set():
            try:
                applied = self.step()
            except TransientError as exc:  # busy, or a lost connection: again shortly
                logger.warning("Processor %s step failed, retrying: %s", self.name, exc)
                self._reconnect_if_broken()
                applied = 0
            if applied < self._max_step_events // 2:
                stop.wait(pause_s)

    def owned(self) -> list[int]:
        return sorted(self._owned)

    # -- one step --------------------------------------------------------------------------

    def step(self) -> int:
        """Apply the next chunk of the owned partitions; return how many events it applied
        (plus the journey timers it fired, when it holds partition 0, which runs them)."""
        now = self._clock()
        if now >= self._next_refresh:
            self.refresh_leases()
        if not self._owned:
            return 0
        fired = self._fire_timers(now) if TIMER_PARTITION in self._owned else 0
        rows = self._fetch()
        if not rows:
            return fired
        try:
            applied = self._apply(rows, now)
        except LeaseLost as exc:
            logger.warning("Processor %s: %s", self.name, exc)
            self._next_refresh = 0.0
            return 0
        self.processed += applied
        return applied + fired

    def _fire_timers(self, now: float) -> int:
        """Advance the enrollments whose delay or wait is due (one transaction)."""
        state = self._connection(self._state)
        now_us = int(now * 1_000_000)
        due = state.execute(
            "SELECT 1 FROM enrollments WHERE status = 'waiting' AND due_at_us <= ? LIMIT 1",
            (now_us,),
        ).fetchone()
        if due is None:
            return 0
        with state_transaction(state):
            ledger = Ledger(state, now_us, known_ids=self._known_ids)
            runner = JourneyRunner(state, self._journeys)
            fired = runner.fire_due(ledger, now=from_us(now_us))
            ledger.flush()
            runner.flush(now=from_us(now_us))
        return fired

    def drain(self) -> int:
        """Step until the owned partitions are caught up; return the events applied (tests, CLI)."""
        total = 0
        while applied := self.step():
            total += applied
        return total

    def _fetch(self) -> list[LogRow]:
        """The next rows of the owned partitions, merged in seq order, cut at a request edge."""
        log = self._connection(self._log)
        with snapshot(log):  # one snapshot for every partition: no row can appear in a gap
            lanes = [
                log.execute(
                    "SELECT seq, request_seq, workspace_id, partition, count, positions, events,"
                    " received_at_us"
                    " FROM event_batches WHERE partition = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (partition, checkpoint, self._fetch_rows),
                ).fetchall()
                for partition, checkpoint in self._owned.items()
            ]
        # A lane that filled its page may have more rows below the other lanes' last seqs.
        bound = min(
            (lane[-1][0] for lane in lanes if len(lane) == self._fetch_rows),
            default=math.inf,
        )
        rows: list[LogRow] = []
        events = 0
        for row in heapq.merge(*lanes):
            if row[0] > bound or (events >= self._max_step_events and row[1] != rows[-1][1]):
                break
            rows.append(row)
            events += row[4]
        return rows

    def _apply(self, rows: list[LogRow], now: float) -> int:
        state = self._connection(self._state)
        now_us = int(now * 1_000_000)
        with state_transaction(state):
            self._check_ownership(state)
            self._check_generation(state)
            rows = [row for row in rows if row[0] > self._owned[row[3]]]
            ledger = Ledger(state, now_us, known_ids=self._known_ids)
            runner = JourneyRunner(state, self._journeys)
            applied = self._apply_rows(ledger, runner, rows)
            ledger.flush()
            runner.flush(now=from_us(now_us))
            self._advance(state, rows, now_us)
            generation = ledger.generation()  # ours included: our own merges are remembered
        self._generation = generation
        for row in rows:
            self._owned[row[3]] = max(self._owned[row[3]], row[0])
        self._remember(ledger)
        return applied

    def _remember(self, ledger: Ledger) -> None:
        if self._known_count > MAX_KNOWN_IDS:
            self._forget()
        for workspace_id, identifier, owner in ledger.anonymous_owners():
            known = self._known_ids.setdefault(workspace_id, {})
            self._known_count += identifier not in known
            known[identifier] = owner

    def _forget(self) -> None:
        self._known_ids.clear()
        self._known_count = 0

    def _apply_rows(self, ledger: Ledger, runner: JourneyRunner, rows: list[LogRow]) -> int:
        schemas = self._schemas_for({row[2] for row in rows})
        decoded = [decode_events(row[6]) for row in rows]
        wanted: list[tuple[int, str, str]] = []
        for row, events in zip(rows, decoded, strict=True):
            workspace_id = row[2]
            known = self._known_ids.get(workspace_id, {})
            for event in events:
                if event.correlation_key != ANONYMOUS_KEY or event.event in IDENTITY_EVENTS:
                    wanted.extend(lookup_keys(workspace_id, event, schemas[workspace_id]))
                elif event.correlation_value not in known:
                    wanted.append((workspace_id, ANONYMOUS_KEY, event.correlation_value))
        ledger.prefetch(wanted)
        applied = 0
        for row, index, event in _in_commit_order(rows, decoded):
            workspace_id = row[2]
            customer_id = apply_event(
                ledger,
                workspace_id=workspace_id,
                schema=schemas[workspace_id],
                event=event,
                event_id=record_id(row[0], index),
            )
            if runner.wants(workspace_id, event.event):
                runner.on_event(
                    ledger,
                    workspace_id=workspace_id,
                    customer_id=customer_id,
                    name=event.event,
                    source=event.source,
                    payload=event.fields(),
                    received_at=from_us(row[7]),
                )
            applied += 1
        return applied

    def _check_generation(self, state: Db) -> None:
        row = state.execute("SELECT value FROM meta WHERE key = 'customers_generation'").fetchone()
        generation = row[0] if row else None
        if generation != self._generation:  # a merge or delete elsewhere moved identifiers
            self._forget()
            self._generation = generation

    def _check_ownership(self, state: Db) -> None:
        rows = state.execute(
            "SELECT partition, owner, checkpoint_seq FROM partitions"
            f" WHERE partition IN ({','.join('?' * len(self._owned))})",
            list(self._owned),
        ).fetchall()
        for partition, owner, checkpoint in rows:
            if owner != self.name:
                del self._owned[partition]
                raise LeaseLost(f"partition {partition} was taken over by {owner}")
            if checkpoint != self._owned[partition]:  # only after a takeover and a hand-back:
                self._owned[partition] = checkpoint  # someone else processed it meanwhile
                self._forget()

    def _advance(self, state: Db, rows: list[LogRow], now_us: int) -> None:
        covered: dict[int, tuple[int, int, int]] = {}  # partition -> (first seq, last seq, events)
        for seq, _, _, partition, count, _, _, _ in rows:
            first, _, events = covered.get(partition, (seq, seq, 0))
            covered[partition] = (first, seq, events + count)
        lease_until_us = now_us + int(self._lease_s * 1_000_000)
        for partition, (first, last, events) in covered.items():
            state.execute(
                "UPDATE partitions SET checkpoint_seq = ?, processed = processed + ?,"
                " lease_until_us = ? WHERE partition = ?",
                (last, events, lease_until_us, partition),
            )
            extended = state.execute(
                "UPDATE processing_log SET to_seq = ?, at_us = ? WHERE id ="
                " (SELECT max(id) FROM processing_log WHERE partition = ?) AND owner = ?",
                (last, now_us, partition, self.name),
            ).rowcount
            if not extended:
                state.execute(
                    "INSERT INTO processing_log (partition, from_seq, to_seq, owner, at_us)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (partition, first, last, self.name, now_us),
                )

    def _schemas_for(self, workspace_ids: set[int]) -> dict[int, CustomerSchema]:
        now = time.monotonic()
        if now - self._schemas_read_at > 1.0 or not workspace_ids <= self._schemas.keys():
            rows = self._connection(self._log).execute("SELECT id, schema FROM workspaces")
            self._schemas = {workspace_id: _decode_schema(text) for workspace_id, text in rows}
            self._schemas_read_at = now
        return self._schemas

    # -- leases ----------------------------------------------------------------------------

    def refresh_leases(self) -> None:
        """Heartbeat, renew what this processor holds, and take or give back its fair share."""
        state = self._connection(self._state)
        now = self._clock()
        now_us = int(now * 1_000_000)
        lease_us = int(self._lease_s * 1_000_000)
        with state_transaction(state):
            owned = self._renew(state, now_us, lease_us)
        if any(self._owned.get(partition) != seq for partition, seq in owned.items()):
            self._forget()  # a partition new to us, or processed by another meanwhile
        if owned.keys() != self._owned.keys():
            logger.info("Processor %s holds partitions %s", self.name, sorted(owned))
        self._owned = owned
        self._next_refresh = now + self._lease_s / 3

    def _renew(self, state: Db, now_us: int, lease_us: int) -> dict[int, int]:
        """Heartbeat, take or give back partitions, renew the leases (inside a transaction)."""
        state.execute(
            "INSERT INTO processors (id, started_at_us, seen_at_us) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET seen_at_us = excluded.seen_at_us",
            (self.name, now_us, now_us),
        )
        state.execute("DELETE FROM processors WHERE seen_at_us < ?", (now_us - lease_us,))
        (live,) = state.execute("SELECT count(*) FROM processors").fetchone()
        owned = self._rebalance(state, math.ceil(PARTITIONS / live), now_us)
        state.execute(
            "UPDATE partitions SET lease_until_us = ? WHERE owner = ?",
            (now_us + lease_us, self.name),
        )
        return owned

    def _rebalance(self, state: Db, share: int, now_us: int) -> dict[int, int]:
        rows = state.execute(
            "SELECT partition, owner, lease_until_us, checkpoint_seq FROM partitions"
            " ORDER BY partition"
        ).fetchall()
        mine = {
            partition: checkpoint for partition, owner, _, checkpoint in rows if owner == self.name
        }
        for partition in sorted(mine)[share:]:
            state.execute(
                "UPDATE partitions SET owner = NULL, lease_until_us = 0 WHERE partition = ?",
                (partition,),
            )
            del mine[partition]
        free = [
            (partition, checkpoint)
            for partition, owner, until_us, checkpoint in rows
            if owner != self.name and (owner is None or until_us < now_us)
        ]
        for partition, checkpoint in free[: max(0, share - len(mine))]:
            state.execute(
                "UPDATE partitions SET owner = ? WHERE partition = ?", (self.name, partition)
            )
            mine[partition] = checkpoint
        return mine

    def _reconnect_if_broken(self) -> None:
        """Open PostgreSQL again after a lost connection (SQLite's do not break)."""
        broken = [db for db in (self._log, self._state) if isinstance(db, PgDb) and db.conn.broken]
        if broken and isinstance(self.path, str):
            self.close()
            self.open()
            self._next_refresh = 0.0

    def _state_db(self) -> Db:
        return self._connection(self._state)

    @staticmethod
    def _connection(conn: Db | None) -> Db:
        assert conn is not None, "open() the processor first"
        return conn


def _in_commit_order(
    rows: list[LogRow], decoded: list[list[LoggedEvent]]
) -> Iterator[tuple[LogRow, int, LoggedEvent]]:
    """Each event with its row and index in it: rows in seq order, a request's by event place."""
    start = 0
    while start < len(rows):
        end = start
        while end < len(rows) and rows[end][1] == rows[start][1]:
            end += 1
        if end - start == 1:
            row = rows[start]
            yield from ((row, index, event) for index, event in enumerate(decoded[start]))
        else:  # sort by place in the request; ints sort faster than tuples
            placed = sorted(
                place << 40 | position << 24 | index
                for position in range(start, end)
                for index, place in enumerate(unpack_positions(rows[position][5]))
            )
            for key in placed:
                position, index = key >> 24 & 0xFFFF, key & 0xFFFFFF
                yield rows[position], index, decoded[position][index]
        start = end
