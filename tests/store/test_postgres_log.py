"""The PostgreSQL event log never lets a reader pass a seq that commits late (issue 5).

A reader of the log keeps a checkpoint: the highest seq it has read, per partition; it next reads
`seq > checkpoint`. That is only safe if seqs become visible in order: once a reader can see seq N,
every seq below N must be committed already. A sequence (or serial column) does not give that:
two transactions take 1 and 2, the second commits first, and a reader checkpoints past 1 before
it exists. Herald's appends lock the one `log_head` row, take their seqs from it and commit before
the next append can take any, so a seq is never visible before a lower one.

The interleavings are forced with real locks, and each wait is seen in pg_stat_activity before the
test goes on: no sleeps stand in for synchronisation. Herald's first append is stalled after it
has taken its seq and written its rows (another transaction holds the last row it writes): the
moment at which a log numbered by a sequence would let a later append commit first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import pytest

from herald.core.events import partition_of
from herald.core.identity import Outcome
from herald.processor.loop import Processor
from herald.store.base import AppendResult, Workspace
from herald.store.postgres import PostgresStore
from tests.store.conftest import append_request, running, uuids, whole_log, wire_event

T = TypeVar("T")
POLL_S = 0.01  # between two looks at pg_stat_activity
POLL_ATTEMPTS = 1_000  # x POLL_S: only turns a hang into a failure; nothing is timed

Connection = psycopg.Connection[Any]


@pytest.fixture
def connect(postgres_schema_url: str) -> Iterator[Callable[[], Connection]]:
    """Open autocommit connections of the test's own to its schema; all closed at teardown."""
    opened: list[Connection] = []

    def connect() -> Connection:
        conn = psycopg.connect(postgres_schema_url, autocommit=True)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


async def until(look: Callable[[], T | None], *, what: str) -> T:
    """Look (a query) until it finds something; fail naming `what` if it never does."""
    for _ in range(POLL_ATTEMPTS):
        found = look()
        if found:
            return found
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"gave up waiting: {what}")


@contextlib.contextmanager
def locked(conn: Connection, query: str, *params: Any) -> Iterator[Callable[[], None]]:
    """Hold the rows `query` selects FOR UPDATE in an open transaction of `conn`; yields what
    releases them (done on the way out too, so that a failing test leaves no writer stuck)."""
    conn.execute("BEGIN")
    conn.execute(query, params)

    def release() -> None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")

    try:
        yield release
    finally:
        release()


def waiting_for(observer: Connection, holder_pid: int) -> list[tuple[int, str, str]]:
    """The backends waiting for a lock `holder_pid` holds: (pid, application_name, query)."""
    return observer.execute(
        "SELECT pid, application_name, query FROM pg_stat_activity"
        " WHERE %s = ANY(pg_blocking_pids(pid))",
        (holder_pid,),
    ).fetchall()


# -- the trap ------------------------------------------------------------------------------


def test_with_a_sequence_a_reader_checkpoints_past_a_seq_that_commits_later(
    connect: Callable[[], Connection],
) -> None:
    first, second, reader = connect(), connect(), connect()
    reader.execute("CREATE TABLE naive_log (seq BIGSERIAL PRIMARY KEY, event TEXT NOT NULL)")

    first.execute("BEGIN")
    (first_seq,) = first.execute(
        "INSERT INTO naive_log (event) VALUES ('first') RETURNING seq"
    ).fetchone() or (None,)
    second.execute("BEGIN")
    (second_seq,) = second.execute(
        "INSERT INTO naive_log (event) VALUES ('second') RETURNING seq"
    ).fetchone() or (None,)
    second.execute("COMMIT")  # the higher seq commits first
    seen = reader.execute("SELECT seq, event FROM naive_log WHERE seq > 0 ORDER BY seq").fetchall()
    checkpoint = max(seq for seq, _ in seen)
    first.execute("COMMIT")
    after_checkpoint = reader.execute(
        "SELECT seq, event FROM naive_log WHERE seq > %s ORDER BY seq", (checkpoint,)
    ).fetchall()

    assert (first_seq, second_seq) == (1, 2)
    assert seen == [(2, "second")]
    assert after_checkpoint == []  # the reader never reads "first"...
    assert reader.execute("SELECT seq, event FROM naive_log ORDER BY seq").fetchall() == [
        (1, "first"),
        (2, "second"),
    ]  # ...though it is in the log


# -- Herald's log --------------------------------------------------------------------------


def same_partition_customers(acme: Workspace, globex: Workspace) -> tuple[str, str]:
    """A customer of each workspace whose events fall in the same partition (where a reader's
    checkpoint is kept): across partitions a late commit would be read all the same."""
    wanted = partition_of(acme.id, "alice")
    number = 0
    while partition_of(globex.id, f"bob-{number}") != wanted:
        number += 1
    return "alice", f"bob-{number}"


def log_seqs(reader: Connection) -> list[int]:
    return [seq for (seq,) in reader.execute("SELECT seq FROM event_batches ORDER BY seq")]


async def test_an_append_that_commits_late_holds_back_every_higher_seq_and_is_processed(
    postgres_schema_url: str, connect: Callable[[], Connection]
) -> None:
    stall, observer, reader = connect(), connect(), connect()
    async with (
        running(PostgresStore(postgres_schema_url)) as first,  # two api processes
        running(PostgresStore(postgres_schema_url)) as second,
    ):
        acme = await first.create_workspace("acme")
        globex = await first.create_workspace("globex")
        alice, bob = same_partition_customers(acme, globex)
        earlier, late, early = wire_event(alice), wire_event(alice), wire_event(bob)
        await first.append(append_request(acme.id, [earlier]))
        processor = Processor(postgres_schema_url, name="processor-a")
        processor.open()
        try:
            assert await asyncio.to_thread(processor.drain) == 1

            # Given an append to acme that has taken its seq and written its rows, stalled on
            # the last row it writes (acme's counters) before it commits,
            with locked(
                stall,
                "SELECT * FROM workspace_counters WHERE workspace_id = %s FOR UPDATE",
                acme.id,
            ) as release:
                late_append = asyncio.create_task(first.append(append_request(acme.id, [late])))
                ((late_pid, role, query),) = await until(
                    lambda: waiting_for(observer, stall.info.backend_pid),
                    what="the first append to wait for acme's counters row",
                )
                assert (role, "workspace_counters" in query) == ("herald-log-writer", True)

                # when another api process appends to globex, in the same partition,
                early_append = asyncio.create_task(
                    second.append(append_request(globex.id, [early]))
                )
                blocked = await until(
                    lambda: early_append.done() or waiting_for(observer, late_pid),
                    what="the second append to commit or to wait",
                )

                # then it cannot commit before the first: it waits for the log_head row,
                assert not early_append.done(), "a higher seq committed while a lower was open"
                assert isinstance(blocked, list)
                ((_, role, query),) = blocked
                assert (role, "log_head" in query) == ("herald-log-writer", True)
                # nothing past the processed event is visible, so a reader has nothing to pass,
                assert log_seqs(reader) == [1]
                assert uuids(await whole_log(first)) == [earlier["uuid"]]
                assert await asyncio.to_thread(processor.drain) == 0

                # and once the first commits, the second follows it with the next seq.
                release()
                results = await asyncio.gather(late_append, early_append)
            processed = await asyncio.to_thread(processor.drain)
        finally:
            processor.close()

        assert list(results) == [AppendResult(accepted=1, duplicates=0, rejected=0)] * 2
        assert log_seqs(reader) == [1, 2, 3]
        assert uuids(await whole_log(first)) == [earlier["uuid"], late["uuid"], early["uuid"]]
        assert processed == 2
        done = {
            name: await first.event_processing(workspace.id, UUID(event["uuid"]).bytes)
            for name, workspace, event in (
                ("earlier", acme, earlier),
                ("late", acme, late),
                ("early", globex, early),
            )
        }
    assert {name: (processing and processing.outcome) for name, processing in done.items()} == {
        "earlier": Outcome.CREATED,
        "late": Outcome.ATTRIBUTED,  # to alice, whom `earlier` created
        "early": Outcome.CREATED,
    }
    assert done["late"] and done["earlier"]
    assert done["late"].customer_id == done["earlier"].customer_id
