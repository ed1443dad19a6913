"""Partition leases (DESIGN §6, §7.2-3): fair shares, takeover, hand-back, one owner at a time.

Every processor reads a hand-moved clock: a lease runs out only when a test moves the clock.
"""

from __future__ import annotations

import json

from herald.core.events import PARTITIONS, partition_of
from herald.processor.loop import Processor
from herald.store.base import Store, Workspace
from tests.processor.conftest import (
    START_S,
    Clock,
    Database,
    Event,
    OpenProcessor,
    all_customers,
    an_event,
    events_of,
    identify,
    send,
    set_attributes,
    state_rows,
    uuid_of,
    uuids,
)

LEASE_S = 10.0
ALL = list(range(PARTITIONS))


def owners(database: Database) -> dict[int, str | None]:
    """Who the state database says holds each partition."""
    return dict(state_rows(database, "SELECT partition, owner FROM partitions ORDER BY partition"))


def assert_no_overlapping_progress(database: Database) -> None:
    """Each partition's committed steps cover disjoint seq ranges, one after another."""
    rows = state_rows(
        database,
        "SELECT partition, from_seq, to_seq FROM processing_log ORDER BY partition, from_seq",
    )
    last_to: dict[int, int] = {}
    for partition, from_seq, to_seq in rows:
        assert from_seq <= to_seq
        assert from_seq > last_to.get(partition, 0), f"partition {partition} was applied twice"
        last_to[partition] = to_seq


def assert_each_event_recorded_once(database: Database, count: int) -> None:
    assert state_rows(database, "SELECT count(*), count(DISTINCT id) FROM event_records") == [
        (count, count)
    ]


def events_in_every_partition(workspace: Workspace, per_partition: int = 2) -> list[Event]:
    """Events for customers spread so that every partition has some."""
    values: dict[int, list[str]] = {}
    number = 0
    while any(len(values.get(partition, [])) < per_partition for partition in ALL):
        value = f"anon-{number}"
        values.setdefault(partition_of(workspace.id, value), []).append(value)
        number += 1
    return [an_event(value) for lane in values.values() for value in lane[:per_partition]]


def balanced(first: Processor, second: Processor) -> None:
    """Let two processors settle their shares: join, give back, take."""
    first.refresh_leases()
    second.refresh_leases()
    first.refresh_leases()
    second.refresh_leases()


# -- shares ----------------------------------------------------------------------------------


async def test_a_lone_processor_takes_all_sixteen_partitions(
    open_processor: OpenProcessor, clock: Clock, database: Database
) -> None:
    alone = open_processor("alone", clock=clock, lease_s=LEASE_S)

    alone.refresh_leases()

    assert alone.owned() == ALL
    assert set(owners(database).values()) == {"alone"}


async def test_a_joining_processor_gets_its_fair_share_once_both_have_refreshed(
    open_processor: OpenProcessor, clock: Clock, database: Database
) -> None:
    first = open_processor("first", clock=clock, lease_s=LEASE_S)
    second = open_processor("second", clock=clock, lease_s=LEASE_S)
    first.refresh_leases()

    second.refresh_leases()
    while_first_holds_all = second.owned()
    first.refresh_leases()  # sees two live processors: gives half back
    second.refresh_leases()

    assert while_first_holds_all == []
    assert len(first.owned()) == len(second.owned()) == PARTITIONS // 2
    assert sorted(first.owned() + second.owned()) == ALL
    assert owners(database) == {
        **dict.fromkeys(first.owned(), "first"),
        **dict.fromkeys(second.owned(), "second"),
    }


async def test_three_processors_share_every_partition_without_overlap(
    open_processor: OpenProcessor, clock: Clock
) -> None:
    processors = [open_processor(name, clock=clock, lease_s=LEASE_S) for name in "abc"]

    for _ in range(3):
        for processor in processors:
            processor.refresh_leases()

    held = [processor.owned() for processor in processors]
    assert sorted(partition for owned in held for partition in owned) == ALL
    assert all(0 < len(owned) <= 6 for owned in held)  # ceil(16 / 3)


async def test_processors_that_keep_stepping_keep_their_partitions(
    open_processor: OpenProcessor, clock: Clock
) -> None:
    first = open_processor("first", clock=clock, lease_s=LEASE_S)
    second = open_processor("second", clock=clock, lease_s=LEASE_S)
    balanced(first, second)
    shares = (first.owned(), second.owned())

    for _ in range(12):  # 48 s in all, far past one lease, renewed every step
        clock.advance(LEASE_S * 0.4)
        first.step()
        second.step()

    assert (first.owned(), second.owned()) == shares


# -- takeover and hand-back ------------------------------------------------------------------


async def test_a_processor_that_stops_refreshing_loses_its_partitions_to_the_other(
    store: Store,
    workspace: Workspace,
    open_processor: OpenProcessor,
    clock: Clock,
    database: Database,
) -> None:
    first = open_processor("first", clock=clock, lease_s=LEASE_S)
    second = open_processor("second", clock=clock, lease_s=LEASE_S)
    balanced(first, second)
    events = events_in_every_partition(workspace)
    await send(store, workspace, events)

    clock.advance(LEASE_S + 1)  # `first` stalls: no refresh, no step
    second.refresh_leases()
    applied = second.drain()

    assert second.owned() == ALL
    assert set(owners(database).values()) == {"second"}
    assert applied == len(events)
    assert_each_event_recorded_once(database, len(events))


async def test_a_stalled_processor_that_comes_back_gets_a_share_again_and_repeats_nothing(
    store: Store,
    workspace: Workspace,
    open_processor: OpenProcessor,
    clock: Clock,
    database: Database,
) -> None:
    first = open_processor("first", clock=clock, lease_s=LEASE_S)
    second = open_processor("second", clock=clock, lease_s=LEASE_S)
    balanced(first, second)
    events = events_in_every_partition(workspace)
    await send(store, workspace, events)
    clock.advance(LEASE_S + 1)
    second.drain()  # takes everything over and applies it
    more = events_in_every_partition(workspace, per_partition=1)
    await send(store, workspace, more)

    first.refresh_leases()  # back: registers again, but everything is leased
    empty_handed = first.owned()
    second.refresh_leases()  # sees two live processors again: gives half back
    first.refresh_leases()
    applied = first.drain() + second.drain()

    assert empty_handed == []
    assert len(first.owned()) == len(second.owned()) == PARTITIONS // 2
    assert applied == len(more)
    assert_each_event_recorded_once(database, len(events) + len(more))
    assert_no_overlapping_progress(database)


async def test_close_hands_the_partitions_back_at_once(
    open_processor: OpenProcessor, clock: Clock, database: Database
) -> None:
    leaving = open_processor("leaving", clock=clock, lease_s=LEASE_S)
    staying = open_processor("staying", clock=clock, lease_s=LEASE_S)
    balanced(leaving, staying)

    leaving.close()
    handed_back = owners(database)
    staying.refresh_leases()  # no time has passed: nothing had to expire

    assert list(handed_back.values()).count(None) == PARTITIONS // 2
    assert "leaving" not in handed_back.values()
    assert staying.owned() == ALL
    assert leaving.owned() == []


async def test_a_processor_whose_partitions_were_taken_over_commits_nothing_on_them(
    store: Store,
    workspace: Workspace,
    open_processor: OpenProcessor,
    database: Database,
) -> None:
    stalled_clock = Clock()
    stalled = open_processor("stalled", clock=stalled_clock, lease_s=LEASE_S)
    stalled.refresh_leases()
    events = events_in_every_partition(workspace)
    await send(store, workspace, events)
    # Seen from the other processor, the stalled one's leases ran out long ago.
    later_clock = Clock(START_S + LEASE_S + 1)
    successor = open_processor("successor", clock=later_clock, lease_s=LEASE_S)
    successor.refresh_leases()

    lost = stalled.step()  # its clock says its leases are fresh; the database says otherwise
    applied = successor.drain()
    after = stalled.drain()

    assert successor.owned() == ALL
    assert (lost, after, stalled.processed) == (0, 0, 0)
    assert applied == len(events)
    assert {owner for (owner,) in state_rows(database, "SELECT owner FROM processing_log")} == {
        "successor"
    }
    assert_each_event_recorded_once(database, len(events))
    assert_no_overlapping_progress(database)


async def test_a_takeover_continues_from_the_last_committed_step(
    store: Store,
    workspace: Workspace,
    open_processor: OpenProcessor,
    database: Database,
) -> None:
    stalled_clock = Clock()
    stalled = open_processor("stalled", clock=stalled_clock, lease_s=LEASE_S, max_step_events=3)
    for number in range(10):
        await send(store, workspace, [an_event(f"anon-{number % 4}", f"event-{number}")])
    partly = stalled.step() + stalled.step()
    later_clock = Clock(START_S + LEASE_S + 1)
    successor = open_processor("successor", clock=later_clock, lease_s=LEASE_S)
    successor.refresh_leases()

    lost = stalled.step()
    rest = successor.drain()

    assert 0 < partly < 10
    assert lost == 0
    assert partly + rest == 10
    assert_each_event_recorded_once(database, 10)
    assert_no_overlapping_progress(database)


# -- order across processors -----------------------------------------------------------------


async def test_two_processors_alternating_keep_each_customers_events_in_commit_order(
    store: Store,
    workspace: Workspace,
    open_processor: OpenProcessor,
    clock: Clock,
    database: Database,
) -> None:
    first = open_processor("first", clock=clock, lease_s=LEASE_S, max_step_events=3)
    second = open_processor("second", clock=clock, lease_s=LEASE_S, max_step_events=3)
    balanced(first, second)
    customers = [f"anon-{number}" for number in range(8)]
    sent: dict[str, list[Event]] = {value: [] for value in customers}
    for round_number in range(12):
        batch = [
            set_attributes(value, step=round_number, by=value)
            if (round_number + index) % 2
            else an_event(value, f"event-{round_number}")
            for index, value in enumerate(customers)
        ]
        for event in batch:
            sent[str(event["correlationValue"])].append(event)
        await send(store, workspace, batch)
        first.step()
        clock.advance(1.0)
        second.step()
        if round_number == 6:  # `first` leaves mid-way; `second` takes over its partitions
            first.close()
            first = open_processor("third", clock=clock, lease_s=LEASE_S, max_step_events=3)

    while first.step() + second.step():
        clock.advance(1.0)

    found = {
        customer.identifiers[0]: customer for customer in await all_customers(store, workspace)
    }
    assert sorted(found) == sorted(customers)
    for value, events in sent.items():
        last_set = [event for event in events if event["event"] == "$set"][-1]
        assert found[value].attributes == last_set["payload"]
        assert uuids(await events_of(store, workspace, found[value].id)) == [
            uuid_of(event) for event in events
        ]
    assert_each_event_recorded_once(database, sum(len(events) for events in sent.values()))
    assert_no_overlapping_progress(database)
    assert {owner for (owner,) in state_rows(database, "SELECT owner FROM processing_log")} == {
        "first",
        "second",
        "third",
    }


async def test_a_request_split_over_partitions_is_applied_in_batch_order_by_one_processor(
    store: Store,
    workspace: Workspace,
    open_processor: OpenProcessor,
    clock: Clock,
) -> None:
    alone = open_processor("alone", clock=clock, lease_s=LEASE_S)
    assert partition_of(workspace.id, "u-1") != partition_of(workspace.id, "anon-2")
    batch = [
        an_event("anon-1", "first"),
        set_attributes("anon-2", user_id="u-1"),
        an_event("u-1", "third", key="user_id"),  # resolves through the $set just before it
        an_event("anon-1", "fourth"),
    ]
    await send(store, workspace, batch)

    alone.drain()

    one, two = await all_customers(store, workspace)
    assert uuids(await events_of(store, workspace, two.id)) == [
        uuid_of(batch[1]),
        uuid_of(batch[2]),
    ]
    assert [
        json.loads(event.event.raw)["event"] for event in await events_of(store, workspace, one.id)
    ] == ["first", "fourth"]


# -- who an anonymous id names, when another processor changed it ----------------------------


def value_in(workspace: Workspace, partitions: list[int], prefix: str) -> str:
    """A correlationValue whose partition is one of `partitions`."""
    return next(
        value
        for number in range(10_000)
        if partition_of(workspace.id, value := f"{prefix}-{number}") in partitions
    )


async def test_an_anonymous_id_merged_by_another_processor_resolves_to_the_merged_customer(
    store: Store,
    workspace: Workspace,
    open_processor: OpenProcessor,
    clock: Clock,
) -> None:
    first = open_processor("first", clock=clock, lease_s=LEASE_S)
    second = open_processor("second", clock=clock, lease_s=LEASE_S)
    balanced(first, second)
    device = value_in(workspace, first.owned(), "device")
    user_id = value_in(workspace, second.owned(), "user")
    [(target_id, _)] = await store.upsert_customers(workspace, [("ada@example.com", {})])
    await send(
        store, workspace, [an_event(device, "opened"), set_attributes(device, user_id=user_id)]
    )
    first.drain()
    # The backend identifies the customer by user_id: `second` owns that partition and merges
    # the device's anonymous customer into ada.
    by_user_id = an_event(
        user_id, "$identify", key="user_id", payload={"distinct_id": "ada@example.com"}
    )
    await send(store, workspace, [by_user_id])
    second.drain()
    after = an_event(device, "purchase")
    await send(store, workspace, [after])

    first.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.id == target_id
    assert customer.identifiers == [device]
    assert uuids(await events_of(store, workspace, target_id))[-1] == uuid_of(after)


async def test_an_anonymous_id_merged_while_its_processor_stalled_resolves_to_the_merged_customer(
    store: Store,
    workspace: Workspace,
    open_processor: OpenProcessor,
) -> None:
    stalled_clock = Clock()
    stalled = open_processor("stalled", clock=stalled_clock, lease_s=LEASE_S)
    [(target_id, _)] = await store.upsert_customers(workspace, [("ada@example.com", {})])
    await send(store, workspace, [an_event("device-1", "opened")])
    stalled.drain()
    # `stalled` pauses past its lease; `successor` takes over, merges device-1, then leaves.
    successor = open_processor("successor", clock=Clock(START_S + LEASE_S + 1), lease_s=LEASE_S)
    successor.refresh_leases()
    await send(store, workspace, [identify("device-1", "ada@example.com")])
    successor.drain()
    successor.close()
    after = set_attributes("device-1", plan="pro")
    await send(store, workspace, [after])

    stalled_clock.advance(LEASE_S + 2)  # it resumes: renews its leases, then steps
    stalled.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.id == target_id
    assert customer.attributes == {"email": "ada@example.com", "plan": "pro"}
    assert uuids(await events_of(store, workspace, target_id))[-1] == uuid_of(after)
