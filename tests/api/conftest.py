"""Resources for the HTTP tests: an app with small limits, a valid event to start from, and a
processor run over whichever store the test has."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from herald.api.app import create_app
from herald.processor.loop import Processor
from herald.settings import Settings
from herald.store.base import Store
from tests.conftest import Keys, location_of

Event = dict[str, Any]

# Small enough to reach with a few events, in the order Herald applies them.
SMALL_BODY_BYTES = 2_048
SMALL_BATCH_EVENTS = 3
SMALL_EVENT_BYTES = 400


def an_event(**fields: Any) -> Event:
    """A valid event with a fresh uuid; `fields` replace or add fields (`**{"$fcm": ...}`)."""
    return {
        "event": "purchase",
        "correlationKey": "_id",
        "correlationValue": "customer-1",
        "source": "mobile",
        "uuid": str(uuid.uuid4()),
        **fields,
    }


def without(event: Event, field: str) -> Event:
    return {name: value for name, value in event.items() if name != field}


def drain(store: Store) -> int:
    """Run a processor over the store's database (SQLite file or PostgreSQL) until it has
    applied every event; return how many it applied."""
    processor = Processor(location_of(store))
    processor.open()
    try:
        return processor.drain()
    finally:
        processor.close()


@pytest.fixture
async def small_limits_client(
    settings: Settings, store: Store, keys: Keys
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app over the same store, with body, batch and event limits a test can reach."""
    limited = dataclasses.replace(
        settings,
        max_body_bytes=SMALL_BODY_BYTES,
        max_batch_events=SMALL_BATCH_EVENTS,
        max_event_bytes=SMALL_EVENT_BYTES,
    )
    app = create_app(limited, store, manage_store=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
