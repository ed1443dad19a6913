"""What only the PostgreSQL store has: its migrations, several api processes appending to one log,
and how it names a server it cannot reach. The store contract both databases keep is in
test_store.py; the log's commit order is in test_postgres_log.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from importlib import resources
from typing import Any

import psycopg
import pytest

from herald.errors import ConfigError, StoreUnavailable
from herald.settings import Settings
from herald.store import open_store
from herald.store.base import AppendResult
from herald.store.postgres import PostgresStore
from tests.e2e.conftest import free_port
from tests.store.conftest import WriteLock, append_request, running, uuids, whole_log, wire_event


def schema_of(url: str) -> tuple[list[Any], list[Any]]:
    """The migrations applied to the schema, and its tables with their columns."""
    with psycopg.connect(url) as conn:
        applied = conn.execute("SELECT version, name, applied_at FROM herald_migrations").fetchall()
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
    return applied, columns


async def test_every_migration_is_applied_once_and_reopening_changes_nothing(
    postgres_schema_url: str,
) -> None:
    folder = resources.files("herald.store") / "pg_migrations"
    migrations = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    async with running(PostgresStore(postgres_schema_url)) as store:
        workspace = await store.create_workspace("acme")
    first_open = schema_of(postgres_schema_url)

    async with running(PostgresStore(postgres_schema_url, writer=False)) as store:
        found = await store.get_workspace("acme")

    assert [(version, name) for version, name, _ in first_open[0]] == list(
        enumerate(migrations, start=1)
    )
    assert schema_of(postgres_schema_url) == first_open
    assert found == workspace


def test_open_store_opens_postgres_for_a_postgresql_url() -> None:
    url = "postgresql://herald@db.example:5432/herald"

    store = open_store(Settings(database_url=url), writer=False)

    assert isinstance(store, PostgresStore)
    assert store.url == url


async def test_start_fails_naming_the_server_and_not_the_password_when_it_cannot_connect() -> None:
    port = free_port()  # nobody listens there
    url = f"postgresql://herald:s3cret-password@127.0.0.1:{port}/herald?connect_timeout=5"

    with pytest.raises(StoreUnavailable, match="Cannot connect to PostgreSQL") as raised:
        async with running(PostgresStore(url)):
            pass

    assert f"127.0.0.1:{port}/herald" in raised.value.message
    assert "s3cret-password" not in raised.value.message


@pytest.mark.parametrize("password", ["Top Secret", "p%ss"])
async def test_a_password_that_is_not_percent_encoded_says_how_to_encode_it_without_quoting_it(
    password: str,
) -> None:
    url = f"postgresql://herald:{password}@127.0.0.1:{free_port()}/herald"

    with pytest.raises(ConfigError, match="percent-encode") as raised:
        async with running(PostgresStore(url)):
            pass

    assert password not in raised.value.message
    assert "/herald" in raised.value.message


@pytest.mark.parametrize("url", ["postgres://herald:TopSecret@db/herald", "mysql://db/herald"])
def test_a_url_of_another_scheme_names_postgresql_and_not_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="use postgresql://") as raised:
        Settings.from_env({"HERALD_DATABASE_URL": url})

    assert "TopSecret" not in raised.value.message


async def test_a_request_sent_to_two_api_processes_at_once_is_stored_once(
    postgres_schema_url: str,
) -> None:
    async with (
        running(PostgresStore(postgres_schema_url)) as first,
        running(PostgresStore(postgres_schema_url)) as second,
    ):
        workspace = await first.create_workspace("acme")
        batch = [wire_event("alice"), wire_event("bob"), wire_event("alice")]
        request = append_request(workspace.id, batch)

        with WriteLock(first) as lock:  # both writers wait: neither can see the other's ids yet
            appends = [asyncio.create_task(store.append(request)) for store in (first, second)]
            await asyncio.gather(first.ping(), second.ping())
            lock.release()
            results = await asyncio.gather(*appends)

        stored = Counter(uuids(await whole_log(second)))

    assert sorted(results, key=lambda result: result.accepted) == [
        AppendResult(accepted=0, duplicates=3, rejected=0),
        AppendResult(accepted=3, duplicates=0, rejected=0),
    ]
    assert stored == Counter(event["uuid"] for event in batch)
    assert set(stored.values()) == {1}
