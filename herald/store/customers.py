"""Customers in the SQLite state database: the queries behind the customers API and `status`.

Functions take the connections they need (the state database's, and the event log's where events
are read back); SqliteStore runs them on its worker threads.
"""

from __future__ import annotations

import contextlib
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from herald.core.conditions import Condition, matches_all
from herald.core.events import PARTITIONS
from herald.core.identity import ANONYMOUS_KEY
from herald.core.numbers import whole_number
from herald.core.schema import CustomerSchema
from herald.errors import Conflict, InvalidRequest, NotFound
from herald.store.base import (
    CustomerEvent,
    CustomerEventPage,
    CustomerPage,
    CustomerRecord,
    EventProcessing,
    PartitionStatus,
    StoredEvent,
)
from herald.store.db import Db
from herald.store.idindex import unpack_positions
from herald.store.ledger import MAX_MERGE_CHAIN, Ledger, key_text
from herald.store.reading import encode_cursor
from herald.store.sqlitedb import from_us, state_transaction, to_us, write_turn
from herald.types import WorkspaceId

MAX_SCAN_CUSTOMERS = 20_000  # a filtered page scans at most this many customers, then continues

_decode_attributes = msgspec.json.Decoder(dict[str, Any]).decode
_decode_raws = msgspec.json.Decoder(list[msgspec.Raw]).decode


def upsert(
    state: Db,
    *,
    workspace_id: int,
    schema: CustomerSchema,
    rows: Sequence[tuple[Any, Mapping[str, Any]]],
) -> list[tuple[str, bool]]:
    """Create or update the customers whose primary keys are given, in one transaction.

    `rows` are (primary-key value, attributes to set); returns (id, created) for each.
    """
    primary = _primary_key(schema)
    results = []
    with _write(state) as ledger:
        ledger.prefetch((workspace_id, primary, text) for key, _ in rows if (text := key_text(key)))
        for key, properties in rows:
            customer_id = ledger.resolve(workspace_id, primary, key, schema)
            created = customer_id is None
            if customer_id is None:
                customer_id = ledger.new_id()
                ledger.create(workspace_id, customer_id)
            ledger.set_attributes(customer_id, {**properties, primary: key})
            results.append((ledger.herald_id(customer_id), created))
    return results


def delete(state: Db, *, workspace_id: int, schema: CustomerSchema, key: Any) -> str:
    """Delete the customer whose primary key is `key`; return its id."""
    primary = _primary_key(schema)
    with _write(state) as ledger:
        customer_id = ledger.resolve(workspace_id, primary, key, schema)
        if customer_id is None:
            raise _no_customer(primary, key)
        herald_id = ledger.herald_id(customer_id)
        ledger.delete(customer_id)
    return herald_id


def find_by_key(
    state: Db, *, workspace_id: int, schema: CustomerSchema, key: Any
) -> CustomerRecord:
    primary = _primary_key(schema)
    known = state.execute(
        "SELECT 1 FROM key_names WHERE workspace_id = ? AND name = ?", (workspace_id, primary)
    ).fetchone()
    if known is None:  # first lookup by this attribute: index it (a write, once)
        with _write(state) as ledger:
            ledger.ensure_key_name(workspace_id, primary)
    text = key_text(key)
    row = state.execute(
        "SELECT customer_id FROM customer_keys WHERE workspace_id = ? AND name = ? AND value = ?"
        " ORDER BY customer_id LIMIT 1",
        (workspace_id, primary, text),
    ).fetchone()
    if row is None:
        raise _no_customer(primary, key)
    return _record(state, _live_row(state, workspace_id, row[0]))


def get(state: Db, *, workspace_id: int, herald_id: str) -> CustomerRecord:
    """The customer with this id; a merged-away id gives the customer it was merged into."""
    return _record(
        state, _live_row(state, workspace_id, _internal_id(state, workspace_id, herald_id))
    )


_COLUMNS = "id, attributes, created_at_us, updated_at_us, merged_into, uuid"


def _internal_id(state: Db, workspace_id: int, herald_id: str) -> int:
    try:
        value = uuidlib.UUID(herald_id).bytes
    except ValueError:
        raise NotFound(
            f"{herald_id[:80]!r} is not a customer id (ids are UUIDs, as upsert returns them)."
        ) from None
    row = state.execute(
        "SELECT id FROM customers WHERE uuid = ? AND workspace_id = ?", (value, workspace_id)
    ).fetchone()
    if row is None:
        raise NotFound(
            f"No customer with id {herald_id} in this workspace; "
            "find customers with GET /api/customers."
        )
    return int(row[0])


def live_id(state: Db, *, workspace_id: int, herald_id: str) -> int:
    """The internal id of the customer a public id names now (following merges)."""
    return int(_live_row(state, workspace_id, _internal_id(state, workspace_id, herald_id))[0])


def _live_row(state: Db, workspace_id: int, customer_id: int) -> tuple[Any, ...]:
    for _ in range(MAX_MERGE_CHAIN):
        row = state.execute(
            f"SELECT {_COLUMNS} FROM customers WHERE id = ? AND workspace_id = ?",
            (customer_id, workspace_id),
        ).fetchone()
        if row is None:
            break
        if row[4] is None:
            return tuple(row)
        customer_id = row[4]
    raise NotFound(
        "That customer no longer exists in this workspace; find customers with GET /api/customers."
    )


def search(
    state: Db,
    *,
    workspace_id: int,
    conditions: list[Condition],
    cursor: str | None,
    limit: int,
) -> CustomerPage:
    """Customers matching every condition, by id; `next_cursor` continues the scan."""
    after = _cursor_int(cursor)
    rows = state.execute(
        f"SELECT {_COLUMNS} FROM customers"
        " WHERE workspace_id = ? AND merged_into IS NULL AND id > ? ORDER BY id LIMIT ?",
        (workspace_id, after, MAX_SCAN_CUSTOMERS),
    ).fetchall()
    found: list[CustomerRecord] = []
    for row in rows:
        if matches_all(conditions, _decode_attributes(row[1])):
            found.append(_record(state, row))
            if len(found) == limit:
                return CustomerPage(found, str(row[0]))
    more = len(rows) == MAX_SCAN_CUSTOMERS
    return CustomerPage(found, str(rows[-1][0]) if more else None)


def events(
    state: Db,
    log: Db,
    *,
    workspace_id: int,
    herald_id: str,
    cursor: str | None,
    limit: int,
) -> CustomerEventPage:
    """A customer's events in commit order, with what processing did with each."""
    row = _live_row(state, workspace_id, _internal_id(state, workspace_id, herald_id))
    customer = _record(state, row)
    records = state.execute(
        "SELECT id, outcome, detail FROM event_records WHERE customer_id = ? AND id > ?"
        " ORDER BY id LIMIT ?",
        (row[0], _cursor_int(cursor), limit),
    ).fetchall()
    rows: dict[int, tuple[Any, ...]] = {}
    for seq in sorted({record_id >> 24 for record_id, _, _ in records}):
        rows[seq] = log.execute(
            "SELECT request_seq, workspace_id, received_at_us, sent_at_us, ids, positions, events,"
            " partition FROM event_batches WHERE seq = ?",
            (seq,),
        ).fetchone()
    found = [
        CustomerEvent(_stored(rows[record_id >> 24], record_id & 0xFFFFFF), outcome, detail)
        for record_id, outcome, detail in records
    ]
    next_cursor = str(records[-1][0]) if len(records) == limit else None
    return CustomerEventPage(customer.id, found, next_cursor)


CUSTOMER_DELETED = "customer_deleted"  # processed, and its customer deleted since


def processing_of(state: Db, log: Db, event_id: int) -> EventProcessing | None:
    """What processing did with the event at this address in the log (None: not yet)."""
    row = state.execute(
        "SELECT c.uuid, r.outcome, r.detail FROM event_records r"
        " JOIN customers c ON c.id = r.customer_id WHERE r.id = ?",
        (event_id,),
    ).fetchone()
    if row is not None:
        return EventProcessing(str(uuidlib.UUID(bytes=row[0])), row[1], row[2])
    seq = event_id >> 24
    located = log.execute("SELECT partition FROM event_batches WHERE seq = ?", (seq,)).fetchone()
    processed = (
        located is not None
        and state.execute(
            "SELECT 1 FROM partitions WHERE partition = ? AND checkpoint_seq >= ?",
            (located[0], seq),
        ).fetchone()
    )
    if not processed:
        return None
    return EventProcessing(None, CUSTOMER_DELETED, "its customer was deleted after processing")


def unique_values(state: Db, *, workspace_id: int, name: str) -> None:
    """Raise Conflict when two live customers share a value of attribute `name`.

    Values count as shared when they would find the same customer ("42" and 42 do).
    """
    rows = state.execute(
        "SELECT attributes FROM customers WHERE workspace_id = ? AND merged_into IS NULL",
        (workspace_id,),
    )
    seen: set[str] = set()
    for (attributes,) in rows:
        text = key_text(_decode_attributes(attributes).get(name))
        if text is None:
            continue
        if text in seen:
            raise Conflict(
                f"Several customers have {name} = {text!r}; a primary key must be unique. "
                "Give them distinct values (POST /api/customers/upsert) or merge them first."
            )
        seen.add(text)


def release_processor(state: Db, name_prefix: str) -> None:
    """Hand the partitions of a dead processor back (the next processor takes them at once)."""
    mine = "substr({column}, 1, length(?)) = ?"
    with write_turn(state):
        state.execute(
            "UPDATE partitions SET owner = NULL, lease_until_us = 0 WHERE "
            + mine.format(column="owner"),
            (name_prefix, name_prefix),
        )
        state.execute(
            "DELETE FROM processors WHERE " + mine.format(column="id"), (name_prefix, name_prefix)
        )


def partition_status(state: Db, log: Db, *, now: datetime) -> list[PartitionStatus]:
    """How far each partition is processed, who holds it, and how far behind it is."""
    now_us = to_us(now)
    found = []
    for partition, checkpoint, processed, owner, until_us in state.execute(
        "SELECT partition, checkpoint_seq, processed, owner, lease_until_us FROM partitions"
        " ORDER BY partition"
    ).fetchall():
        behind, oldest_us = log.execute(
            "SELECT coalesce(sum(count), 0), min(received_at_us) FROM event_batches"
            " WHERE partition = ? AND seq > ?",
            (partition, checkpoint),
        ).fetchone()
        live = owner is not None and until_us >= now_us
        found.append(
            PartitionStatus(
                partition=partition,
                owner=owner if live else None,
                checkpoint_seq=checkpoint,
                processed=processed,
                behind_events=behind,
                behind_s=max(0.0, (now_us - oldest_us) / 1e6) if oldest_us is not None else 0.0,
            )
        )
    if not found:  # no processor ever ran: everything is behind
        for partition in range(PARTITIONS):
            behind, oldest_us = log.execute(
                "SELECT coalesce(sum(count), 0), min(received_at_us) FROM event_batches"
                " WHERE partition = ?",
                (partition,),
            ).fetchone()
            age = max(0.0, (now_us - oldest_us) / 1e6) if oldest_us is not None else 0.0
            found.append(PartitionStatus(partition, None, 0, 0, behind, age))
    return found


@contextlib.contextmanager
def _write(conn: Db) -> Iterator[Ledger]:
    """`with _write(conn) as ledger:` one state transaction with a Ledger, flushed on success."""
    with state_transaction(conn):
        ledger = Ledger(conn, to_us(datetime.now(UTC)))
        yield ledger
        ledger.flush()


def _record(state: Db, row: tuple[Any, ...]) -> CustomerRecord:
    identifiers = [
        value
        for (value,) in state.execute(
            "SELECT value FROM customer_keys WHERE customer_id = ? AND name = ? ORDER BY value",
            (row[0], ANONYMOUS_KEY),
        )
    ]
    return CustomerRecord(
        id=str(uuidlib.UUID(bytes=row[5])),
        attributes=_decode_attributes(row[1]),
        identifiers=identifiers,
        created_at=from_us(row[2]),
        updated_at=from_us(row[3]),
    )


def _stored(row: tuple[Any, ...], index: int) -> StoredEvent:
    request_seq, workspace_id, received_us, sent_us, ids, positions, blob, partition = row
    return StoredEvent(
        cursor=encode_cursor((request_seq, unpack_positions(positions)[index])),
        workspace_id=WorkspaceId(workspace_id),
        uuid=str(uuidlib.UUID(bytes=ids[index * 16 : index * 16 + 16])),
        raw=bytes(_decode_raws(blob)[index]),
        received_at=from_us(received_us),
        sent_at=from_us(sent_us) if sent_us is not None else None,
        partition=partition,
    )


def _primary_key(schema: CustomerSchema) -> str:
    if schema.primary_key is None:
        raise InvalidRequest(
            "This workspace has no primary key; set one with `herald schema set-primary-key`."
        )
    return schema.primary_key


def _no_customer(primary: str, key: Any) -> NotFound:
    return NotFound(
        f"No customer with {primary} = {key!r} in this workspace; "
        "create one with POST /api/customers/upsert."
    )


def _cursor_int(cursor: str | None) -> int:
    if cursor is None:
        return 0
    number = whole_number(cursor)
    if number is None:
        raise InvalidRequest(f"cursor {cursor!r} is not one Herald gave out.", field="cursor")
    return number
