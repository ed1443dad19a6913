"""Processing the log into customers (DESIGN §3, §6, §7): what a user then reads back."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import msgspec
import pytest

from herald.core.conditions import Condition, Op
from herald.core.events import check_batch, decode_envelope, partition_of
from herald.core.schema import MAX_KEY_CHARS
from herald.errors import Conflict, NotFound
from herald.processor.loop import Processor
from herald.store.base import Store, Workspace
from herald.store.sqlitedb import state_path
from tests.conftest import Keys, auth
from tests.processor.conftest import (
    LIMITS,
    Clock,
    Database,
    all_customers,
    an_event,
    copy_database,
    events_of,
    identify,
    seed_example,
    send,
    set_attributes,
    state_rows,
    state_snapshot,
    uuid_of,
    uuids,
)

SEED_ANONYMOUS_ID = "FBBBCB26-B75E-4342-B40B-568BF879F7C5"
SEED_EMAIL = "example@youremail.com"


# -- the seeds -----------------------------------------------------------------------------


async def test_the_seed_batch_of_five_events_makes_one_customer_holding_them_in_order(
    client: httpx.AsyncClient,
    keys: Keys,
    store: Store,
    workspace: Workspace,
    processor: Processor,
) -> None:
    example = seed_example("events-batch-guide", 1)
    sent = await client.post("/api/events/batch/", content=example, headers=auth(keys.write))
    assert sent.status_code == 201, sent.text

    applied = processor.drain()

    [customer] = await all_customers(store, workspace)
    events = await events_of(store, workspace, customer.id)
    batch = json.loads(example)["batch"]
    assert applied == 5
    assert customer.identifiers == [SEED_ANONYMOUS_ID]
    assert customer.attributes == {}
    assert uuids(events) == [uuid_of(event) for event in batch]
    assert [event.outcome for event in events] == ["created"] + ["attributed"] * 4
    assert [json.loads(event.event.raw)["payload"] for event in events] == [
        event["payload"] for event in batch
    ]


async def test_identify_then_trigger_lands_on_the_customer_upserted_with_that_primary_key(
    client: httpx.AsyncClient,
    keys: Keys,
    store: Store,
    workspace: Workspace,
    processor: Processor,
) -> None:
    [(upserted_id, created)] = await store.upsert_customers(
        workspace, [(SEED_EMAIL, {"name": "Example"})]
    )
    example = seed_example("events-batch-api-reference", 2)
    sent = await client.post("/api/events/batch/", content=example, headers=auth(keys.write))
    assert sent.status_code == 201, sent.text

    processor.drain()

    [customer] = await all_customers(store, workspace)
    events = await events_of(store, workspace, customer.id)
    assert created
    assert customer.id == upserted_id
    assert customer.attributes == {"email": SEED_EMAIL, "name": "Example"}
    assert customer.identifiers == [SEED_ANONYMOUS_ID]
    assert [json.loads(event.event.raw)["event"] for event in events] == [
        "$identify",
        "trigger_some_message",
    ]
    assert [event.outcome for event in events] == ["merged", "attributed"]
    assert (await store.find_customer(workspace, SEED_EMAIL)).id == upserted_id


async def test_identify_then_trigger_without_a_known_customer_makes_one_identified_customer(
    client: httpx.AsyncClient,
    keys: Keys,
    store: Store,
    workspace: Workspace,
    processor: Processor,
) -> None:
    example = seed_example("events-batch-api-reference", 2)
    sent = await client.post("/api/events/batch/", content=example, headers=auth(keys.write))
    assert sent.status_code == 201, sent.text

    processor.drain()

    [customer] = await all_customers(store, workspace)
    events = await events_of(store, workspace, customer.id)
    assert customer.attributes == {"email": SEED_EMAIL}
    assert customer.identifiers == [SEED_ANONYMOUS_ID]
    assert [event.outcome for event in events] == ["identified", "attributed"]
    assert (await store.find_customer(workspace, SEED_EMAIL)).id == customer.id


# -- $set ----------------------------------------------------------------------------------


@pytest.mark.parametrize("split", [False, True], ids=["one-batch", "two-batches"])
async def test_the_last_set_of_an_attribute_wins(
    store: Store, workspace: Workspace, processor: Processor, split: bool
) -> None:
    first = set_attributes("anon-1", plan="free", city="Lyon")
    second = set_attributes("anon-1", plan="pro")
    if split:
        await send(store, workspace, [first])
        processor.drain()
        await send(store, workspace, [second])
    else:
        await send(store, workspace, [first, second])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.attributes == {"plan": "pro", "city": "Lyon"}


async def test_setting_an_attribute_to_null_removes_it(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(
        store,
        workspace,
        [set_attributes("anon-1", plan="pro", city="Lyon"), set_attributes("anon-1", city=None)],
    )

    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.attributes == {"plan": "pro"}


async def test_setting_true_after_one_ends_with_true(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(
        store,
        workspace,
        [set_attributes("anon-1", vip=1, opted_in=0), set_attributes("anon-1", vip=True)],
    )
    await send(store, workspace, [set_attributes("anon-1", opted_in=False)])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    # Compared as JSON: in Python, {"vip": 1} == {"vip": True}.
    assert json.dumps(customer.attributes) == '{"vip": true, "opted_in": false}'


# -- correlation by attribute --------------------------------------------------------------


@pytest.mark.parametrize(("key", "value"), [("email", "ada@example.com"), ("user_id", "u-1001")])
async def test_an_attribute_correlation_key_creates_then_finds_the_customer_by_that_attribute(
    store: Store, workspace: Workspace, processor: Processor, key: str, value: str
) -> None:
    first = an_event(value, "signed_up", key=key)
    second = set_attributes(value, key=key, plan="pro")
    await send(store, workspace, [first])
    processor.drain()
    await send(store, workspace, [second])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.attributes == {key: value, "plan": "pro"}
    assert customer.identifiers == []
    assert uuids(await events_of(store, workspace, customer.id)) == [
        uuid_of(first),
        uuid_of(second),
    ]


async def test_an_attribute_set_on_an_anonymous_customer_resolves_later_events(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(store, workspace, [set_attributes("anon-1", user_id="u-7")])
    processor.drain()
    later = an_event("u-7", "checkout", key="user_id")
    await send(store, workspace, [later])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.identifiers == ["anon-1"]
    assert uuid_of(later) in uuids(await events_of(store, workspace, customer.id))


async def test_an_event_correlated_by_primary_key_lands_on_the_upserted_customer(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    [(upserted_id, _)] = await store.upsert_customers(workspace, [("ada@example.com", {})])
    await send(store, workspace, [an_event("ada@example.com", key="email")])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.id == upserted_id
    assert [event.outcome for event in await events_of(store, workspace, upserted_id)] == [
        "attributed"
    ]


async def test_an_event_naming_a_herald_customer_id_lands_on_that_customer(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    [(customer_id, _)] = await store.upsert_customers(workspace, [("ada@example.com", {})])
    await send(store, workspace, [an_event(customer_id, "purchase")])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.id == customer_id
    assert len(await events_of(store, workspace, customer_id)) == 1


async def test_an_anonymous_id_too_long_to_name_a_customer_is_refused_at_ingestion(
    workspace: Workspace,
) -> None:
    long_id = "device-" + "x" * MAX_KEY_CHARS
    body = msgspec.json.encode({"batch": [an_event(long_id), an_event("device-1")]})

    checked = check_batch(
        decode_envelope(body),
        workspace_id=workspace.id,
        schema=workspace.schema,
        limits=LIMITS,
        new_id=lambda: uuid4().bytes,
    )

    assert len(checked.accepted) == 1
    [rejected] = checked.rejected
    [error] = rejected.errors
    assert error.field == "correlationValue"
    assert f"at most {MAX_KEY_CHARS} characters" in error.message


# -- merges and conflicts ------------------------------------------------------------------


async def test_identify_merges_an_anonymous_profile_into_the_identified_customer(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    [(target_id, _)] = await store.upsert_customers(
        workspace, [("ada@example.com", {"plan": "pro"})]
    )
    known = [identify("phone-1", "ada@example.com"), an_event("phone-1", "opened_app")]
    anonymous = [
        an_event("laptop-1", "viewed"),
        set_attributes("laptop-1", plan="free", city="Lyon"),
    ]
    await send(store, workspace, known + anonymous)
    processor.drain()
    [anonymous_id] = [
        customer.id
        for customer in await all_customers(store, workspace)
        if customer.identifiers == ["laptop-1"]
    ]
    merge = identify("laptop-1", "ada@example.com")
    await send(store, workspace, [merge])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    events = await events_of(store, workspace, customer.id)
    assert customer.id == target_id
    assert customer.identifiers == ["laptop-1", "phone-1"]
    assert customer.attributes == {"email": "ada@example.com", "plan": "pro", "city": "Lyon"}
    assert uuids(events) == [uuid_of(event) for event in known + anonymous + [merge]]
    assert events[-1].outcome == "merged"
    assert (await store.get_customer(workspace.id, anonymous_id)).id == target_id
    assert uuids(await events_of(store, workspace, anonymous_id)) == uuids(events)


async def test_the_merged_anonymous_id_keeps_resolving_to_the_merged_customer(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await store.upsert_customers(workspace, [("ada@example.com", {})])
    await send(store, workspace, [an_event("laptop-1"), identify("laptop-1", "ada@example.com")])
    processor.drain()
    later = [an_event("laptop-1", "purchase"), set_attributes("laptop-1", plan="pro")]
    await send(store, workspace, later)

    processor.drain()

    [customer] = await all_customers(store, workspace)
    events = await events_of(store, workspace, customer.id)
    assert customer.attributes == {"email": "ada@example.com", "plan": "pro"}
    assert uuids(events)[-2:] == [uuid_of(event) for event in later]
    assert [event.outcome for event in events[-2:]] == ["attributed", "attributed"]


async def test_identify_through_an_attribute_key_merges_and_the_device_id_follows(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    [(target_id, _)] = await store.upsert_customers(workspace, [("ada@example.com", {})])
    await send(store, workspace, [an_event("device-1"), set_attributes("device-1", user_id="u-1")])
    processor.drain()
    await send(
        store,
        workspace,
        [an_event("u-1", "$identify", key="user_id", payload={"distinct_id": "ada@example.com"})],
    )
    processor.drain()
    after = set_attributes("device-1", plan="pro")
    await send(store, workspace, [after])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.id == target_id
    assert customer.identifiers == ["device-1"]
    assert customer.attributes == {"email": "ada@example.com", "user_id": "u-1", "plan": "pro"}
    assert uuids(await events_of(store, workspace, target_id))[-1] == uuid_of(after)


async def test_two_identified_customers_are_never_merged_and_the_event_says_why(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(
        store,
        workspace,
        [identify("phone-1", "ada@example.com"), identify("laptop-1", "bob@example.com")],
    )
    processor.drain()
    clash = identify("phone-1", "bob@example.com")
    await send(store, workspace, [clash])

    processor.drain()

    ada, bob = await all_customers(store, workspace)
    events = await events_of(store, workspace, ada.id)
    assert (ada.attributes, ada.identifiers) == ({"email": "ada@example.com"}, ["phone-1"])
    assert (bob.attributes, bob.identifiers) == ({"email": "bob@example.com"}, ["laptop-1"])
    assert events[-1].event.uuid == uuid_of(clash)
    assert events[-1].outcome == "conflict"
    assert events[-1].detail is not None
    assert "ada@example.com" in events[-1].detail and "bob@example.com" in events[-1].detail


async def test_identifying_an_identified_customer_as_someone_new_is_a_conflict(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(store, workspace, [identify("phone-1", "ada@example.com")])
    processor.drain()
    await send(store, workspace, [identify("phone-1", "ada@work.example.com")])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    events = await events_of(store, workspace, customer.id)
    assert customer.attributes == {"email": "ada@example.com"}
    assert events[-1].outcome == "conflict"
    assert events[-1].detail is not None and "ada@example.com" in events[-1].detail
    with pytest.raises(NotFound):
        await store.find_customer(workspace, "ada@work.example.com")


# -- push tokens and message status --------------------------------------------------------


async def test_fcm_push_tokens_are_kept_as_customer_attributes(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(
        store,
        workspace,
        [
            {**an_event("phone-1", "app_open"), "$fcm": {"androidDeviceToken": "token-1"}},
            {**an_event("phone-1", "app_open"), "$fcm": {"iosDeviceToken": "token-2"}},
            {**an_event("phone-1", "app_open"), "$fcm": {"androidDeviceToken": "token-3"}},
        ],
    )

    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert customer.attributes == {"androidDeviceToken": "token-3", "iosDeviceToken": "token-2"}


async def test_message_status_events_are_recorded_against_their_message(
    store: Store, workspace: Workspace, processor: Processor, database: Database
) -> None:
    delivered = an_event("phone-1", "$delivered", source="message", payload={"messageId": "m-1"})
    opened = an_event("phone-1", "$opened", source="message", payload={"message_id": "m-1"})
    not_about_a_message = [
        an_event("phone-1", "$delivered", payload={"messageId": "m-2"}),  # source custom
        an_event("phone-1", "$opened", source="message"),  # no message id
    ]
    await send(store, workspace, [delivered, opened, *not_about_a_message])

    processor.drain()

    [customer] = await all_customers(store, workspace)
    recorded = state_rows(
        database,
        "SELECT m.workspace_id, m.message_id, m.status, c.uuid FROM message_events m"
        " JOIN customers c ON c.id = m.customer_id ORDER BY m.event_id",
    )
    assert recorded == [
        (workspace.id, "m-1", "delivered", UUID(customer.id).bytes),
        (workspace.id, "m-1", "opened", UUID(customer.id).bytes),
    ]
    assert len(await events_of(store, workspace, customer.id)) == 4


# -- workspaces ----------------------------------------------------------------------------


async def test_the_same_correlation_value_in_two_workspaces_makes_two_customers(
    store: Store, workspace: Workspace, other_workspace: Workspace, processor: Processor
) -> None:
    await send(store, workspace, [set_attributes("anon-1", plan="pro")])
    await send(store, other_workspace, [set_attributes("anon-1", plan="free")])

    processor.drain()

    [mine] = await all_customers(store, workspace)
    [theirs] = await all_customers(store, other_workspace)
    assert mine.id != theirs.id
    assert (mine.attributes, theirs.attributes) == ({"plan": "pro"}, {"plan": "free"})
    with pytest.raises(NotFound):
        await store.get_customer(workspace.id, theirs.id)
    with pytest.raises(NotFound):
        await store.customer_events(workspace.id, theirs.id, cursor=None, limit=10)


async def test_identify_never_merges_across_workspaces(
    store: Store, workspace: Workspace, other_workspace: Workspace, processor: Processor
) -> None:
    await store.upsert_customers(other_workspace, [("ada@example.com", {"plan": "other"})])
    await send(store, workspace, [identify("phone-1", "ada@example.com")])

    processor.drain()

    [mine] = await all_customers(store, workspace)
    [theirs] = await all_customers(store, other_workspace)
    assert (mine.attributes, mine.identifiers) == ({"email": "ada@example.com"}, ["phone-1"])
    assert (theirs.attributes, theirs.identifiers) == (
        {"email": "ada@example.com", "plan": "other"},
        [],
    )


# -- order ---------------------------------------------------------------------------------


async def test_a_customers_events_are_listed_in_commit_order_across_batches_and_customers(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    first = [an_event("anon-1", "a"), an_event("anon-2", "b"), an_event("anon-1", "c")]
    second = [an_event("anon-2", "d"), an_event("anon-1", "e")]
    await send(store, workspace, first)
    await send(store, workspace, second)

    processor.drain()

    one, two = await all_customers(store, workspace)
    assert one.identifiers == ["anon-1"]
    assert uuids(await events_of(store, workspace, one.id)) == [
        uuid_of(event) for event in (first[0], first[2], second[1])
    ]
    assert uuids(await events_of(store, workspace, two.id)) == [
        uuid_of(event) for event in (first[1], second[0])
    ]


async def test_small_steps_over_a_busy_partition_still_apply_events_in_commit_order(
    store: Store, workspace: Workspace, database: Database, clock: Clock
) -> None:
    # anon-2's partition gets many requests before the $set, so a step reads only part of it;
    # the event correlated by user_id (another partition) must still wait for that $set.
    assert partition_of(workspace.id, "anon-2") != partition_of(workspace.id, "u-1")
    for number in range(40):
        await send(store, workspace, [an_event("anon-2", f"visit-{number}")])
    await send(store, workspace, [set_attributes("anon-2", user_id="u-1")])
    await send(store, workspace, [an_event("u-1", "paid", key="user_id")])
    processor = Processor(database, clock=clock, max_step_events=3)
    processor.open()

    steps = 0
    while processor.step():
        steps += 1
    processor.close()

    [customer] = await all_customers(store, workspace)
    events = await events_of(store, workspace, customer.id)
    assert steps > 2
    assert customer.attributes == {"user_id": "u-1"}
    assert [json.loads(event.event.raw)["event"] for event in events[-2:]] == ["$set", "paid"]


async def test_customer_events_come_in_pages_that_continue_in_order(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    batch = [an_event("anon-1", f"event-{number}") for number in range(7)]
    await send(store, workspace, batch)
    processor.drain()
    [customer] = await all_customers(store, workspace)

    first = await store.customer_events(workspace.id, customer.id, cursor=None, limit=3)
    second = await store.customer_events(
        workspace.id, customer.id, cursor=first.next_cursor, limit=3
    )
    third = await store.customer_events(
        workspace.id, customer.id, cursor=second.next_cursor, limit=3
    )

    pages = [first, second, third]
    assert [uuids(page.events) for page in pages] == [
        [uuid_of(event) for event in batch[start : start + 3]] for start in (0, 3, 6)
    ]
    assert third.next_cursor is None


# -- the customers API's queries over processed customers ----------------------------------


async def test_search_finds_processed_customers_by_attribute(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(
        store,
        workspace,
        [
            set_attributes("anon-1", plan="pro", seats=3),
            set_attributes("anon-2", plan="free", seats=1),
            set_attributes("anon-3", plan="pro", seats=12),
        ],
    )
    processor.drain()

    page = await store.search_customers(
        workspace.id,
        [Condition("plan", Op.EQ, "pro"), Condition("seats", Op.GT, 5)],
        cursor=None,
        limit=10,
    )

    assert [customer.identifiers for customer in page.customers] == [["anon-3"]]


async def test_check_unique_refuses_an_attribute_two_customers_share(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(
        store,
        workspace,
        [
            set_attributes("anon-1", phone="+33 1", handle="ada"),
            set_attributes("anon-2", phone="+33 1", handle="bob"),
        ],
    )
    processor.drain()

    await store.check_unique(workspace.id, "handle")
    with pytest.raises(Conflict, match=r"phone = '\+33 1'"):
        await store.check_unique(workspace.id, "phone")


async def test_a_deleted_customer_is_gone_and_its_anonymous_id_starts_afresh(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(store, workspace, [identify("phone-1", "ada@example.com"), an_event("phone-1")])
    processor.drain()
    [customer] = await all_customers(store, workspace)

    deleted_id = await store.delete_customer(workspace, "ada@example.com")
    await send(store, workspace, [an_event("phone-1", "came_back")])
    processor.drain()

    [newcomer] = await all_customers(store, workspace)
    assert deleted_id == customer.id
    with pytest.raises(NotFound):
        await store.find_customer(workspace, "ada@example.com")
    assert newcomer.identifiers == ["phone-1"]
    assert newcomer.attributes == {}
    assert [event.outcome for event in await events_of(store, workspace, newcomer.id)] == [
        "created"
    ]


async def test_processing_status_shows_every_partition_caught_up(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    await send(store, workspace, [an_event(f"anon-{number}") for number in range(40)])

    before = await store.processing_status()
    processor.drain()
    after = await store.processing_status()

    assert sum(partition.behind_events for partition in before) == 40
    assert sum(partition.behind_events for partition in after) == 0
    assert sum(partition.processed for partition in after) == 40
    assert [partition.checkpoint_seq > 0 for partition in after] == [
        partition.behind_events > 0 for partition in before
    ]


# -- at-least-once, applied once -----------------------------------------------------------


async def test_draining_again_changes_nothing(
    store: Store, workspace: Workspace, processor: Processor, database: Database
) -> None:
    await send(
        store,
        workspace,
        [an_event("anon-1"), identify("anon-1", "ada@example.com"), set_attributes("anon-2", a=1)],
    )
    processor.drain()
    before = state_snapshot(database)

    again = processor.drain()

    assert again == 0
    assert state_snapshot(database) == before


async def test_a_retried_batch_is_not_processed_twice(
    store: Store, workspace: Workspace, processor: Processor
) -> None:
    batch = [an_event("anon-1"), set_attributes("anon-1", visits=1)]
    await send(store, workspace, batch)
    processor.drain()

    retried = await send(store, workspace, batch)
    processor.drain()

    [customer] = await all_customers(store, workspace)
    assert retried.duplicates == 2
    assert uuids(await events_of(store, workspace, customer.id)) == [
        uuid_of(event) for event in batch
    ]


async def test_a_second_processor_continues_where_the_first_stopped_without_duplicates(
    store: Store, workspace: Workspace, database: Database, clock: Clock
) -> None:
    batches = [
        [an_event(f"anon-{number % 5}"), set_attributes(f"anon-{number % 5}", last=number)]
        for number in range(12)
    ]
    for batch in batches:
        await send(store, workspace, batch)
    first = Processor(database, clock=clock, name="first", max_step_events=4)
    first.open()
    partly = first.step()
    first.close()

    second = Processor(database, clock=clock, name="second")
    second.open()
    rest = second.drain()
    second.close()

    customers = await all_customers(store, workspace)
    (records,) = state_rows(database, "SELECT count(*), count(DISTINCT id) FROM event_records")
    assert 0 < partly < 24
    assert partly + rest == 24
    assert records == (24, 24)
    assert len(customers) == 5
    assert sorted(customer.attributes["last"] for customer in customers) == [7, 8, 9, 10, 11]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # copies the state file
async def test_reprocessing_from_a_saved_state_gives_the_same_customers(
    store: Store, workspace: Workspace, database: Database, clock: Clock, tmp_path: Path
) -> None:
    assert isinstance(database, Path)
    await store.upsert_customers(workspace, [("ada@example.com", {"plan": "pro"})])
    await send(
        store,
        workspace,
        [
            an_event("laptop-1"),
            set_attributes("laptop-1", city="Lyon"),
            identify("laptop-1", "ada@example.com"),
            identify("phone-1", "bob@example.com"),
            an_event("bob@example.com", "purchase", key="email"),
            an_event("phone-1", "$opened", source="message", payload={"messageId": "m-1"}),
        ],
    )
    saved = tmp_path / "saved.state"
    copy_database(state_path(database), saved)
    processor = Processor(database, clock=clock, name="before-the-crash")
    processor.open()
    processor.drain()
    processor.close()
    processed = state_snapshot(database)

    copy_database(saved, state_path(database))  # the crash: every commit since is lost
    again = Processor(database, clock=clock, name="after-the-restart")
    again.open()
    applied = again.drain()
    again.close()

    assert applied == 6
    assert state_snapshot(database) == processed
