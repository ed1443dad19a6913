"""The Ledger against a real state database, SQLite's and PostgreSQL's: key index, attributes,
merges, flush (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herald.core.identity import ANONYMOUS_KEY
from herald.core.schema import MAX_KEY_CHARS, CustomerSchema
from herald.store import postgres
from herald.store.db import Db, is_postgres
from herald.store.ledger import Ledger, key_text, record_id
from herald.store.sqlitedb import connect, migrate
from tests.conftest import postgres_schema

SCHEMA = CustomerSchema()  # primary key: email
WORKSPACE = 1
NOW_US = 1_700_000_000_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A migrated, empty state database: what herald.db.state starts as, or a fresh PostgreSQL
    schema (where the state shares the database with the log)."""
    db: Db
    if request.param == "sqlite":
        db = connect(tmp_path / "herald.db.state", synchronous="normal")
        migrate(db, "state_migrations")
        yield db
        db.close()
        return
    with postgres_schema() as url:
        db = postgres.connect(url)
        postgres.migrate(db)
        yield db
        db.close()


def begin(conn: Db) -> Ledger:
    """A Ledger in a fresh write transaction, as the processor and the customers API open one."""
    conn.execute("BEGIN" if is_postgres(conn) else "BEGIN IMMEDIATE")
    return Ledger(conn, NOW_US)


def commit(conn: Db, ledger: Ledger) -> None:
    ledger.flush()
    conn.execute("COMMIT")


def new_customer(
    ledger: Ledger,
    *,
    identifier: str | None = None,
    workspace_id: int = WORKSPACE,
    **attributes: Any,
) -> int:
    customer_id = ledger.new_id()
    ledger.create(workspace_id, customer_id)
    if identifier is not None:
        ledger.add_identifier(customer_id, identifier)
    if attributes:
        ledger.set_attributes(customer_id, attributes)
    return customer_id


def keys_of(conn: Db, customer_id: int) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT name, value FROM customer_keys WHERE customer_id = ?", (customer_id,)
    ).fetchall()
    return {(name, value) for name, value in rows}


# -- key_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("ada@example.com", "ada@example.com"),
        ("42", "42"),
        (42, "42"),
        (42.0, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        ("", ""),
        ("x" * MAX_KEY_CHARS, "x" * MAX_KEY_CHARS),
    ],
)
def test_key_text_indexes_strings_and_numbers_so_that_equal_numbers_match(
    value: Any, text: str
) -> None:
    assert key_text(value) == text


@pytest.mark.parametrize(
    "value",
    [True, False, None, "x" * (MAX_KEY_CHARS + 1), [1, 2], {"a": 1}],
    ids=["true", "false", "null", "long-string", "list", "object"],
)
def test_key_text_leaves_booleans_nulls_long_strings_and_containers_unindexed(
    value: Any,
) -> None:
    assert key_text(value) is None


def test_record_ids_sort_in_commit_order_and_point_back_into_the_log() -> None:
    ids = [record_id(1, 0), record_id(1, 5), record_id(2, 0), record_id(3, 2)]

    assert ids == sorted(ids)
    assert [(rid >> 24, rid & 0xFFFFFF) for rid in ids] == [(1, 0), (1, 5), (2, 0), (3, 2)]


# -- resolving -----------------------------------------------------------------------------


def test_a_number_attribute_is_found_by_its_text_and_by_an_equal_number(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "user_id")
    customer = new_customer(ledger, user_id=42)

    assert ledger.resolve(WORKSPACE, "user_id", "42", SCHEMA) == customer
    assert ledger.resolve(WORKSPACE, "user_id", 42.0, SCHEMA) == customer
    assert ledger.resolve(WORKSPACE, "user_id", "42.0", SCHEMA) is None


def test_an_unknown_key_resolves_to_nobody(state: Db) -> None:
    ledger = begin(state)

    assert ledger.resolve(WORKSPACE, ANONYMOUS_KEY, "anon-1", SCHEMA) is None
    assert ledger.resolve(WORKSPACE, "email", "ada@example.com", SCHEMA) is None


def test_changes_are_seen_by_the_same_ledger_before_they_are_flushed(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.prefetch([(WORKSPACE, ANONYMOUS_KEY, "anon-1"), (WORKSPACE, "email", "a@x.io")])

    anonymous = new_customer(ledger, identifier="anon-1")
    ledger.ensure_key_name(WORKSPACE, "email")
    identified = new_customer(ledger, email="a@x.io")

    assert ledger.resolve(WORKSPACE, ANONYMOUS_KEY, "anon-1", SCHEMA) == anonymous
    assert ledger.resolve(WORKSPACE, "email", "a@x.io", SCHEMA) == identified
    assert ledger.customer(identified, SCHEMA).primary_key == "a@x.io"
    assert ledger.customer(anonymous, SCHEMA).anonymous


def test_identifiers_and_attributes_resolve_only_in_their_own_workspace(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(1, "email")
    ledger.ensure_key_name(2, "email")
    first = new_customer(ledger, identifier="anon-1", workspace_id=1, email="a@x.io")
    second = new_customer(ledger, identifier="anon-1", workspace_id=2, email="a@x.io")
    commit(state, ledger)

    fresh = begin(state)

    assert first != second
    assert fresh.resolve(1, ANONYMOUS_KEY, "anon-1", SCHEMA) == first
    assert fresh.resolve(2, ANONYMOUS_KEY, "anon-1", SCHEMA) == second
    assert fresh.resolve(1, "email", "a@x.io", SCHEMA) == first
    assert fresh.resolve(2, "email", "a@x.io", SCHEMA) == second
    assert fresh.resolve(3, ANONYMOUS_KEY, "anon-1", SCHEMA) is None


def test_a_value_shared_by_several_customers_resolves_to_the_lowest_id(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "city")
    for customer_id in (7, 3, 5):  # created out of id order: the id decides, not the order
        ledger.create(WORKSPACE, customer_id)
        ledger.set_attributes(customer_id, {"city": "Paris"})
    commit(state, ledger)

    fresh = begin(state)
    first = fresh.resolve(WORKSPACE, "city", "Paris", SCHEMA)
    fresh.set_attributes(3, {"city": "Lyon"})
    after_move = fresh.resolve(WORKSPACE, "city", "Paris", SCHEMA)

    assert first == 3
    assert after_move == 5
    assert fresh.resolve(WORKSPACE, "city", "Lyon", SCHEMA) == 3


# -- attributes and the key index ----------------------------------------------------------


def test_setting_an_attribute_to_none_removes_it_and_its_key(state: Db) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "email")
    customer = new_customer(ledger, email="a@x.io", plan="pro")
    commit(state, ledger)

    ledger = begin(state)
    ledger.set_attributes(customer, {"email": None, "plan": None, "absent": None})
    commit(state, ledger)

    fresh = begin(state)
    assert fresh.attributes(customer) == {}
    assert fresh.resolve(WORKSPACE, "email", "a@x.io", SCHEMA) is None
    assert keys_of(state, customer) == set()


def test_changing_a_key_attribute_moves_its_key(state: Db) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "email")
    customer = new_customer(ledger, email="old@x.io")
    commit(state, ledger)

    ledger = begin(state)
    ledger.set_attributes(customer, {"email": "new@x.io"})
    commit(state, ledger)

    assert keys_of(state, customer) == {("email", "new@x.io")}
    fresh = begin(state)
    assert fresh.resolve(WORKSPACE, "email", "old@x.io", SCHEMA) is None
    assert fresh.resolve(WORKSPACE, "email", "new@x.io", SCHEMA) == customer


def test_unindexable_values_of_a_key_attribute_are_kept_but_not_indexed(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "user_id")
    long_value = "u" * (MAX_KEY_CHARS + 1)
    flagged = new_customer(ledger, user_id=True)
    long = new_customer(ledger, user_id=long_value)
    commit(state, ledger)

    fresh = begin(state)
    assert fresh.attributes(flagged) == {"user_id": True}
    assert fresh.attributes(long) == {"user_id": long_value}
    assert keys_of(state, flagged) == keys_of(state, long) == set()
    assert fresh.resolve(WORKSPACE, "user_id", "1", SCHEMA) is None
    assert fresh.resolve(WORKSPACE, "user_id", "true", SCHEMA) is None


def test_ensure_key_name_backfills_the_customers_that_already_have_the_attribute(
    state: Db,
) -> None:
    ledger = begin(state)
    with_plan = new_customer(ledger, plan="pro")
    with_number = new_customer(ledger, plan=3)
    new_customer(ledger, plan="free")
    commit(state, ledger)
    assert keys_of(state, with_plan) == set()  # not a key yet: nothing indexed

    ledger = begin(state)
    found = ledger.resolve(WORKSPACE, "plan", "pro", SCHEMA)  # first use as a key
    commit(state, ledger)

    assert found == with_plan
    assert state.execute("SELECT workspace_id, name FROM key_names").fetchall() == [
        (WORKSPACE, "plan")
    ]
    assert keys_of(state, with_plan) == {("plan", "pro")}
    assert keys_of(state, with_number) == {("plan", "3")}
    fresh = begin(state)
    assert fresh.resolve(WORKSPACE, "plan", "3", SCHEMA) == with_number


def test_a_prefetched_attribute_key_is_still_indexed_on_first_use(
    state: Db,
) -> None:
    ledger = begin(state)
    customer = new_customer(ledger, email="a@x.io")
    commit(state, ledger)

    ledger = begin(state)
    ledger.prefetch([(WORKSPACE, "email", "a@x.io")])  # as a step loads its keys in bulk
    found = ledger.resolve(WORKSPACE, "email", "a@x.io", SCHEMA)
    commit(state, ledger)

    assert found == customer
    assert keys_of(state, customer) == {("email", "a@x.io")}


def test_ensure_key_name_backfills_customers_changed_earlier_in_the_same_transaction(
    state: Db,
) -> None:
    ledger = begin(state)
    customer = new_customer(ledger, identifier="anon-1")
    ledger.set_attributes(customer, {"user_id": "u-1"})

    found = ledger.resolve(WORKSPACE, "user_id", "u-1", SCHEMA)

    assert found == customer


def test_ensure_key_name_backfills_only_its_workspace_and_live_customers(
    state: Db,
) -> None:
    ledger = begin(state)
    elsewhere = new_customer(ledger, workspace_id=2, plan="pro")
    merged = new_customer(ledger, identifier="anon-1", plan="pro")
    target = new_customer(ledger, identifier="anon-2")
    ledger.merge(merged, target)
    commit(state, ledger)

    ledger = begin(state)
    found = ledger.resolve(WORKSPACE, "plan", "pro", SCHEMA)
    commit(state, ledger)

    assert found == target  # the merged customer's plan moved to its target
    assert keys_of(state, elsewhere) == set()
    assert keys_of(state, merged) == set()


def test_backfilled_booleans_and_objects_are_not_indexed_either(
    state: Db,
) -> None:
    ledger = begin(state)
    customer = new_customer(ledger, vip=True, address={"city": "Paris"})
    commit(state, ledger)

    ledger = begin(state)
    by_boolean = ledger.resolve(WORKSPACE, "vip", "1", SCHEMA)
    by_object = ledger.resolve(WORKSPACE, "address", '{"city":"Paris"}', SCHEMA)
    commit(state, ledger)

    assert (by_boolean, by_object) == (None, None)
    assert keys_of(state, customer) == set()


# -- merge, delete, flush ------------------------------------------------------------------


def test_merge_moves_identifiers_missing_attributes_and_event_records(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "email")
    ledger.ensure_key_name(WORKSPACE, "user_id")
    source = new_customer(ledger, identifier="anon-1", plan="free", user_id="u-1", city="Lyon")
    ledger.add_identifier(source, "anon-2")
    target = new_customer(ledger, identifier="anon-3", email="a@x.io", plan="pro")
    ledger.record(record_id(1, 0), WORKSPACE, source, "created", None)
    ledger.record(record_id(2, 0), WORKSPACE, target, "created", None)
    ledger.record_message_status(record_id(1, 1), WORKSPACE, "m-1", "delivered", source)
    commit(state, ledger)

    ledger = begin(state)
    ledger.merge(source, target)
    commit(state, ledger)

    fresh = begin(state)
    assert fresh.attributes(target) == {
        "email": "a@x.io",
        "plan": "pro",  # the target wins on conflict
        "user_id": "u-1",
        "city": "Lyon",
    }
    for identifier in ("anon-1", "anon-2", "anon-3"):
        assert fresh.resolve(WORKSPACE, ANONYMOUS_KEY, identifier, SCHEMA) == target
    assert fresh.resolve(WORKSPACE, "user_id", "u-1", SCHEMA) == target
    assert keys_of(state, source) == set()
    assert state.execute("SELECT DISTINCT customer_id FROM event_records").fetchall() == [(target,)]
    assert state.execute("SELECT customer_id FROM message_events").fetchall() == [(target,)]
    assert state.execute(
        "SELECT merged_into FROM customers WHERE id = ?", (source,)
    ).fetchone() == (target,)


def test_a_merge_chain_points_every_merged_customer_at_the_last_target(
    state: Db,
) -> None:
    ledger = begin(state)
    first = new_customer(ledger, identifier="anon-1")
    second = new_customer(ledger, identifier="anon-2")
    third = new_customer(ledger, identifier="anon-3")
    ledger.merge(first, second)
    ledger.merge(second, third)
    commit(state, ledger)

    merged = dict(state.execute("SELECT id, merged_into FROM customers").fetchall())

    assert merged == {first: third, second: third, third: None}


def test_delete_removes_the_customer_its_keys_records_and_merged_profiles(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "email")
    merged = new_customer(ledger, identifier="anon-1")
    customer = new_customer(ledger, identifier="anon-2", email="a@x.io")
    kept = new_customer(ledger, identifier="anon-3")
    ledger.record(record_id(1, 0), WORKSPACE, merged, "created", None)
    ledger.record(record_id(1, 1), WORKSPACE, kept, "created", None)
    ledger.merge(merged, customer)
    commit(state, ledger)

    ledger = begin(state)
    ledger.delete(customer)
    commit(state, ledger)

    fresh = begin(state)
    assert state.execute("SELECT id FROM customers").fetchall() == [(kept,)]
    assert state.execute("SELECT customer_id FROM event_records").fetchall() == [(kept,)]
    assert fresh.resolve(WORKSPACE, ANONYMOUS_KEY, "anon-1", SCHEMA) is None
    assert fresh.resolve(WORKSPACE, "email", "a@x.io", SCHEMA) is None
    assert fresh.resolve(WORKSPACE, ANONYMOUS_KEY, "anon-3", SCHEMA) == kept


def test_a_deleted_customers_id_is_not_given_to_a_new_customer(
    state: Db,
) -> None:
    ledger = begin(state)
    deleted = new_customer(ledger, identifier="anon-1")
    commit(state, ledger)
    ledger = begin(state)
    ledger.delete(deleted)
    commit(state, ledger)

    ledger = begin(state)
    newcomer = new_customer(ledger, identifier="anon-2")
    commit(state, ledger)

    assert newcomer != deleted


def test_new_ids_in_one_transaction_are_distinct_and_above_every_existing_id(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.create(WORKSPACE, 41)
    commit(state, ledger)

    ledger = begin(state)
    ids = [ledger.new_id() for _ in range(3)]

    assert ids == [42, 43, 44]


def test_flush_writes_everything_and_a_fresh_ledger_sees_the_same(
    state: Db,
) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "email")
    customer = new_customer(ledger, identifier="anon-1", email="a@x.io", tags=["a", "b"])
    ledger.record(record_id(3, 1), WORKSPACE, customer, "identified", None)
    ledger.record(record_id(3, 2), WORKSPACE, customer, "conflict", "why")
    memo = (
        ledger.resolve(WORKSPACE, ANONYMOUS_KEY, "anon-1", SCHEMA),
        ledger.resolve(WORKSPACE, "email", "a@x.io", SCHEMA),
        dict(ledger.attributes(customer)),
        ledger.customer(customer, SCHEMA),
    )
    commit(state, ledger)

    fresh = begin(state)
    seen = (
        fresh.resolve(WORKSPACE, ANONYMOUS_KEY, "anon-1", SCHEMA),
        fresh.resolve(WORKSPACE, "email", "a@x.io", SCHEMA),
        fresh.attributes(customer),
        fresh.customer(customer, SCHEMA),
    )

    assert seen == memo
    assert state.execute(
        "SELECT id, workspace_id, customer_id, outcome, detail FROM event_records ORDER BY id"
    ).fetchall() == [
        (record_id(3, 1), WORKSPACE, customer, "identified", None),
        (record_id(3, 2), WORKSPACE, customer, "conflict", "why"),
    ]
    assert state.execute(
        "SELECT workspace_id, created_at_us, updated_at_us, merged_into FROM customers"
    ).fetchall() == [(WORKSPACE, NOW_US, NOW_US, None)]


def test_a_rolled_back_transaction_leaves_nothing_behind(state: Db) -> None:
    ledger = begin(state)
    ledger.ensure_key_name(WORKSPACE, "email")
    new_customer(ledger, identifier="anon-1", email="a@x.io")
    ledger.flush()
    state.execute("ROLLBACK")

    fresh = begin(state)

    assert fresh.resolve(WORKSPACE, ANONYMOUS_KEY, "anon-1", SCHEMA) is None
    assert state.execute("SELECT count(*) FROM customers").fetchone() == (0,)
    assert state.execute("SELECT count(*) FROM key_names").fetchone() == (0,)
