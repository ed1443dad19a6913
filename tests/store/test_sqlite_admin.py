"""Workspaces, API keys, quarantine, counters and migrations of the SQLite store."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import msgspec
import pytest

from herald.core.keys import KeyKind
from herald.errors import ConfigError, Conflict, NotFound
from herald.settings import Settings
from herald.store import open_store, sqlite_path
from herald.store.base import Counters
from herald.store.sqlite import SqliteStore
from tests.store.conftest import append_request, started, wire_event

WRITE_KEY = "hk_w_Zm9vYmFyYmF6cXV4LXdyaXRlLWtleQ"
ADMIN_KEY = "hk_a_Zm9vYmFyYmF6cXV4LWFkbWluLWtleQ"

# -- workspaces ----------------------------------------------------------------------------


async def test_a_created_workspace_is_found_by_name_and_listed(store: SqliteStore) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")

    found = await store.get_workspace("acme")

    assert found == acme
    assert acme.schema.primary_key == "email"
    assert await store.list_workspaces() == [acme, globex]


async def test_creating_a_workspace_with_a_taken_name_is_a_conflict(store: SqliteStore) -> None:
    await store.create_workspace("acme")

    with pytest.raises(Conflict, match="'acme' already exists"):
        await store.create_workspace("acme")

    assert len(await store.list_workspaces()) == 1


async def test_an_unknown_workspace_is_not_found_naming_it(store: SqliteStore) -> None:
    with pytest.raises(NotFound, match="'nowhere'"):
        await store.get_workspace("nowhere")


# -- keys ----------------------------------------------------------------------------------


async def test_a_created_key_is_found_by_the_key_itself(store: SqliteStore) -> None:
    workspace = await store.create_workspace("acme")
    created = await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)

    found = await store.find_key(WRITE_KEY)

    assert found is not None
    assert found == created
    assert found.workspace == workspace
    assert found.kind is KeyKind.WRITE
    assert found.prefix == WRITE_KEY[:12]
    assert (found.last_used_at, found.revoked_at) == (None, None)


async def test_an_unknown_key_is_not_found(store: SqliteStore) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)

    found = await store.find_key(WRITE_KEY + "x")

    assert found is None


async def test_registering_the_same_key_twice_is_a_conflict(store: SqliteStore) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")
    await store.create_key(acme.id, KeyKind.WRITE, WRITE_KEY)

    with pytest.raises(Conflict):
        await store.create_key(globex.id, KeyKind.ADMIN, WRITE_KEY)

    found = await store.find_key(WRITE_KEY)
    assert found is not None
    assert found.workspace == acme


async def test_keys_are_listed_per_workspace_in_creation_order(store: SqliteStore) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")
    write = await store.create_key(acme.id, KeyKind.WRITE, WRITE_KEY)
    admin = await store.create_key(acme.id, KeyKind.ADMIN, ADMIN_KEY)
    await store.create_key(globex.id, KeyKind.WRITE, "hk_w_globex-write-key")

    listed = await store.list_keys(acme.id)

    assert listed == [write, admin]


async def test_a_revoked_key_is_no_longer_found_but_still_listed(store: SqliteStore) -> None:
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


async def test_revoking_with_a_prefix_of_several_keys_is_a_conflict(store: SqliteStore) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY[:9] + "another-key")

    with pytest.raises(Conflict, match=f"2 keys start with '{WRITE_KEY[:9]}'"):
        await store.revoke_key(workspace.id, WRITE_KEY[:9])

    assert await store.find_key(WRITE_KEY) is not None


async def test_revoking_an_unknown_or_already_revoked_prefix_is_not_found(
    store: SqliteStore,
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


async def test_revoking_matches_the_prefix_case_sensitively(store: SqliteStore) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, "hk_w_AbCdefghijklmnop")
    await store.create_key(workspace.id, KeyKind.WRITE, "hk_w_abcDEFGHIJKLMNOP")

    revoked = await store.revoke_key(workspace.id, "hk_w_AbC")

    assert revoked.prefix == "hk_w_AbCdefg"
    assert await store.find_key("hk_w_abcDEFGHIJKLMNOP") is not None


async def test_a_key_can_be_revoked_by_giving_the_whole_key(store: SqliteStore) -> None:
    workspace = await store.create_workspace("acme")
    await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)

    revoked = await store.revoke_key(workspace.id, WRITE_KEY)

    assert revoked.prefix == WRITE_KEY[:12]
    assert await store.find_key(WRITE_KEY) is None


async def test_touch_keys_records_when_each_key_was_last_used(store: SqliteStore) -> None:
    workspace = await store.create_workspace("acme")
    write = await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)
    admin = await store.create_key(workspace.id, KeyKind.ADMIN, ADMIN_KEY)
    used_at = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)

    await store.touch_keys({write.id: used_at})
    await store.touch_keys({write.id: used_at + timedelta(seconds=1)})

    listed = {key.id: key.last_used_at for key in await store.list_keys(workspace.id)}
    assert listed == {write.id: used_at + timedelta(seconds=1), admin.id: None}


async def test_a_key_is_stored_only_as_a_hash(tmp_path: Path) -> None:
    path = tmp_path / "herald.db"
    async with started(path) as store:
        workspace = await store.create_workspace("acme")
        await store.create_key(workspace.id, KeyKind.WRITE, WRITE_KEY)

    files = [file for file in tmp_path.glob("herald.db*") if file.is_file()]
    stored = b"".join(file.read_bytes() for file in files)

    assert files
    assert WRITE_KEY[:12].encode() in stored  # the prefix shown in listings
    assert WRITE_KEY.encode() not in stored
    assert WRITE_KEY[12:].encode() not in stored


# -- quarantine and counters ---------------------------------------------------------------

MISSING_VALUE = {"event": "signup", "correlationKey": "_id", "source": "custom"}


async def test_rejected_events_are_quarantined_with_their_json_and_reasons(
    store: SqliteStore,
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
    store: SqliteStore,
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


async def test_a_deleted_quarantine_item_is_gone(store: SqliteStore) -> None:
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
    store: SqliteStore,
) -> None:
    workspace = await store.create_workspace("acme")
    await store.append(append_request(workspace.id, [MISSING_VALUE, MISSING_VALUE]))
    first, second = await store.list_quarantine(workspace.id, after_id=None, limit=10)

    await store.mark_replayed(workspace.id, first.id)

    replayed = await store.get_quarantined(workspace.id, first.id)
    assert replayed.replayed_at is not None
    assert (await store.get_quarantined(workspace.id, second.id)).replayed_at is None
    assert (await store.counters(workspace.id)).quarantined == 1


async def test_counters_add_up_every_append_of_the_workspace(store: SqliteStore) -> None:
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


# -- migrations and opening ----------------------------------------------------------------


def schema_of(path: Path) -> tuple[int, list[str]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        tables = [row[0] for row in conn.execute("SELECT sql FROM sqlite_master ORDER BY name")]
    return version, tables


async def test_every_migration_is_applied_once_and_reopening_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "herald.db"
    folder = resources.files("herald.store") / "migrations"
    migrations = [entry for entry in folder.iterdir() if entry.name.endswith(".sql")]
    async with started(path) as store:
        workspace = await store.create_workspace("acme")
    first_open = schema_of(path)

    async with started(path) as store:
        found = await store.get_workspace("acme")

    assert first_open[0] == len(migrations)
    assert schema_of(path) == first_open
    assert found == workspace


async def test_a_read_only_store_applies_migrations_to_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "herald.db"

    async with started(path, writer=False) as store:
        workspaces = await store.list_workspaces()

    assert workspaces == []
    assert schema_of(path)[0] >= 1


def test_open_store_opens_the_sqlite_file_named_by_the_url(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'herald.db'}")

    store = open_store(settings, writer=False)

    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "herald.db"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///herald.db", Path("herald.db")),
        ("sqlite:////var/lib/herald/events.db", Path("/var/lib/herald/events.db")),
    ],
)
def test_sqlite_urls_name_relative_and_absolute_files(url: str, path: Path) -> None:
    assert sqlite_path(url) == path


def test_a_sqlite_url_without_a_file_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="use sqlite:///herald.db"):
        sqlite_path("sqlite://")
