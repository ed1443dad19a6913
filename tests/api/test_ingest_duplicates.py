"""Idempotency: (workspace, uuid) is stored once, whatever the batch and whatever the case."""

from __future__ import annotations

import httpx

from tests.api.conftest import an_event
from tests.conftest import Keys, auth

BATCH = "/api/events/batch/"


async def test_a_uuid_repeated_within_a_batch_is_stored_once_and_reported_as_duplicate(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    first = an_event(event="first")
    again = {**first, "event": "again"}

    sent = await client.post(BATCH, json={"batch": [first, again]}, headers=auth(keys.write))

    assert sent.json() == {"accepted": 1, "duplicates": 1, "rejected": 0, "errors": []}
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert [event["event"] for event in listed.json()["events"]] == ["first"]


async def test_a_retried_batch_is_reported_as_duplicates_and_stored_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event(event=f"event-{number}") for number in range(3)]
    await client.post(BATCH, json={"batch": batch}, headers=auth(keys.write))

    retried = await client.post(BATCH, json={"batch": batch}, headers=auth(keys.write))

    assert retried.status_code == 201
    assert retried.json() == {"accepted": 0, "duplicates": 3, "rejected": 0, "errors": []}
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert len(listed.json()["events"]) == 3
    stats = await client.get("/api/stats", headers=auth(keys.admin))
    assert (stats.json()["accepted"], stats.json()["duplicates"]) == (3, 3)


async def test_a_retry_mixing_old_and_new_events_stores_only_the_new_ones(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    old = an_event(event="old")
    await client.post(BATCH, json={"batch": [old]}, headers=auth(keys.write))
    new = an_event(event="new")

    sent = await client.post(BATCH, json={"batch": [old, new]}, headers=auth(keys.write))

    assert sent.json() == {"accepted": 1, "duplicates": 1, "rejected": 0, "errors": []}
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert [event["event"] for event in listed.json()["events"]] == ["new", "old"]


async def test_uppercase_and_lowercase_forms_of_a_uuid_are_the_same_event(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    upper = an_event(uuid="F451DF0A-D713-4076-AE20-41AB1641BC98", event="upper")
    lower = an_event(uuid="f451df0a-d713-4076-ae20-41ab1641bc98", event="lower")
    await client.post(BATCH, json={"batch": [upper]}, headers=auth(keys.write))

    sent = await client.post(BATCH, json={"batch": [lower]}, headers=auth(keys.write))

    assert sent.json()["duplicates"] == 1
    for form in (upper["uuid"], lower["uuid"]):
        read = await client.get(f"/api/events/{form}", headers=auth(keys.admin))
        assert read.json()["event"] == "upper"
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert len(listed.json()["events"]) == 1


async def test_both_cases_of_a_uuid_in_one_batch_store_one_event(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    upper = an_event(uuid="A97E8A44-AAB0-45C6-B68D-3CAD9A0ED0DD")
    lower = an_event(uuid="a97e8a44-aab0-45c6-b68d-3cad9a0ed0dd")

    sent = await client.post(BATCH, json={"batch": [upper, lower]}, headers=auth(keys.write))

    assert sent.json() == {"accepted": 1, "duplicates": 1, "rejected": 0, "errors": []}


async def test_a_duplicate_sent_through_the_single_event_route_is_reported(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    event = an_event()
    await client.post(BATCH, json={"batch": [event]}, headers=auth(keys.write))

    sent = await client.post("/api/events/", json=event, headers=auth(keys.write))

    assert sent.json() == {"accepted": 0, "duplicates": 1, "rejected": 0, "errors": []}
