"""What only the SQLite store has: the writer process, one writer per file, the files it opens,
and its migrations and URLs. The store contract both databases keep is in test_store.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from herald.errors import ConfigError, StoreUnavailable
from herald.settings import Settings
from herald.store import open_store, sqlite_path
from herald.store.base import AppendResult
from herald.store.sqlite import SqliteStore
from tests.store.conftest import (
    WriteLock,
    append_request,
    sent_uuids,
    started,
    uuids,
    whole_log,
    wire_event,
)

# -- the writer process ---------------------------------------------------------------------


def writer_processes() -> list[int]:
    """Pids of the log writer processes this process started, from /proc (Linux)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"herald.store.writer" in command:
            pids.append(int(entry.name))
    return pids


async def test_a_killed_writer_process_fails_appends_and_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "herald.db"
    lost = asyncio.Event()
    store = SqliteStore(path, writer_process=True, on_writer_lost=lost.set)
    await store.start()
    try:
        workspace = await store.create_workspace("acme")
        acknowledged = [wire_event("alice"), wire_event("bob")]
        await store.append(append_request(workspace.id, acknowledged))
        in_flight = [wire_event("carol")]
        with WriteLock(store):
            pending = asyncio.create_task(store.append(append_request(workspace.id, in_flight)))
            await store.ping()  # by now the append has reached the (waiting) writer
            (pid,) = writer_processes()

            os.kill(pid, signal.SIGKILL)
            await lost.wait()

            with pytest.raises(StoreUnavailable, match="writer process stopped"):
                await pending
        with pytest.raises(StoreUnavailable):
            await store.append(append_request(workspace.id, [wire_event()]))
        with pytest.raises(StoreUnavailable, match="restart Herald"):
            await store.ping()
    finally:
        await store.close()

    async with started(path, writer_process=True) as restarted:
        assert uuids(await whole_log(restarted)) == sent_uuids(acknowledged)
        retried = await restarted.append(append_request(workspace.id, acknowledged + in_flight))
        assert retried == AppendResult(accepted=1, duplicates=2, rejected=0)


# -- one writer per file ----------------------------------------------------------------------


async def test_a_second_writer_on_the_same_file_fails_naming_the_problem(
    tmp_path: Path, writer_process: bool
) -> None:
    path = tmp_path / "herald.db"
    async with started(path, writer_process=writer_process):
        with pytest.raises(StoreUnavailable) as raised:
            async with started(path, writer_process=writer_process):
                pass

    assert "Another Herald process is writing" in raised.value.message
    assert str(path) in raised.value.message


async def test_a_writer_can_open_the_file_once_the_previous_one_closed(
    tmp_path: Path, writer_process: bool
) -> None:
    path = tmp_path / "herald.db"
    async with started(path, writer_process=writer_process) as first:
        workspace = await first.create_workspace("acme")
        await first.append(append_request(workspace.id, [wire_event()]))

    async with started(path, writer_process=writer_process) as second:
        result = await second.append(append_request(workspace.id, [wire_event()]))

        assert result == AppendResult(accepted=1, duplicates=0, rejected=0)
        assert len(await whole_log(second)) == 2


# -- opening --------------------------------------------------------------------------------


async def test_start_fails_naming_the_id_index_when_it_cannot_be_opened(
    tmp_path: Path, writer_process: bool
) -> None:
    path = tmp_path / "herald.db"
    index = tmp_path / "herald.db.ids"
    index.write_text("not an LMDB directory")

    with pytest.raises(StoreUnavailable) as raised:
        async with started(path, writer_process=writer_process):
            pass

    assert str(index) in raised.value.message


async def test_start_fails_naming_the_database_when_it_cannot_be_opened(tmp_path: Path) -> None:
    path = tmp_path / "herald.db"
    path.mkdir()

    with pytest.raises(StoreUnavailable, match="Cannot open the database") as raised:
        async with started(path):
            pass

    assert str(path) in raised.value.message


# -- migrations and URLs ---------------------------------------------------------------------


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
