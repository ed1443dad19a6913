"""Workspaces, API keys, quarantine and counters: the store contract on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import psycopg
import pytest
from psycopg import sql

from herald.core.keys import KeyKind
from herald.errors import Conflict, NotFound
from herald.store.base import Counters, Store
from tests.conftest import location_of
from tests.store.conftest import append_request, wire_event

WRITE_KEY = "hk_w_Zm9vYmFyYmF6cXV4LXdyaXRlLWtleQ"
ADMIN_KEY = "hk_a_Zm9vYmFyYmF6cXV4LWFkbWluLWtleQ"

# -- workspaces ----------------------------------------------------------------------------


async def test_a_created_workspace_is_found_by_name_and_listed(store: Store) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")

    found = await store.get_workspace("acme")

    assert found == acme
    assert acme.schema.primary_key == "email"
    assert await store.list_workspaces() == [acme, globex]


async def test_creating_a_workspace_with_a_taken_name_is_a_conflict(store: Store) -> None:
    await store.create_workspace("acme")

    with pytest.raises(Conflict, match="'acme' already exists"):
        await store.create_workspace("acme")

    assert len(await store.list_workspaces()) == 1


async def test_an_unknown_workspace_is_not_found_naming_it(store: Store) -> None:
    with pytest.raises(NotFound, match="'nowhere'"):
        await store.get_workspace("nowhere")


# -- keys ----------------------------------------------------------------------------------


async def test_a_created_key_is_found_by_the_key_itself(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    created = await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)

    found = await store.find_key(WRITE_KEY)

    assert found is not None
    assert found == created
    assert found.workspace == workspace
    assert found.kind is KeyKind.WRITE
    assert found.prefix == WRITE_KEY[:12]
    assert (found.last_used_at, found.revoked_at) == (None, None)


async def test_an_unknown_key_is_not_found(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)

    found = await store.find_key(WRITE_KEY + "x")

    assert found is None


async def test_registering_the_same_key_twice_is_a_conflict(store: Store) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")
    await store.create_key(acme.id, KeyKind.WRITE, WRITE_KEY)

    with pytest.raises(Conflict):
        await store.create_key(globex.id, KeyKind.ADMIN, WRITE_KEY)

    found = await store.find_key(WRITE_KEY)
    assert found is not None
    assert found.workspace == acme


async def test_keys_are_listed_per_workspace_in_creation_order(store: Store) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")
    write = await store.create_key(acme.id, KeyKind.WRITE, WRITE_KEY)
    admin = await store.create_key(acme.id, KeyKind.ADMIN, ADMIN_KEY)
    await store.create_key(globex.id, KeyKind.WRITE, "hk_w_globex-write-key")

    listed = await store.list_keys(acme.id)

    assert listed == [write, admin]


async def test_a_revoked_key_is_no_longer_found_but_still_listed(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)
    await store.create_key(workspace.id, KeyKind.ADMIN, ADMIN_KEY)

    revoked = await store.revoke_key(workspace.id, WRITE_KEY[:8])

    assert revoked.prefix == WRITE_KEY[:12]
    assert revoked.revoked_at is not None
    assert await store.find_key(WRITE_KEY) is None
    assert await store.find_key(ADMIN_KEY) is not None
    assert [key.revoked_at is not None for key in await store.list_keys(workspace.id)] == [
        True,
        False,
    ]


async def test_revoking_with_a_prefix_of_several_keys_is_a_conflict(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY[:9] + "another-key")

    with pytest.raises(Conflict, match=f"2 keys start with '{WRITE_KEY[:9]}'"):
        await store.revoke_key(workspace.id, WRITE_KEY[:9])

    assert await store.find_key(WRITE_KEY) is not None


async def test_revoking_an_unknown_or_already_revoked_prefix_is_not_found(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    other = await store.create_workspace("other")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)
    await store.revoke_key(workspace.id, WRITE_KEY[:12])
    await store.create_key(other.id, KeyKind.ADMIN, ADMIN_KEY)

    for prefix in (WRITE_KEY[:12], ADMIN_KEY[:12], "hk_x_nothing"):
        with pytest.raises(NotFound, match="No live key starting with"):
            await store.revoke_key(workspace.id, prefix)

    assert await store.find_key(ADMIN_KEY) is not None


async def test_revoking_matches_the_prefix_case_sensitively(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, "hk_w_AbCdefghijklmnop")
    await store.create_key(workspace.id, KeyKind.WRITE, "hk_w_abcDEFGHIJKLMNOP")

    revoked = await store.revoke_key(workspace.id, "hk_w_AbC")

    assert revoked.prefix == "hk_w_AbCdefg"
    assert await store.find_key("hk_w_abcDEFGHIJKLMNOP") is not None


async def test_a_key_can_be_revoked_by_giving_the_whole_key(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)

    revoked = await store.revoke_key(workspace.id, WRITE_KEY)

    assert revoked.prefix == WRITE_KEY[:12]
    assert await store.find_key(WRITE_KEY) is None


async def test_touch_keys_records_when_each_key_was_last_used(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    write = await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)
    admin = await store.create_key(workspace.id, KeyKind.ADMIN, ADMIN_KEY)
    used_at = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)

    await store.touch_keys({write.id: used_at})
    await store.touch_keys({write.id: used_at + timedelta(seconds=1)})

    listed = {key.id: key.last_used_at for key in await store.list_keys(workspace.id)}
    assert listed == {write.id: used_at + timedelta(seconds=1), admin.id: None}


def everything_stored(store: Store) -> bytes:
    """Every byte the store's database holds: SQLite's files, or every row of every table of
    the PostgreSQL schema as text (bytea as hex)."""
    location = location_of(store)
    if isinstance(location, Path):
        files = [file for file in location.parent.glob(f"{location.name}*") if file.is_file()]
        assert files
        return b"".join(file.read_bytes() for file in files)
    with psycopg.connect(location) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        assert tables
        return "\n".join(
            row[0]
            for (table,) in tables
            for row in conn.execute(
                sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))
            )
        ).encode()


async def test_a_key_is_stored_only_as_a_hash(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)

    stored = everything_stored(store)

    assert WRITE_KEY[:12].encode() in stored  # the prefix shown in listings
    for secret in (WRITE_KEY, WRITE_KEY[12:]):
        assert secret.encode() not in stored
        assert secret.encode().hex().encode() not in stored


# -- quarantine and counters ---------------------------------------------------------------

MISSING_VALUE = {"event": "signup", "correlationKey": "_id", "source": "custom"}


async def test_rejected_events_are_quarantined_with_their_json_and_reasons(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    uuid = "0f0e0d0c-0b0a-4908-8706-050403020100"
    invalid = {**MISSING_VALUE, "uuid": uuid}
    received_at = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

    await store.append(
        append_request(workspace.id, [wire_event(), invalid], received_at=received_at)
    )

    (item,) = await store.list_quarantine(workspace.id, after_id=None, limit=10)
    assert item.index == 1
    assert item.uuid == uuid
    assert item.raw == msgspec.json.encode(invalid)
    assert item.errors == [
        {
            "index": 1,
            "message": "required field is missing",
            "field": "correlationValue",
            "uuid": uuid,
        }
    ]
    assert item.received_at == received_at
    assert item.replayed_at is None
    assert await store.get_quarantined(workspace.id, item.id) == item


async def test_the_quarantine_pages_by_id_and_belongs_to_its_workspace(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    other = await store.create_workspace("other")
    await store.append(append_request(workspace.id, [MISSING_VALUE] * 3))
    await store.append(append_request(other.id, [MISSING_VALUE]))
    await store.append(append_request(workspace.id, [MISSING_VALUE] * 2))

    first = await store.list_quarantine(workspace.id, after_id=None, limit=3)
    rest = await store.list_quarantine(workspace.id, after_id=first[-1].id, limit=3)
    (foreign,) = await store.list_quarantine(other.id, after_id=None, limit=10)

    assert [item.index for item in first + rest] == [0, 1, 2, 0, 1]
    assert len({item.id for item in first + rest}) == 5
    with pytest.raises(NotFound):
        await store.get_quarantined(workspace.id, foreign.id)
    with pytest.raises(NotFound):
        await store.delete_quarantined(workspace.id, foreign.id)
    assert await store.get_quarantined(other.id, foreign.id) == foreign


async def test_a_deleted_quarantine_item_is_gone(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    await store.append(append_request(workspace.id, [MISSING_VALUE, MISSING_VALUE]))
    first, second = await store.list_quarantine(workspace.id, after_id=None, limit=10)

    await store.delete_quarantined(workspace.id, first.id)

    assert await store.list_quarantine(workspace.id, after_id=None, limit=10) == [second]
    with pytest.raises(NotFound, match=f"No quarantined event {first.id}"):
        await store.get_quarantined(workspace.id, first.id)
    with pytest.raises(NotFound):
        await store.delete_quarantined(workspace.id, first.id)


async def test_a_replayed_item_stays_listed_but_no_longer_counts_as_quarantined(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    await store.append(append_request(workspace.id, [MISSING_VALUE, MISSING_VALUE]))
    first, second = await store.list_quarantine(workspace.id, after_id=None, limit=10)

    await store.mark_replayed(workspace.id, first.id)

    replayed = await store.get_quarantined(workspace.id, first.id)
    assert replayed.replayed_at is not None
    assert (await store.get_quarantined(workspace.id, second.id)).replayed_at is None
    assert (await store.counters(workspace.id)).quarantined == 1


async def test_counters_add_up_every_append_of_the_workspace(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    other = await store.create_workspace("other")
    untouched = await store.create_workspace("untouched")
    batch = [wire_event(), wire_event(), MISSING_VALUE]
    await store.append(append_request(workspace.id, batch))
    await store.append(append_request(workspace.id, batch))
    await store.append(append_request(other.id, [wire_event()]))

    counters = await store.counters(workspace.id)

    assert counters == Counters(accepted=2, duplicates=2, rejected=2, quarantined=2)
    assert await store.counters(other.id) == Counters(accepted=1)
    assert await store.counters(untouched.id) == Counters()
