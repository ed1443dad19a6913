"""Customers as one processing transaction sees them: reads go through a memo, writes are batched.

The processor opens a `Ledger` inside a write transaction on the state database, applies the
identity decisions of many events to it, and flushes once before committing. Holding the write lock
for the whole transaction is what makes the memo safe: nobody else can change a customer meanwhile.
Customers API writes (upsert, delete) use a Ledger too: both keep the key index the same way.
"""

from __future__ import annotations

import bisect
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from herald.core.identity import ANONYMOUS_KEY, Customer
from herald.core.schema import MAX_KEY_CHARS, CustomerSchema
from herald.store.db import Db, insert_rows

_encode = msgspec.json.encode
_decode_attributes = msgspec.json.Decoder(dict[str, Any]).decode

Key = tuple[int, str, str]  # (workspace_id, name, value)
_ABSENT = object()
MAX_MERGE_CHAIN = 16  # merges chain a few steps at most; never loop on bad data


def key_text(value: Any) -> str | None:
    """How a key attribute's value is indexed (and how a correlationValue matches it)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value if len(value) <= MAX_KEY_CHARS else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def record_id(seq: int, index: int) -> int:
    """An event record's id: its record batch's seq and its index in it, in commit order."""
    return seq << 24 | index


@dataclass
class _Row:
    id: int
    uuid: bytes
    workspace_id: int
    attributes: dict[str, Any]
    created_at_us: int
    merged_into: int | None = None
    dirty: bool = False


@dataclass
class Ledger:
    """The customers of one write transaction; `flush()` writes what changed."""

    conn: Db
    now_us: int
    # Who each `_id` identifier names (None: nobody), as a processor remembers it across its
    # transactions; read here, never written (the processor updates it after each commit).
    known_ids: Mapping[int, Mapping[str, int | None]] = field(default_factory=dict)
    _rows: dict[int, _Row] = field(default_factory=dict)
    _owners: dict[Key, list[int]] = field(default_factory=dict)
    _added: set[tuple[int, str, str, int]] = field(default_factory=set)
    _removed: set[tuple[int, str, str, int]] = field(default_factory=set)
    _key_names: dict[int, set[str]] = field(default_factory=dict)
    _records: list[tuple[int, int, int, str, str | None]] = field(default_factory=list)
    _messages: list[tuple[int, int, str, str, int]] = field(default_factory=list)
    _next_id: int = 0
    _last_id: int = 0  # the highest id handed out, kept in meta so that ids are never reused

    # -- finding customers -------------------------------------------------------------------

    def resolve(
        self, workspace_id: int, name: str, value: Any, schema: CustomerSchema
    ) -> int | None:
        """The customer that (correlationKey `name`, `value`) names, or None."""
        text = key_text(value)
        if text is None:
            return None
        if name != ANONYMOUS_KEY:
            self.ensure_key_name(workspace_id, name)
        owners = self._owners.get((workspace_id, name, text))
        if owners is None:
            known = self.known_ids.get(workspace_id) if name == ANONYMOUS_KEY else None
            if known is not None and text in known:
                return known[text]
            owners = self._owners_of((workspace_id, name, text))
        return owners[0] if owners else None

    def customer(self, customer_id: int, schema: CustomerSchema) -> Customer:
        """What identity decisions need to know of a customer."""
        row = self._row(customer_id)
        primary = row.attributes.get(schema.primary_key) if schema.primary_key else None
        return Customer(str(customer_id), primary)

    def attributes(self, customer_id: int) -> dict[str, Any]:
        return self._row(customer_id).attributes

    def ensure_key_name(self, workspace_id: int, name: str) -> None:
        """Index attribute `name` as a key from now on (backfilled from existing customers)."""
        names = self._names(workspace_id)
        if name in names:
            return
        names.add(name)
        self.flush()
        self.conn.execute(
            "INSERT OR IGNORE INTO key_names (workspace_id, name) VALUES (?, ?)",
            (workspace_id, name),
        )
        rows = self.conn.execute(  # decoded here: JSON functions differ between the databases
            "SELECT id, attributes FROM customers WHERE workspace_id = ? AND merged_into IS NULL",
            (workspace_id,),
        )
        for customer_id, attributes in rows.fetchall():
            text = key_text(_decode_attributes(attributes).get(name))
            if text is not None:
                self._add_key((workspace_id, name, text), customer_id)

    # -- changing customers ------------------------------------------------------------------

    def new_id(self) -> int:
        """A customer id nobody holds (ids may be skipped: a decision need not use it)."""
        if not self._next_id:
            (highest,) = self.conn.execute("SELECT coalesce(max(id), 0) FROM customers").fetchone()
            row = self.conn.execute(
                "SELECT value FROM meta WHERE key = 'last_customer_id'"
            ).fetchone()
            self._next_id = max(highest, int(row[0]) if row else 0) + 1
        customer_id = self._next_id
        self._next_id += 1
        self._last_id = customer_id
        return customer_id

    def create(self, workspace_id: int, customer_id: int) -> None:
        self._rows[customer_id] = _Row(
            customer_id, uuidlib.uuid4().bytes, workspace_id, {}, self.now_us, dirty=True
        )

    def add_identifier(self, customer_id: int, identifier: str) -> None:
        row = self._row(customer_id)
        self._add_key((row.workspace_id, ANONYMOUS_KEY, identifier), customer_id)

    def set_attributes(self, customer_id: int, changes: Mapping[str, Any]) -> None:
        """Set attributes (None removes one), keeping the key index in step."""
        row = self._row(customer_id)
        names = self._names(row.workspace_id)
        for name, value in changes.items():
            old = row.attributes.get(name, _ABSENT)
            if old is _ABSENT and value is None:
                continue
            if old == value and type(old) is type(value):  # 1 == True, yet true is news
                continue
            old = None if old is _ABSENT else old
            if value is None:
                row.attributes.pop(name, None)
            else:
                row.attributes[name] = value
            row.dirty = True
            if name in names:
                self._move_key(row.workspace_id, name, old, value, customer_id)

    def merge(self, source_id: int, target_id: int) -> None:
        """Fold customer `source_id` into `target_id`: ids, missing attributes, event history,
        journey enrollments (the target's win where both are inside the same journey)."""
        source, target = self._row(source_id), self._row(target_id)
        missing = {k: v for k, v in source.attributes.items() if k not in target.attributes}
        self.set_attributes(source_id, dict.fromkeys(source.attributes))
        self.set_attributes(target_id, missing)
        self.flush()
        identifiers = self.conn.execute(
            "SELECT value FROM customer_keys WHERE customer_id = ? AND name = ?",
            (source_id, ANONYMOUS_KEY),
        ).fetchall()
        for (identifier,) in identifiers:
            key = (source.workspace_id, ANONYMOUS_KEY, identifier)
            self._remove_key(key, source_id)
            self._add_key(key, target_id)
        source.merged_into = target_id
        source.dirty = True
        for key, owners in self._owners.items():  # its Herald id, looked up this transaction
            if key[1] == ANONYMOUS_KEY and source_id in owners:
                owners[:] = sorted({target_id if owner == source_id else owner for owner in owners})
        self.flush()
        # The source's identifiers may belong to partitions other processors hold: they forget
        # what they remember when the generation moves.
        self.bump_generation()
        # Journeys both are inside: the target's enrollment wins, the source's is exited (it
        # would otherwise send the target the same journey's messages twice). Enrollments in
        # journeys only the source is in move over and go on.
        self.conn.execute(
            "UPDATE enrollments SET status = 'exited', due_at_us = NULL, awaiting = NULL"
            " WHERE customer_id = ? AND status = 'waiting' AND journey_id IN"
            " (SELECT journey_id FROM enrollments WHERE customer_id = ? AND status = 'waiting')",
            (source_id, target_id),
        )
        for statement in (
            "UPDATE event_records SET customer_id = ? WHERE customer_id = ?",
            "UPDATE message_events SET customer_id = ? WHERE customer_id = ?",
            "UPDATE customers SET merged_into = ? WHERE merged_into = ?",
            "UPDATE enrollments SET customer_id = ? WHERE customer_id = ?",
        ):
            self.conn.execute(statement, (target_id, source_id))

    def delete(self, customer_id: int) -> None:
        """Remove a customer, its keys and its event records (the log itself is kept)."""
        self.flush()
        self.conn.execute("DELETE FROM customer_keys WHERE customer_id = ?", (customer_id,))
        for table in ("event_records", "message_events", "enrollments"):
            self.conn.execute(f"DELETE FROM {table} WHERE customer_id = ?", (customer_id,))
        self.conn.execute(
            "DELETE FROM customers WHERE id = ? OR merged_into = ?", (customer_id, customer_id)
        )
        self.bump_generation()
        self._rows.clear()
        self._owners.clear()

    def bump_generation(self) -> None:
        """Tell every processor to forget who identifiers name (they changed outside it)."""
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('customers_generation', '1') ON CONFLICT (key)"
            " DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)"
        )

    def generation(self) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'customers_generation'")
        found = row.fetchone()
        return found[0] if found else None

    def record(
        self, event_id: int, workspace_id: int, customer_id: int, outcome: str, detail: str | None
    ) -> None:
        """Note what processing did with one event (written with the customers)."""
        self._records.append((event_id, workspace_id, customer_id, outcome, detail))

    def record_message_status(
        self, event_id: int, workspace_id: int, message_id: str, status: str, customer_id: int
    ) -> None:
        self._messages.append((event_id, workspace_id, message_id, status, customer_id))

    def anonymous_owners(self) -> Iterator[tuple[int, str, int | None]]:
        """Who each `_id` identifier this transaction looked up names now (to remember)."""
        for (workspace_id, name, value), owners in self._owners.items():
            if name == ANONYMOUS_KEY:
                yield workspace_id, value, owners[0] if owners else None

    def flush(self) -> None:
        """Write every change made so far (inside the caller's transaction)."""
        if self._last_id:
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_customer_id', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(self._last_id),),
            )
            self._last_id = 0
        dirty = [row for row in self._rows.values() if row.dirty]
        self.conn.executemany(
            "INSERT INTO customers"
            " (id, uuid, workspace_id, attributes, created_at_us, updated_at_us, merged_into)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " attributes = excluded.attributes, updated_at_us = excluded.updated_at_us,"
            " merged_into = excluded.merged_into",
            [
                (
                    row.id,
                    row.uuid,
                    row.workspace_id,
                    _encode(row.attributes).decode(),
                    row.created_at_us,
                    self.now_us,
                    row.merged_into,
                )
                for row in dirty
            ],
        )
        for row in dirty:
            row.dirty = False
        self.conn.executemany(
            "DELETE FROM customer_keys"
            " WHERE workspace_id = ? AND name = ? AND value = ? AND customer_id = ?",
            self._removed,
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO customer_keys (workspace_id, name, value, customer_id)"
            " VALUES (?, ?, ?, ?)",
            self._added,
        )
        insert_rows(
            self.conn,
            "event_records",
            "id, workspace_id, customer_id, outcome, detail",
            self._records,
        )
        insert_rows(
            self.conn,
            "message_events",
            "event_id, workspace_id, message_id, status, customer_id",
            self._messages,
        )
        self._removed.clear()
        self._added.clear()
        self._records.clear()
        self._messages.clear()

    # -- memo --------------------------------------------------------------------------------

    def _row(self, customer_id: int) -> _Row:
        row = self._rows.get(customer_id)
        if row is None:
            found = self.conn.execute(
                "SELECT uuid, workspace_id, attributes, created_at_us, merged_into FROM customers"
                " WHERE id = ?",
                (customer_id,),
            ).fetchone()
            assert found is not None, f"customer {customer_id} is referenced but missing"
            row = _Row(
                customer_id, found[0], found[1], _decode_attributes(found[2]), found[3], found[4]
            )
            self._rows[customer_id] = row
        return row

    def _names(self, workspace_id: int) -> set[str]:
        names = self._key_names.get(workspace_id)
        if names is None:
            rows = self.conn.execute(
                "SELECT name FROM key_names WHERE workspace_id = ?", (workspace_id,)
            )
            names = {name for (name,) in rows}
            self._key_names[workspace_id] = names
        return names

    def _owners_of(self, key: Key) -> list[int]:
        owners = self._owners.get(key)
        if owners is None and key[1] == ANONYMOUS_KEY:
            known = self.known_ids.get(key[0], {})
            if key[2] in known:
                owner = known[key[2]]
                owners = self._owners[key] = [] if owner is None else [owner]
        if owners is None:
            rows = self.conn.execute(
                "SELECT customer_id FROM customer_keys"
                " WHERE workspace_id = ? AND name = ? AND value = ? ORDER BY customer_id",
                key,
            )
            owners = [customer_id for (customer_id,) in rows]
            if not owners and key[1] == ANONYMOUS_KEY:
                owners = self._by_herald_ids(key[0], [key[2]]).get(key[2], [])
            self._owners[key] = owners
        return owners

    def _by_herald_ids(self, workspace_id: int, values: list[str]) -> dict[str, list[int]]:
        """`_id` values that are Herald customer ids: the (live) customer each names."""
        wanted: dict[bytes, list[str]] = {}  # one id may come spelt several ways (case, hyphens)
        for value in values:
            try:
                wanted.setdefault(uuidlib.UUID(value).bytes, []).append(value)
            except ValueError:
                continue
        found: dict[str, list[int]] = {}
        for start in range(0, len(wanted), 500):
            chunk = list(wanted)[start : start + 500]
            rows = self.conn.execute(
                "SELECT uuid, id, merged_into FROM customers"
                f" WHERE workspace_id = ? AND uuid IN ({','.join('?' * len(chunk))})",
                (workspace_id, *chunk),
            ).fetchall()
            for herald_id, customer_id, merged_into in rows:
                for value in wanted[herald_id]:
                    found[value] = [self.live_id(merged_into or customer_id)]
        return found

    def live_id(self, customer_id: int) -> int:
        """The customer `customer_id` is now (following merges)."""
        for _ in range(MAX_MERGE_CHAIN):
            row = self._row(customer_id)
            if row.merged_into is None:
                return customer_id
            customer_id = row.merged_into
        return customer_id

    def herald_id(self, customer_id: int) -> str:
        """The id the API shows for a customer."""
        return str(uuidlib.UUID(bytes=self._row(customer_id).uuid))

    def is_known(self, key: Key) -> bool:
        """Whether resolving `key` needs no query."""
        return key in self._owners or (
            key[1] == ANONYMOUS_KEY and key[2] in self.known_ids.get(key[0], ())
        )

    def prefetch(self, keys: Iterable[Key]) -> None:
        """Load the owners of many keys in a few queries (the first sight of each is a miss)."""
        wanted: dict[tuple[int, str], list[str]] = {}
        for key in keys:
            if not self.is_known(key):
                self._owners[key] = []
                wanted.setdefault((key[0], key[1]), []).append(key[2])
        for (workspace_id, name), values in wanted.items():
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self.conn.execute(
                    "SELECT value, customer_id FROM customer_keys"
                    f" WHERE workspace_id = ? AND name = ? AND value IN ({marks})"
                    " ORDER BY customer_id",
                    (workspace_id, name, *chunk),
                )
                for value, customer_id in rows:
                    self._owners[(workspace_id, name, value)].append(customer_id)
            if name == ANONYMOUS_KEY:
                unknown = [
                    value for value in values if not self._owners[(workspace_id, name, value)]
                ]
                for value, owners in self._by_herald_ids(workspace_id, unknown).items():
                    self._owners[(workspace_id, name, value)] = owners

    def _move_key(self, workspace_id: int, name: str, old: Any, new: Any, customer_id: int) -> None:
        old_text, new_text = key_text(old), key_text(new)
        if old_text == new_text:
            return
        if old_text is not None:
            self._remove_key((workspace_id, name, old_text), customer_id)
        if new_text is not None:
            self._add_key((workspace_id, name, new_text), customer_id)

    def _add_key(self, key: Key, customer_id: int) -> None:
        owners = self._owners_of(key)
        if customer_id in owners:
            return
        bisect.insort(owners, customer_id)
        entry = (*key, customer_id)
        if entry in self._removed:
            self._removed.discard(entry)
        else:
            self._added.add(entry)

    def _remove_key(self, key: Key, customer_id: int) -> None:
        owners = self._owners_of(key)
        if customer_id not in owners:
            return
        owners.remove(customer_id)
        entry = (*key, customer_id)
        if entry in self._added:
            self._added.discard(entry)
        else:
            self._removed.add(entry)
