"""What the SQLite and PostgreSQL stores share: every query but the event log's write side.

The queries live in the shared modules (customers, journeys, outbox, reading) and run on a `Db`
(herald.store.db); a store says how it gets connections (`_run`, `_run_state`: the state may be
a database of its own, as on SQLite) and where an event id lies in the log (`_locate`).
"""

from __future__ import annotations

import re
import uuid as uuidlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from herald.core.conditions import Condition
from herald.core.events import PARTITIONS, partition_of
from herald.core.journeys import Journey, JourneyStatus
from herald.core.keys import KEY_PREFIX_LENGTH, KeyKind, hash_key, key_prefix
from herald.core.numbers import whole_number
from herald.core.schema import CustomerSchema
from herald.errors import Conflict, InvalidRequest, NotFound
from herald.store import customers, journeys, outbox
from herald.store.base import (
    ApiKey,
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
from herald.store.db import Db, IntegrityError, for_update, state_transaction, transaction
from herald.store.idindex import unpack_positions
from herald.store.ledger import record_id
from herald.store.reading import (
    COLUMNS,
    decode_cursor,
    encode_cursor,
    event_at,
    page_events,
)
from herald.store.sqlitedb import from_us, to_us
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


class SqlStore(ABC):
    """The Store methods both databases answer with the same SQL."""

    @abstractmethod
    async def _run(self, work: Callable[[Db], T]) -> T:
        """Run `work` on a connection to the log's database, on a worker thread."""

    @abstractmethod
    async def _run_state(self, work: Callable[[Db, Db], T]) -> T:
        """Run `work(state, log)` on a worker thread."""

    @abstractmethod
    async def _locate(self, workspace_id: WorkspaceId, uuid: bytes) -> tuple[int, int] | None:
        """Where the event `uuid` lies in the log: (seq, position in its record batch)."""

    async def event_processing(
        self, workspace_id: WorkspaceId, uuid: bytes
    ) -> EventProcessing | None:
        location = await self._locate(workspace_id, uuid)
        if location is None:
            return None
        return await self._run_state(
            lambda state, log: customers.processing_of(state, log, record_id(*location))
        )

    async def get_event(self, workspace_id: WorkspaceId, uuid: bytes) -> StoredEvent:
        location = await self._locate(workspace_id, uuid)
        if location is None:
            raise NotFound(
                f"No event with uuid {uuidlib.UUID(bytes=uuid)} in this workspace; "
                "list recent events with GET /api/events."
            )
        seq, position = location

        def query(conn: Db) -> StoredEvent:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM event_batches WHERE seq = ?", (seq,)
            ).fetchone()
            return event_at(row, position)

        return await self._run(query)

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

    async def enqueue_messages(self, messages: list[NewMessage]) -> int:
        now_us = to_us(datetime.now(UTC))

        def insert(state: Db, _: Db) -> int:
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
        def select(state: Db, _: Db) -> list[EnrollmentRecord]:
            internal = customers.live_id(state, workspace_id=workspace_id, herald_id=customer_id)
            return journeys.enrollments_of(state, workspace_id=workspace_id, customer_id=internal)

        return await self._run_state(select)

    async def processing_status(self) -> list[PartitionStatus]:
        return await self._run_state(
            lambda state, log: customers.partition_status(state, log, now=datetime.now(UTC))
        )

    async def list_events(
        self, workspace_id: WorkspaceId, filters: EventFilter, *, cursor: str | None, limit: int
    ) -> EventPage:
        before = decode_cursor(cursor)

        def query(conn: Db) -> EventPage:
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
        def query(conn: Db) -> str | None:
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

        def query(conn: Db) -> EventPage:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM event_batches WHERE seq >= ? ORDER BY seq", (start[0],)
            )
            return page_events(rows, EventFilter(), cursor=start, limit=limit, newest_first=False)

        return await self._run(query)

    async def create_workspace(self, name: str) -> Workspace:
        if not WORKSPACE_NAME.fullmatch(name):
            raise InvalidRequest(
                f"Workspace name {name[:80]!r} is not usable: use 1 to 64 letters, digits, "
                "'-', '_' or '.', starting with a letter or digit."
            )
        created_at = datetime.now(UTC)
        schema = CustomerSchema()

        def insert(conn: Db) -> Workspace:
            try:
                (workspace_id,) = conn.execute(
                    "INSERT INTO workspaces (name, created_at, schema) VALUES (?, ?, ?)"
                    " RETURNING id",
                    (name, _iso(created_at), _encode(schema).decode()),
                ).fetchone()
            except IntegrityError:
                raise Conflict(f"A workspace named {name!r} already exists.") from None
            return Workspace(WorkspaceId(workspace_id), name, created_at, schema)

        return await self._run(insert)

    async def get_workspace(self, name: str) -> Workspace:
        def select(conn: Db) -> Workspace:
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
        def update(conn: Db) -> Workspace:
            with transaction(conn):  # read and write under one lock: no lost update
                row = conn.execute(
                    "SELECT id, name, created_at, schema FROM workspaces WHERE id = ?"
                    + for_update(conn),
                    (workspace_id,),
                ).fetchone()
                if row is None:
                    raise NotFound(f"No workspace with id {workspace_id}.")
                schema = change(_workspace(row).schema)
                conn.execute(
                    "UPDATE workspaces SET schema = ? WHERE id = ?",
                    (_encode(schema).decode(), workspace_id),
                )
            return Workspace(WorkspaceId(row[0]), row[1], datetime.fromisoformat(row[2]), schema)

        return await self._run(update)

    async def create_key(self, workspace_id: WorkspaceId, kind: KeyKind, key: str) -> ApiKey:
        created_at = _iso(datetime.now(UTC))

        def insert(conn: Db) -> ApiKey:
            try:
                conn.execute(
                    "INSERT INTO api_keys (workspace_id, kind, prefix, key_hash, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (workspace_id, kind.value, key_prefix(key), hash_key(key), created_at),
                )
            except IntegrityError as exc:
                if "FOREIGN KEY" in str(exc).upper():
                    raise NotFound(f"No workspace with id {workspace_id}.") from None
                raise Conflict("That API key is already registered.") from None
            return _select_key(conn, "k.key_hash = ?", hash_key(key))

        return await self._run(insert)

    async def find_key(self, key: str) -> ApiKey | None:
        def select(conn: Db) -> ApiKey | None:
            try:
                found = _select_key(conn, "k.key_hash = ?", hash_key(key))
            except NotFound:
                return None
            return None if found.revoked_at else found

        return await self._run(select)

    async def list_keys(self, workspace_id: WorkspaceId) -> list[ApiKey]:
        def select(conn: Db) -> list[ApiKey]:
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

        def revoke(conn: Db) -> ApiKey:
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

    async def list_quarantine(
        self, workspace_id: WorkspaceId, *, after_id: int | None, limit: int
    ) -> list[QuarantinedEvent]:
        def select(conn: Db) -> list[QuarantinedEvent]:
            rows = conn.execute(
                "SELECT id, batch_index, uuid, raw, errors, received_at_us, replayed_at_us"
                " FROM quarantine WHERE workspace_id = ? AND id > ? ORDER BY id LIMIT ?",
                (workspace_id, after_id or 0, limit),
            )
            return [_quarantined(row) for row in rows]

        return await self._run(select)

    async def get_quarantined(self, workspace_id: WorkspaceId, item_id: int) -> QuarantinedEvent:
        def select(conn: Db) -> QuarantinedEvent:
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

        def update(conn: Db) -> None:
            cursor = conn.execute(
                "UPDATE quarantine SET replayed_at_us = ? WHERE workspace_id = ? AND id = ?",
                (now, workspace_id, item_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"No quarantined event {item_id} in this workspace.")

        await self._run(update)

    async def counters(self, workspace_id: WorkspaceId) -> Counters:
        def select(conn: Db) -> Counters:
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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _workspace(row: tuple[Any, ...]) -> Workspace:
    return Workspace(
        WorkspaceId(row[0]), row[1], datetime.fromisoformat(row[2]), _decode_schema(row[3])
    )


def _select_key(conn: Db, where: str, value: Any) -> ApiKey:
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
