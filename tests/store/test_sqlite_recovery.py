"""The id index is derived from the log: whatever happened to it, a restart makes it agree again.

Each test damages the LMDB index (or the database beside it) the way a crash, an operator or a
restored backup would, restarts the store, and checks what a client notices: retried events are
still duplicates, new events are accepted, and every event can be fetched by its id.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import lmdb
import pytest

from herald.errors import NotFound
from herald.store.base import AppendResult
from herald.store.idindex import IdIndex
from herald.store.sqlite import SqliteStore
from herald.types import WorkspaceId
from tests.store.conftest import append_request, started, whole_log, wire_event

Batch = list[dict[str, str]]


def index_of(path: Path) -> Path:
    return path.with_name(path.name + ".ids")


def delete_index(path: Path, _before_last_commit: Path) -> None:
    shutil.rmtree(index_of(path))


def empty_index(path: Path, _before_last_commit: Path) -> None:
    index = IdIndex(index_of(path))
    try:
        index.reset(index.store_id() or "")
    finally:
        index.close()


def set_checkpoint_back(path: Path, _before_last_commit: Path) -> None:
    index = IdIndex(index_of(path))
    try:
        writer = index.write()
        writer.set_checkpoint(0)
        writer.commit()
    finally:
        index.close()


def lose_the_last_index_commit(path: Path, before_last_commit: Path) -> None:
    """A crash after the SQLite commit, before the LMDB commit: the index is one group behind."""
    shutil.rmtree(index_of(path))
    shutil.copytree(before_last_commit, index_of(path))


def snapshot_index(path: Path, destination: Path) -> None:
    """A compact copy made by LMDB itself: data.mdb is sparse, with an apparent size of 1 TiB."""
    destination.mkdir()
    env = lmdb.open(str(index_of(path)), readonly=True, lock=False, max_dbs=2)
    try:
        env.copy(str(destination), compact=True)
    finally:
        env.close()


async def append(store: SqliteStore, workspace_id: WorkspaceId, batch: Batch) -> AppendResult:
    return await store.append(append_request(workspace_id, batch))


async def assert_every_event_found(store: SqliteStore, workspace_id: int, batch: Batch) -> None:
    for event in batch:
        stored = await store.get_event(WorkspaceId(workspace_id), UUID(event["uuid"]).bytes)
        assert stored.uuid == event["uuid"]


@pytest.mark.parametrize(
    "damage",
    [delete_index, empty_index, set_checkpoint_back, lose_the_last_index_commit],
)
async def test_an_index_behind_the_log_is_caught_up_at_start(
    tmp_path: Path, writer_process: bool, damage: Callable[[Path, Path], None]
) -> None:
    path = tmp_path / "herald.db"
    first = [wire_event("alice"), wire_event("bob")]
    last = [wire_event("alice"), wire_event("carol"), wire_event("dave")]
    async with started(path, writer_process=writer_process) as store:
        workspace = await store.create_workspace("acme")
        await append(store, workspace.id, first)
    snapshot_index(path, tmp_path / "index-before-last-commit")
    async with started(path, writer_process=writer_process) as store:
        await append(store, workspace.id, last)
    damage(path, tmp_path / "index-before-last-commit")

    async with started(path, writer_process=writer_process) as store:
        retried = [await append(store, workspace.id, batch) for batch in (first, last)]
        fresh = [wire_event("erin")]
        accepted = await append(store, workspace.id, fresh)

        assert retried == [
            AppendResult(accepted=0, duplicates=2, rejected=0),
            AppendResult(accepted=0, duplicates=3, rejected=0),
        ]
        assert accepted == AppendResult(accepted=1, duplicates=0, rejected=0)
        await assert_every_event_found(store, workspace.id, first + last + fresh)
        assert [event.uuid for event in await whole_log(store)] == [
            event["uuid"] for event in first + last + fresh
        ]


async def test_an_index_rebuilt_from_a_long_log_finds_every_event(
    tmp_path: Path, writer_process: bool
) -> None:
    path = tmp_path / "herald.db"
    customers = [f"customer-{number}" for number in range(40)]
    batches = [[wire_event(customer) for customer in customers] for _ in range(200)]
    async with started(path, writer_process=writer_process) as store:
        workspace = await store.create_workspace("acme")
        for batch in batches:
            await append(store, workspace.id, batch)
    shutil.rmtree(index_of(path))

    async with started(path, writer_process=writer_process) as store:
        retried = await append(store, workspace.id, batches[0] + batches[-1])

        assert retried == AppendResult(accepted=0, duplicates=80, rejected=0)
        await assert_every_event_found(store, workspace.id, [b[0] for b in batches])


def replace_with_a_fresh_database(path: Path, _backup: Path) -> None:
    for leftover in path.parent.glob(path.name + "*"):
        if leftover != index_of(path):
            leftover.unlink()


def back_up(path: Path, backup: Path) -> None:
    """What `sqlite3 herald.db .backup backup.db` does: a consistent copy, WAL included."""
    with contextlib.closing(sqlite3.connect(path)) as source:
        with contextlib.closing(sqlite3.connect(backup)) as target:
            source.backup(target)


def restore_the_backup(path: Path, backup: Path) -> None:
    for leftover in path.parent.glob(path.name + "-*"):
        leftover.unlink()  # no WAL of the newer database may survive the restore
    shutil.copyfile(backup, path)


@pytest.mark.parametrize(
    ("replace", "first_survives"),
    [(replace_with_a_fresh_database, False), (restore_the_backup, True)],
)
async def test_an_index_ahead_of_the_log_is_rebuilt_so_no_phantom_duplicates(
    tmp_path: Path,
    writer_process: bool,
    replace: Callable[[Path, Path], None],
    first_survives: bool,
) -> None:
    path = tmp_path / "herald.db"
    backup = tmp_path / "backup.db"
    first = [wire_event("alice"), wire_event("bob")]
    lost = [wire_event("carol"), wire_event("dave")]
    async with started(path, writer_process=writer_process) as store:
        workspace = await store.create_workspace("acme")
        await append(store, workspace.id, first)
    back_up(path, backup)
    async with started(path, writer_process=writer_process) as store:
        await append(store, workspace.id, lost)
    replace(path, backup)

    async with started(path, writer_process=writer_process) as store:
        if not first_survives:
            workspace = await store.create_workspace("acme")
        with pytest.raises(NotFound):
            await store.get_event(workspace.id, UUID(lost[0]["uuid"]).bytes)
        resent = await append(store, workspace.id, first + lost)

        survivors = first if first_survives else []
        assert resent == AppendResult(
            accepted=len(first + lost) - len(survivors), duplicates=len(survivors), rejected=0
        )
        await assert_every_event_found(store, workspace.id, first + lost)
        assert sorted(event.uuid for event in await whole_log(store)) == sorted(
            event["uuid"] for event in first + lost
        )


async def test_a_database_swapped_for_another_herald_s_is_indexed_from_scratch(
    tmp_path: Path, writer_process: bool
) -> None:
    path = tmp_path / "herald.db"
    elsewhere = tmp_path / "elsewhere" / "herald.db"
    ours = [wire_event("alice")]
    theirs = [[wire_event("bob")], [wire_event("carol")], [wire_event("dave")]]
    async with started(path, writer_process=writer_process) as store:
        workspace = await store.create_workspace("acme")
        await append(store, workspace.id, ours)
    async with started(elsewhere, writer_process=writer_process) as other:
        await other.create_workspace("acme")
        for batch in theirs:
            await append(other, workspace.id, batch)
    path.unlink()
    back_up(elsewhere, path)

    async with started(path, writer_process=writer_process) as store:
        retried = [await append(store, workspace.id, batch) for batch in theirs]
        ours_again = await append(store, workspace.id, ours)

        assert retried == [AppendResult(accepted=0, duplicates=1, rejected=0)] * 3
        assert ours_again == AppendResult(accepted=1, duplicates=0, rejected=0)
        await assert_every_event_found(store, workspace.id, [b[0] for b in theirs] + ours)
