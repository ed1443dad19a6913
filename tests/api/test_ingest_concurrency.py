"""Many clients at once, sending overlapping batches: every event is stored exactly once."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from herald.api.app import create_app
from herald.settings import Settings
from herald.store.base import Store
from tests.api.conftest import Event, an_event
from tests.conftest import Keys, auth

CLIENTS = 50
POOL = 200  # distinct uuids, shared out so that every uuid is sent by several clients
PER_BATCH = 40


def batch_of(client_number: int, pool: list[str]) -> list[Event]:
    """A window of the pool, starting where this client's number says; odd clients shout."""
    start = client_number * 7
    uuids = [pool[(start + offset) % POOL] for offset in range(PER_BATCH)]
    return [
        an_event(
            uuid=event_uuid.upper() if client_number % 2 else event_uuid,
            correlationValue=f"customer-{position % 9}",
            payload={"client": client_number},
        )
        for position, event_uuid in enumerate(uuids)
    ]


async def test_fifty_clients_sending_overlapping_batches_store_each_uuid_exactly_once(
    settings: Settings, store: Store, keys: Keys
) -> None:
    app = create_app(settings, store, manage_store=False)
    pool = [str(uuid.uuid4()) for _ in range(POOL)]
    batches = [batch_of(number, pool) for number in range(CLIENTS)]
    sent_uuids = {event["uuid"].lower() for batch in batches for event in batch}

    async def send(batch: list[Event]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(
                "/api/events/batch/", json={"batch": batch}, headers=auth(keys.write)
            )

    answers = await asyncio.gather(*(send(batch) for batch in batches))

    assert [answer.status_code for answer in answers] == [201] * CLIENTS
    results = [answer.json() for answer in answers]
    assert sum(result["accepted"] for result in results) == len(sent_uuids)
    assert sum(result["accepted"] + result["duplicates"] for result in results) == sum(
        len(batch) for batch in batches
    )
    assert all(result["rejected"] == 0 for result in results)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as reader:
        stored: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            page = await reader.get("/api/events", params=params, headers=auth(keys.admin))
            stored.extend(event["uuid"] for event in page.json()["events"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert sorted(stored) == sorted(sent_uuids)
        for event_uuid in sent_uuids:
            read = await reader.get(f"/api/events/{event_uuid}", headers=auth(keys.admin))
            assert read.status_code == 200
            assert read.json()["uuid"] == event_uuid
        stats = await reader.get("/api/stats", headers=auth(keys.admin))
        assert stats.json()["accepted"] == len(sent_uuids)
        assert stats.json()["duplicates"] == CLIENTS * PER_BATCH - len(sent_uuids)
