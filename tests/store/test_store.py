"""The event log's contract, on SQLite (the log writer on a thread, or in a process of its own)
and on PostgreSQL: append, dedupe, read back, close, overload, read-only stores, failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
import pytest

from herald.core.events import PARTITIONS, partition_of
from herald.errors import InvalidRequest, NotFound, Overloaded, StoreUnavailable
from herald.store.base import AppendResult, EventFilter, Store, StoredEvent
from herald.store.reading import MAX_SCAN_BATCHES, wire_fields
from herald.types import WorkspaceId
from tests.conftest import location_of
from tests.store.conftest import (
    Database,
    WriteLock,
    append_all_then_release,
    append_request,
    raw_connection,
    running,
    sent_uuids,
    uuids,
    whole_log,
    wire_event,
)

# -- append results and dedupe -------------------------------------------------------------


async def test_append_reports_each_valid_event_accepted_and_each_invalid_one_rejected(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    invalid = {"event": "purchase", "correlationKey": "_id", "source": "custom"}
    request = append_request(workspace.id, [wire_event(), invalid, wire_event()])

    result = await store.append(request)

    assert result == AppendResult(accepted=2, duplicates=0, rejected=1)
    assert len(await whole_log(store)) == 2


async def test_a_retried_request_is_reported_as_duplicates_and_stored_once(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    batch = [wire_event("alice"), wire_event("bob"), wire_event("carol")]
    await store.append(append_request(workspace.id, batch))

    retried = await store.append(append_request(workspace.id, batch))

    assert retried == AppendResult(accepted=0, duplicates=3, rejected=0)
    assert uuids(await whole_log(store)) == sent_uuids(batch)


async def test_a_request_repeating_an_id_stores_the_first_and_reports_the_rest_as_duplicates(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    first = wire_event("alice", name="first")
    batch = [first, wire_event("alice", name="second", uuid=first["uuid"]), wire_event("bob")]

    result = await store.append(append_request(workspace.id, batch))

    assert result == AppendResult(accepted=2, duplicates=1, rejected=0)
    stored = await store.get_event(workspace.id, UUID(first["uuid"]).bytes)
    assert msgspec.json.decode(stored.raw)["event"] == "first"
    assert sorted(uuids(await whole_log(store))) == sorted([first["uuid"], batch[2]["uuid"]])


async def test_uuids_differing_only_in_case_are_the_same_event(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    uuid = "F451DF0A-D713-4076-AE20-41AB1641BC98"
    await store.append(append_request(workspace.id, [wire_event(uuid=uuid)]))

    again = await store.append(append_request(workspace.id, [wire_event(uuid=uuid.lower())]))

    assert again == AppendResult(accepted=0, duplicates=1, rejected=0)


async def test_concurrent_requests_sharing_ids_store_every_id_once(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    x, y, z, w = (wire_event(customer) for customer in ("xavier", "yann", "zoe", "will"))
    batches = [[x, y], [y, z], [z, z, w], [x, y, z, w]]
    requests = [append_request(workspace.id, batch) for batch in batches]

    with WriteLock(store) as lock:
        results = await append_all_then_release(store, requests, lock)

    assert results == [
        AppendResult(accepted=2, duplicates=0, rejected=0),
        AppendResult(accepted=1, duplicates=1, rejected=0),
        AppendResult(accepted=1, duplicates=2, rejected=0),
        AppendResult(accepted=0, duplicates=4, rejected=0),
    ]
    assert sorted(uuids(await whole_log(store))) == sorted(sent_uuids([x, y, z, w]))


async def test_many_concurrent_requests_with_overlapping_ids_store_each_id_once(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    shared = [wire_event(f"customer-{number}") for number in range(20)]
    batches = [shared[start : start + 7] + [wire_event("solo")] for start in range(14)]

    results = await asyncio.gather(
        *(store.append(append_request(workspace.id, batch)) for batch in batches)
    )

    distinct = {event["uuid"] for batch in batches for event in batch}
    assert sum(result.accepted for result in results) == len(distinct)
    assert sum(result.duplicates for result in results) == sum(map(len, batches)) - len(distinct)
    stored = Counter(uuids(await whole_log(store)))
    assert set(stored) == distinct
    assert set(stored.values()) == {1}


async def test_concurrent_appends_share_a_commit(database: Database) -> None:
    commits: list[int] = []
    async with running(
        database.open_store(observe_commit=lambda events, _seconds: commits.append(events))
    ) as store:
        workspace = await store.create_workspace("acme")
        requests = [append_request(workspace.id, [wire_event()]) for _ in range(10)]

        with WriteLock(store) as lock:
            results = await append_all_then_release(store, requests, lock)

        assert results == [AppendResult(accepted=1, duplicates=0, rejected=0)] * 10
        assert sum(commits) == 10
        assert len(commits) < 10


async def test_the_same_uuid_in_two_workspaces_is_two_events(store: Store) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")
    uuid = str(UUID(int=7))

    results = [
        await store.append(append_request(acme.id, [wire_event(name="acme", uuid=uuid)])),
        await store.append(append_request(globex.id, [wire_event(name="globex", uuid=uuid)])),
    ]

    assert results == [AppendResult(accepted=1, duplicates=0, rejected=0)] * 2
    for workspace in (acme, globex):
        stored = await store.get_event(workspace.id, UUID(uuid).bytes)
        assert msgspec.json.decode(stored.raw)["event"] == workspace.name


@contextlib.contextmanager
def log_writes_refused(store: Store, message: str) -> Iterator[None]:
    """A trigger that makes every insert into the log fail with `message`, as a full disk would."""
    postgres = isinstance(location_of(store), str)
    with raw_connection(store) as admin:
        if postgres:
            admin.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
                f" AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$"
            )
            admin.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON event_batches"
                " FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        else:
            admin.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON event_batches"
                f" BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        yield
        admin.execute("DROP TRIGGER refuse ON event_batches" if postgres else "DROP TRIGGER refuse")


async def test_a_failed_commit_is_reported_and_leaves_nothing_behind(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    batch = [wire_event("alice"), wire_event("bob")]
    request = append_request(workspace.id, batch)
    with log_writes_refused(store, "disk on fire"):
        with pytest.raises(StoreUnavailable, match="disk on fire"):
            await store.append(request)

    retried = await store.append(request)

    assert retried == AppendResult(accepted=2, duplicates=0, rejected=0)
    assert uuids(await whole_log(store)) == sent_uuids(batch)
    assert (await store.counters(workspace.id)).accepted == 2


async def test_append_after_close_is_refused_with_store_unavailable(database: Database) -> None:
    async with running(database.open_store()) as store:
        workspace = await store.create_workspace("acme")
    request = append_request(workspace.id, [wire_event()])

    with pytest.raises(StoreUnavailable):
        await store.append(request)


# -- order and reading back ----------------------------------------------------------------


async def test_events_of_a_customer_are_read_back_in_the_order_sent(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    first = [wire_event("alice"), wire_event("bob"), wire_event("alice"), wire_event("bob")]
    second = [wire_event("alice"), wire_event("carol"), wire_event("alice")]

    await store.append(append_request(workspace.id, first))
    await store.append(append_request(workspace.id, second))

    log = await whole_log(store)
    for customer in ("alice", "bob", "carol"):
        sent = [event["uuid"] for event in first + second if event["correlationValue"] == customer]
        read = [e.uuid for e in log if msgspec.json.decode(e.raw)["correlationValue"] == customer]
        assert read == sent


async def test_get_event_returns_the_event_as_sent_with_what_herald_recorded(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    event = wire_event("alice", uuid="F451DF0A-D713-4076-AE20-41AB1641BC98")
    received_at = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    await store.append(
        append_request(
            workspace.id, [event], received_at=received_at, sent_at="2024-06-01T11:59:58Z"
        )
    )

    stored = await store.get_event(workspace.id, UUID(event["uuid"]).bytes)

    assert stored.uuid == "f451df0a-d713-4076-ae20-41ab1641bc98"
    assert stored.raw == msgspec.json.encode(event)
    assert stored.workspace_id == workspace.id
    assert stored.partition == partition_of(workspace.id, "alice")
    assert stored.received_at == received_at
    assert stored.sent_at == datetime(2024, 6, 1, 11, 59, 58, tzinfo=UTC)
    assert wire_fields(stored) == {**event, "uuid": stored.uuid}


async def test_an_event_sent_without_uuid_is_stored_under_a_generated_one(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    event = wire_event()
    del event["uuid"]

    await store.append(append_request(workspace.id, [event]))

    (stored,) = await whole_log(store)
    assert await store.get_event(workspace.id, UUID(stored.uuid).bytes) == stored
    assert wire_fields(stored) == {**event, "uuid": stored.uuid}


async def test_get_event_of_an_unknown_id_is_not_found_naming_the_uuid(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    await store.append(append_request(workspace.id, [wire_event()]))
    missing = UUID(int=42)

    with pytest.raises(NotFound, match=str(missing)):
        await store.get_event(workspace.id, missing.bytes)


async def test_get_event_does_not_reach_into_another_workspace(store: Store) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")
    event = wire_event()
    await store.append(append_request(acme.id, [event]))

    with pytest.raises(NotFound):
        await store.get_event(globex.id, UUID(event["uuid"]).bytes)


async def list_all(
    store: Store, workspace_id: WorkspaceId, filters: EventFilter, *, limit: int
) -> list[StoredEvent]:
    """Follow next_cursor from the newest event to the end."""
    events: list[StoredEvent] = []
    cursor: str | None = None
    while True:
        page = await store.list_events(workspace_id, filters, cursor=cursor, limit=limit)
        events.extend(page.events)
        if page.next_cursor is None:
            return events
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 2, 7, 1_000])
async def test_list_events_pages_newest_first_visiting_each_event_once(
    store: Store, limit: int
) -> None:
    workspace = await store.create_workspace("acme")
    other = await store.create_workspace("other")
    sent = [[wire_event(c) for c in ["alice", "bob", "carol", "alice"][:size]] for size in (1, 4)]
    sent += [[wire_event("bob"), wire_event("alice"), wire_event("bob")]]
    for batch in sent:
        await store.append(append_request(workspace.id, batch))
        await store.append(append_request(other.id, [wire_event("alice")]))

    listed = await list_all(store, workspace.id, EventFilter(), limit=limit)

    request_of = {event["uuid"]: number for number, batch in enumerate(sent) for event in batch}
    assert sorted(uuids(listed)) == sorted(request_of)
    numbers = [request_of[uuid] for uuid in uuids(listed)]
    assert numbers == sorted(numbers, reverse=True)
    for customer in ("alice", "bob", "carol"):
        sent_by = [e["uuid"] for batch in sent for e in batch if e["correlationValue"] == customer]
        assert [uuid for uuid in uuids(listed) if uuid in sent_by] == sent_by[::-1]


TIMESTAMPED = {
    "alice-purchase-10h": wire_event("alice", name="purchase", timestamp="2024-06-01T10:00:00Z"),
    "bob-purchase-11h": wire_event("bob", name="purchase", timestamp="2024-06-01T11:00:00Z"),
    "alice-signup-10h": wire_event("alice", name="signup", timestamp="2024-06-01T12:00:00+02:00"),
    "bob-signup-11h30": wire_event("bob", name="signup", timestamp="Jun 1, 2024 11:30:00 AM"),
    "alice-purchase-received-12h30": wire_event("alice", name="purchase"),
}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 6, 1, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            EventFilter(correlation_value="alice"),
            ["alice-purchase-received-12h30", "alice-signup-10h", "alice-purchase-10h"],
        ),
        (
            EventFilter(event="signup"),
            ["bob-signup-11h30", "alice-signup-10h"],
        ),
        (
            EventFilter(start=at(11), end=at(12, 30)),
            ["bob-signup-11h30", "bob-purchase-11h"],
        ),
        (
            EventFilter(start=at(12, 30)),
            ["alice-purchase-received-12h30"],
        ),
        (
            EventFilter(end=at(11)),
            ["alice-signup-10h", "alice-purchase-10h"],
        ),
        (
            EventFilter(correlation_value="alice", event="purchase", end=at(12)),
            ["alice-purchase-10h"],
        ),
        (
            EventFilter(correlation_value="nobody"),
            [],
        ),
    ],
)
async def test_list_events_returns_only_events_matching_every_filter(
    store: Store, filters: EventFilter, expected: list[str]
) -> None:
    workspace = await store.create_workspace("acme")
    labels = {event["uuid"]: label for label, event in TIMESTAMPED.items()}
    batch = list(TIMESTAMPED.values())
    await store.append(append_request(workspace.id, batch, received_at=at(12, 30)))

    page = await store.list_events(workspace.id, filters, cursor=None, limit=100)

    assert [labels[event.uuid] for event in page.events] == expected
    assert page.next_cursor is None


async def test_list_events_pages_through_a_filter_visiting_each_match_once(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    for number in range(6):
        batch = [wire_event("alice", name="purchase"), wire_event("bob", name="purchase")]
        batch.insert(number % 2, wire_event("alice", name="signup"))
        await store.append(append_request(workspace.id, batch))
    filters = EventFilter(correlation_value="alice", event="purchase")

    paged = await list_all(store, workspace.id, filters, limit=4)

    unpaged = await store.list_events(workspace.id, filters, cursor=None, limit=1_000)
    assert len(paged) == 6
    assert uuids(paged) == uuids(unpaged.events)


async def test_a_sparse_filter_returns_short_pages_that_continue_to_the_match(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    one_per_partition: dict[int, str] = {}
    number = 0
    while len(one_per_partition) < PARTITIONS:
        one_per_partition.setdefault(partition_of(workspace.id, f"c{number}"), f"c{number}")
        number += 1
    rare = wire_event(name="rare")
    await store.append(append_request(workspace.id, [rare]))
    requests_needed = MAX_SCAN_BATCHES // PARTITIONS + 1
    await asyncio.gather(
        *(
            store.append(
                append_request(workspace.id, [wire_event(c) for c in one_per_partition.values()])
            )
            for _ in range(requests_needed)
        )
    )

    first = await store.list_events(workspace.id, EventFilter(event="rare"), cursor=None, limit=10)
    found = await list_all(store, workspace.id, EventFilter(event="rare"), limit=10)

    assert first.events == []
    assert first.next_cursor is not None
    assert uuids(found) == [rare["uuid"]]


async def test_list_events_refuses_a_cursor_it_did_not_give_out(store: Store) -> None:
    workspace = await store.create_workspace("acme")

    with pytest.raises(InvalidRequest, match="start again without a cursor") as raised:
        await store.list_events(workspace.id, EventFilter(), cursor="yesterday", limit=10)

    assert raised.value.details == {"field": "cursor"}


async def test_tail_events_reads_every_workspace_oldest_first_from_a_cursor(
    store: Store,
) -> None:
    acme = await store.create_workspace("acme")
    globex = await store.create_workspace("globex")
    sent: list[str] = []
    for workspace in (acme, globex, acme):
        batch = [wire_event("alice"), wire_event("alice"), wire_event("alice")]
        await store.append(append_request(workspace.id, batch))
        sent.extend(sent_uuids(batch))

    first = await store.tail_events(None, limit=4)
    rest = await store.tail_events(first.next_cursor, limit=100)
    after_the_end = await store.tail_events(rest.next_cursor, limit=100)

    assert uuids(first.events) == sent[:4]
    assert uuids(rest.events) == sent[4:]
    assert rest.next_cursor == rest.events[-1].cursor
    assert after_the_end.events == []
    assert {event.workspace_id for event in first.events + rest.events} == {acme.id, globex.id}


async def test_tailing_from_the_last_cursor_sees_only_events_committed_after_it(
    store: Store,
) -> None:
    workspace = await store.create_workspace("acme")
    empty_log_cursor = await store.last_cursor()
    await store.append(append_request(workspace.id, [wire_event("alice"), wire_event("bob")]))
    cursor = await store.last_cursor()
    caught_up = await store.tail_events(cursor, limit=100)
    later = [wire_event("carol"), wire_event("dave")]

    await store.append(append_request(workspace.id, later))

    assert empty_log_cursor is None
    assert caught_up.events == []
    assert uuids((await store.tail_events(cursor, limit=100)).events) == sent_uuids(later)


async def test_close_lets_an_append_in_flight_finish_with_its_result(database: Database) -> None:
    store = database.open_store()
    await store.start()
    workspace = await store.create_workspace("acme")
    event = wire_event()

    with WriteLock(store) as lock:
        append = asyncio.create_task(store.append(append_request(workspace.id, [event])))
        await store.ping()  # by now the append has reached the (waiting) writer
        closing = asyncio.create_task(store.close())

        async def release() -> None:
            lock.release()

        await asyncio.create_task(release())  # after close has begun
        (outcome,) = await asyncio.gather(append, return_exceptions=True)
        await closing

    assert outcome == AppendResult(accepted=1, duplicates=0, rejected=0)
    async with running(database.open_store()) as reopened:
        assert uuids(await whole_log(reopened)) == [event["uuid"]]


async def test_closing_a_store_twice_is_harmless(database: Database) -> None:
    store = database.open_store()
    await store.start()

    await store.close()
    await store.close()

    async with running(database.open_store()) as reopened:
        assert await reopened.list_workspaces() == []


async def test_an_abandoned_append_is_committed_all_the_same(store: Store) -> None:
    workspace = await store.create_workspace("acme")
    abandoned_batch = [wire_event("alice")]
    kept_batch = [wire_event("bob")]

    with WriteLock(store) as lock:
        abandoned = asyncio.create_task(store.append(append_request(workspace.id, abandoned_batch)))
        await store.ping()  # by now the append has reached the (waiting) writer
        abandoned.cancel()  # the client went away
        (kept,) = await append_all_then_release(
            store, [append_request(workspace.id, kept_batch)], lock
        )

    assert abandoned.cancelled()
    assert kept == AppendResult(accepted=1, duplicates=0, rejected=0)
    retried = await store.append(append_request(workspace.id, abandoned_batch))
    assert retried == AppendResult(accepted=0, duplicates=1, rejected=0)


# -- overload ---------------------------------------------------------------------------------


async def test_a_full_commit_queue_sheds_appends_and_keeps_every_accepted_one(
    database: Database,
) -> None:
    async with running(database.open_store(max_pending_events=3)) as store:
        workspace = await store.create_workspace("acme")
        batches = [[wire_event()] for _ in range(10)]
        requests = [append_request(workspace.id, batch) for batch in batches]

        with WriteLock(store) as lock:
            results = await append_all_then_release(store, requests, lock)

        accepted = [b for b, r in zip(batches, results, strict=True) if isinstance(r, AppendResult)]
        shed = [result for result in results if isinstance(result, Overloaded)]
        assert len(accepted) == 3
        assert len(shed) == 7
        assert all(error.details == {"retry_after_s": 1} for error in shed)
        assert sorted(uuids(await whole_log(store))) == sorted(
            event["uuid"] for batch in accepted for event in batch
        )
        assert store.pending_events() == 0
        retried = await store.append(requests[-1])
        assert retried == AppendResult(accepted=1, duplicates=0, rejected=0)


# -- read-only stores -------------------------------------------------------------------------


READER = """
import asyncio, json, sys
from herald.settings import Settings
from herald.store import open_store
from herald.store.base import EventFilter

async def main():
    store = open_store(Settings(database_url=sys.argv[1]), writer=False)
    await store.start()
    try:
        workspace = await store.get_workspace("acme")
        page = await store.list_events(workspace.id, EventFilter(), cursor=None, limit=100)
        found = await store.get_event(workspace.id, bytes.fromhex(sys.argv[2]))
        await store.create_workspace("made-by-the-reader")
        print(json.dumps({"listed": [e.uuid for e in page.events], "found": found.uuid}))
    finally:
        await store.close()

asyncio.run(main())
"""


async def test_a_read_only_store_in_another_process_reads_alongside_the_writer(
    database: Database, store: Store
) -> None:
    workspace = await store.create_workspace("acme")
    batch = [wire_event("alice"), wire_event("bob")]
    await store.append(append_request(workspace.id, batch))

    reader = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        READER,
        database.url,
        UUID(batch[0]["uuid"]).hex,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await reader.communicate()

    assert reader.returncode == 0, err.decode()
    assert json.loads(out) == {"listed": sent_uuids(batch)[::-1], "found": batch[0]["uuid"]}
    assert (await store.get_workspace("made-by-the-reader")).name == "made-by-the-reader"
    more = await store.append(append_request(workspace.id, [wire_event()]))
    assert more == AppendResult(accepted=1, duplicates=0, rejected=0)


async def test_a_read_only_store_finds_events_by_id_where_the_writer_left_them(
    database: Database,
) -> None:
    event = wire_event()
    async with running(database.open_store()) as writer:
        workspace = await writer.create_workspace("acme")
        await writer.append(append_request(workspace.id, [event]))

    async with running(database.open_store(writer=False)) as reader:
        found = await reader.get_event(workspace.id, UUID(event["uuid"]).bytes)

    assert found.uuid == event["uuid"]


async def test_a_read_only_store_refuses_appends(database: Database) -> None:
    async with running(database.open_store(writer=False)) as reader:
        workspace = await reader.create_workspace("acme")

        with pytest.raises(StoreUnavailable, match="read-only"):
            await reader.append(append_request(workspace.id, [wire_event()]))

        assert reader.pending_events() == 0


def where(store: Store) -> str:
    """How a store's messages name its database: the SQLite file, or PostgreSQL's host:port/db
    (never the URL, which may hold a password)."""
    location = location_of(store)
    if isinstance(location, Path):
        return str(location)
    url = urlsplit(location)
    return f"{url.hostname}:{url.port or 5432}{url.path}"


async def test_a_database_failing_under_a_read_is_reported_as_store_unavailable(
    store: Store,
) -> None:
    await store.ping()
    with raw_connection(store) as admin:
        admin.execute("ALTER TABLE workspaces RENAME TO workspaces_gone")

    with pytest.raises(StoreUnavailable, match="workspaces") as raised:
        await store.list_workspaces()

    assert where(store) in raised.value.message
