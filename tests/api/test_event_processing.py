"""GET /api/events/{uuid} tells what the processor did with the event."""

from __future__ import annotations

import httpx

from herald.store.base import Store
from tests.api.conftest import drain
from tests.conftest import Keys, auth

IDENTIFY_ID = "0b7a3d52-36a4-4ac5-9b1c-8f4f3c9f2a11"
EVENT_ID = "6f1e2d3c-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


def identify_then_trigger() -> dict[str, object]:
    return {
        "batch": [
            {
                "uuid": IDENTIFY_ID,
                "event": "$identify",
                "source": "custom",
                "correlationKey": "_id",
                "correlationValue": "FBBBCB26-B75E-4342-B40B-568BF879F7C5",
                "payload": {"distinct_id": "example@youremail.com"},
            },
            {
                "uuid": EVENT_ID,
                "event": "trigger_some_message",
                "source": "custom",
                "correlationKey": "_id",
                "correlationValue": "FBBBCB26-B75E-4342-B40B-568BF879F7C5",
                "payload": {"some_value": "the_value"},
            },
        ]
    }


async def test_an_event_not_yet_processed_says_pending(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    sent = await client.post(
        "/api/events/batch/", json=identify_then_trigger(), headers=auth(keys.write)
    )
    assert sent.status_code == 201

    answer = await client.get(f"/api/events/{EVENT_ID}", headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json()["processing"] == {"outcome": "pending"}


async def test_a_processed_event_names_its_customer_and_outcome(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    await client.post("/api/events/batch/", json=identify_then_trigger(), headers=auth(keys.write))
    drain(store)

    identify = (await client.get(f"/api/events/{IDENTIFY_ID}", headers=auth(keys.admin))).json()
    trigger = (await client.get(f"/api/events/{EVENT_ID}", headers=auth(keys.admin))).json()
    customer = await client.post(
        "/api/customers/read",
        json={"primary_key": "example@youremail.com"},
        headers=auth(keys.admin),
    )

    assert identify["processing"]["outcome"] == "identified"
    assert trigger["processing"]["outcome"] == "attributed"
    assert identify["processing"]["customer_id"] == customer.json()["id"]
    assert trigger["processing"]["customer_id"] == customer.json()["id"]


async def test_listing_events_leaves_processing_out(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    await client.post("/api/events/batch/", json=identify_then_trigger(), headers=auth(keys.write))
    drain(store)

    page = (await client.get("/api/events", headers=auth(keys.admin))).json()

    assert [event["uuid"] for event in page["events"]] == [EVENT_ID, IDENTIFY_ID]
    assert all("processing" not in event for event in page["events"])
