"""Journey enrollments when `$identify` merges an anonymous customer into a known one (DESIGN §3:
the known customer's enrollments win where both are inside the same journey)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from herald.store.base import Store
from tests.api.conftest import drain
from tests.conftest import Keys, auth

KNOWN = "ada@example.com"

# signup enters; the customer then waits up to a day for a purchase, which sends a webhook.
NURTURE = {
    "name": "nurture",
    "trigger": {"event": "signup"},
    "entry": "every_time",
    "start": "wait",
    "steps": {
        "wait": {
            "type": "wait_for_event",
            "event": "purchase",
            "timeout": "1d",
            "next": "thanks",
            "timeout_next": "done",
        },
        "thanks": {"type": "webhook", "url": "http://127.0.0.1:9/thanks", "body": "{}"},
        "done": {"type": "exit"},
    },
}


def event(name: str, value: str, **payload: Any) -> dict[str, Any]:
    return {
        "event": name,
        "source": "custom",
        "correlationKey": "_id",
        "correlationValue": value,
        "payload": payload,
    }


async def send(client: httpx.AsyncClient, keys: Keys, store: Store, *events: Any) -> None:
    """Ingest `events` in one batch and process them."""
    answer = await client.post(
        "/api/events/batch/", json={"batch": list(events)}, headers=auth(keys.write)
    )
    assert answer.status_code == 201, answer.text
    drain(store)


async def journeys_of(client: httpx.AsyncClient, keys: Keys, primary_key: str) -> list[Any]:
    found = await client.post(
        "/api/customers/read", json={"primary_key": primary_key}, headers=auth(keys.admin)
    )
    assert found.status_code == 200, found.text
    answer = await client.get(
        f"/api/customers/{found.json()['id']}/journeys", headers=auth(keys.admin)
    )
    assert answer.status_code == 200, answer.text
    enrollments: list[Any] = answer.json()["enrollments"]
    return enrollments


async def messages(client: httpx.AsyncClient, keys: Keys) -> list[Any]:
    answer = await client.get("/api/messages", headers=auth(keys.admin))
    assert answer.status_code == 200, answer.text
    listed: list[Any] = answer.json()["messages"]
    return listed


@pytest.fixture(autouse=True)
async def nurture(client: httpx.AsyncClient, keys: Keys) -> None:
    created = await client.post("/api/journeys", json=NURTURE, headers=auth(keys.admin))
    assert created.status_code == 201, created.text


async def test_when_both_are_inside_the_known_customers_enrollment_wins(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    await send(
        client,
        keys,
        store,
        event("$identify", "known-device", distinct_id=KNOWN),
        event("signup", "known-device"),
        event("signup", "anonymous-device"),
    )

    await send(client, keys, store, event("$identify", "anonymous-device", distinct_id=KNOWN))
    after_merge = await journeys_of(client, keys, KNOWN)
    await send(client, keys, store, event("purchase", "anonymous-device"))

    assert sorted(item["status"] for item in after_merge) == ["exited", "waiting"]
    assert len(await messages(client, keys)) == 1  # one thank-you webhook, not two
    statuses = sorted(item["status"] for item in await journeys_of(client, keys, KNOWN))
    assert statuses == ["completed", "exited"]


async def test_a_journey_only_the_anonymous_customer_is_in_moves_over_and_goes_on(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    await send(
        client,
        keys,
        store,
        event("$identify", "known-device", distinct_id=KNOWN),
        event("signup", "anonymous-device"),
    )

    await send(client, keys, store, event("$identify", "anonymous-device", distinct_id=KNOWN))
    after_merge = await journeys_of(client, keys, KNOWN)
    await send(client, keys, store, event("purchase", "known-device"))

    assert [(item["journey"], item["status"]) for item in after_merge] == [("nurture", "waiting")]
    [message] = await messages(client, keys)
    assert message["step"] == "thanks"
    assert [item["status"] for item in await journeys_of(client, keys, KNOWN)] == ["completed"]
