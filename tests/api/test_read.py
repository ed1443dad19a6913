"""Reading events back: GET /api/events (filters, pages) and GET /api/events/{uuid}."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import Event, an_event, without
from tests.conftest import Keys, auth

BATCH = "/api/events/batch/"


async def send(client: httpx.AsyncClient, keys: Keys, *events: Event) -> None:
    sent = await client.post(BATCH, json={"batch": list(events)}, headers=auth(keys.write))
    assert sent.status_code == 201, sent.text
    assert sent.json()["accepted"] == len(events)


async def list_events(client: httpx.AsyncClient, keys: Keys, **params: Any) -> list[Event]:
    listed = await client.get("/api/events", params=params, headers=auth(keys.admin))
    assert listed.status_code == 200, listed.text
    events: list[Event] = listed.json()["events"]
    return events


async def test_events_are_listed_newest_first(client: httpx.AsyncClient, keys: Keys) -> None:
    for name in ("first", "second", "third"):
        await send(client, keys, an_event(event=name))

    events = await list_events(client, keys)

    assert [event["event"] for event in events] == ["third", "second", "first"]


async def test_a_customers_events_of_one_batch_are_listed_in_reverse_batch_order(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event(event=f"step-{number}", correlationValue="ada") for number in range(5)]
    await send(client, keys, *batch)

    events = await list_events(client, keys, correlationValue="ada")

    assert [event["event"] for event in events] == [f"step-{n}" for n in (4, 3, 2, 1, 0)]


async def test_the_events_of_one_batch_for_several_customers_are_listed_newest_first(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [
        an_event(event=f"step-{number}", correlationValue=f"customer-{number % 3}")
        for number in range(6)
    ]
    await send(client, keys, *batch)

    events = await list_events(client, keys)

    assert [event["event"] for event in events] == [f"step-{n}" for n in (5, 4, 3, 2, 1, 0)]


async def test_the_correlation_value_filter_lists_one_customers_events(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await send(
        client,
        keys,
        *[an_event(event=f"ada-{n}", correlationValue="ada") for n in range(3)],
        *[an_event(event=f"bob-{n}", correlationValue="bob") for n in range(3)],
    )

    events = await list_events(client, keys, correlationValue="ada")

    assert [event["event"] for event in events] == ["ada-2", "ada-1", "ada-0"]


async def test_the_event_filter_lists_one_event_name(client: httpx.AsyncClient, keys: Keys) -> None:
    await send(
        client,
        keys,
        an_event(event="purchase", correlationValue="ada"),
        an_event(event="signup", correlationValue="bob"),
        an_event(event="purchase", correlationValue="cy"),
    )

    events = await list_events(client, keys, event="purchase")

    assert sorted(event["correlationValue"] for event in events) == ["ada", "cy"]


async def test_filters_combine(client: httpx.AsyncClient, keys: Keys) -> None:
    await send(
        client,
        keys,
        an_event(event="purchase", correlationValue="ada", timestamp="2024-03-15T10:00:00Z"),
        an_event(event="purchase", correlationValue="ada", timestamp="2024-03-16T10:00:00Z"),
        an_event(event="signup", correlationValue="ada", timestamp="2024-03-16T10:00:00Z"),
        an_event(event="purchase", correlationValue="bob", timestamp="2024-03-16T10:00:00Z"),
    )

    events = await list_events(
        client, keys, correlationValue="ada", event="purchase", **{"from": "2024-03-16T00:00:00Z"}
    )

    assert [event["timestamp"] for event in events] == ["2024-03-16T10:00:00Z"]


TIMESTAMPS = {
    "ten": "2024-03-15T10:00:00Z",
    "eleven": "2024-03-15T13:00:00+02:00",
    "noon": "2024-03-15T12:00:00.000Z",
    "android": "Mar 15, 2024 1:00:00 PM",
}


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"from": "2024-03-15T11:00:00Z"}, {"eleven", "noon", "android"}),
        ({"to": "2024-03-15T12:00:00Z"}, {"ten", "eleven"}),
        ({"from": "2024-03-15T10:30:00Z", "to": "2024-03-15T12:00:00.001Z"}, {"eleven", "noon"}),
        ({"from": "2024-03-15T11:00:00+01:00", "to": "2024-03-15T12:00:00+01:00"}, {"ten"}),
        ({"from": "2024-03-16T00:00:00Z"}, set()),
    ],
    ids=["from is inclusive", "to is exclusive", "a window", "offsets", "empty"],
)
async def test_from_and_to_select_events_by_their_time_in_any_offset(
    client: httpx.AsyncClient, keys: Keys, window: dict[str, str], expected: set[str]
) -> None:
    await send(
        client, keys, *[an_event(event=name, timestamp=at) for name, at in TIMESTAMPS.items()]
    )

    events = await list_events(client, keys, **window)

    assert {event["event"] for event in events} == expected


async def test_an_event_without_timestamp_is_filtered_by_when_herald_received_it(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await send(client, keys, without(an_event(event="untimed"), "timestamp"))

    since_2000 = await list_events(client, keys, **{"from": "2000-01-01T00:00:00Z"})
    before_2000 = await list_events(client, keys, to="2000-01-01T00:00:00Z")

    assert [event["event"] for event in since_2000] == ["untimed"]
    assert before_2000 == []


async def walk(client: httpx.AsyncClient, keys: Keys, **params: Any) -> list[list[Event]]:
    """Every page of a listing, following next_cursor until it is null."""
    pages: list[list[Event]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/api/events", params=query, headers=auth(keys.admin))
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["events"])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "next_cursor never ends"


async def test_following_next_cursor_walks_every_event_exactly_once_newest_first(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    sent: list[str] = []
    for request in range(4):
        batch = [
            an_event(event=f"r{request}-e{n}", correlationValue=f"customer-{n}") for n in range(5)
        ]
        await send(client, keys, *batch)
        sent.extend(event["uuid"] for event in batch)

    pages = await walk(client, keys, limit=3)

    walked = [event["uuid"] for page in pages for event in page]
    assert sorted(walked) == sorted(sent)
    assert all(len(page) <= 3 for page in pages)
    requests_in_order = [int(event["event"][1]) for page in pages for event in page]
    assert requests_in_order == sorted(requests_in_order, reverse=True)


async def test_paging_a_filtered_listing_walks_only_matching_events_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for request in range(5):
        await send(
            client,
            keys,
            an_event(event=f"ada-{request}", correlationValue="ada"),
            an_event(event=f"bob-{request}", correlationValue="bob"),
        )

    pages = await walk(client, keys, limit=2, correlationValue="ada")

    walked = [event["event"] for page in pages for event in page]
    assert walked == [f"ada-{n}" for n in (4, 3, 2, 1, 0)]


async def test_the_cursor_of_an_event_continues_the_listing_after_it(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for name in ("first", "second", "third"):
        await send(client, keys, an_event(event=name))
    newest = (await list_events(client, keys))[0]

    after = await list_events(client, keys, cursor=newest["cursor"])

    assert [event["event"] for event in after] == ["second", "first"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "12"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2024-13-45"}, "to"),
    ],
)
async def test_a_bad_listing_parameter_gets_400_naming_it(
    client: httpx.AsyncClient, keys: Keys, params: dict[str, str], field: str
) -> None:
    answer = await client.get("/api/events", params=params, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["field"] == field
    assert field in answer.json()["message"]


async def test_a_limit_of_1000_is_allowed(client: httpx.AsyncClient, keys: Keys) -> None:
    await send(client, keys, an_event())

    events = await list_events(client, keys, limit="1000")

    assert len(events) == 1


async def test_an_event_is_read_back_by_uuid_with_its_fields_as_sent(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    event = an_event(
        uuid="F451DF0A-D713-4076-AE20-41AB1641BC98",
        timestamp="2024-03-15T02:31:05.295Z",
        payload={"cart": True, "total": 12.5, "items": ["a", "b"]},
        context={"app": {"version": "1.2"}},
    )
    await client.post(
        BATCH,
        json={"batch": [event], "sent_at": "2024-03-15T02:31:06Z"},
        headers=auth(keys.write),
    )

    read = await client.get(f"/api/events/{event['uuid']}", headers=auth(keys.admin))

    assert read.status_code == 200
    body = read.json()
    assert body["uuid"] == "f451df0a-d713-4076-ae20-41ab1641bc98"
    for field in ("event", "correlationKey", "correlationValue", "source", "timestamp"):
        assert body[field] == event[field]
    assert body["payload"] == event["payload"]
    assert body["context"] == event["context"]
    assert body["sentAt"] == "2024-03-15T02:31:06Z"
    assert body["receivedAt"].endswith("Z")
    assert body["cursor"]


async def test_the_listing_and_the_single_read_show_the_same_event(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    event = without(an_event(payload={"n": 1}), "uuid")
    await send(client, keys, event)

    (listed,) = await list_events(client, keys)
    read = await client.get(f"/api/events/{listed['uuid']}", headers=auth(keys.admin))

    assert read.json() == {**listed, "processing": {"outcome": "pending"}}


@pytest.mark.parametrize(
    "uuid", ["9b2f5a52-6a39-4d0e-9e51-1a1b2c3d4e5f", "not-a-uuid", "batch", "12345"]
)
async def test_an_unknown_event_is_404(client: httpx.AsyncClient, keys: Keys, uuid: str) -> None:
    await send(client, keys, an_event())

    read = await client.get(f"/api/events/{uuid}", headers=auth(keys.admin))

    assert read.status_code == 404
    assert read.json()["error"] == "not_found"
    assert "/api/events" in read.json()["message"] or "UUID" in read.json()["message"]


@pytest.mark.parametrize("sent_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_a_sent_at_beyond_the_utc_calendar_is_refused_and_the_listing_still_works(
    client: httpx.AsyncClient, keys: Keys, sent_at: str
) -> None:
    await send(client, keys, an_event(event="before"))

    sent = await client.post(
        BATCH, json={"batch": [an_event()], "sent_at": sent_at}, headers=auth(keys.write)
    )
    listed = await client.get("/api/events", headers=auth(keys.admin))

    assert sent.status_code == 400
    assert sent.json()["field"] == "sent_at"
    assert listed.status_code == 200
    assert [event["event"] for event in listed.json()["events"]] == ["before"]
