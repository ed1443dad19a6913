"""Herald-Strict: 1 makes a batch all or nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import SMALL_EVENT_BYTES, an_event, without
from tests.conftest import Keys, auth

BATCH = "/api/events/batch/"
STRICT = {"Herald-Strict": "1"}


NOTHING = {"events": [], "quarantine": [], "accepted": 0, "rejected": 0, "quarantined": 0}


async def stored(client: httpx.AsyncClient, keys: Keys) -> dict[str, object]:
    """What an admin of the workspace sees of what was stored: events, quarantine, counters."""
    listed = await client.get("/api/events", headers=auth(keys.admin))
    quarantine = await client.get("/api/quarantine", headers=auth(keys.admin))
    stats = await client.get("/api/stats", headers=auth(keys.admin))
    return {
        "events": listed.json()["events"],
        "quarantine": quarantine.json()["items"],
        **{name: stats.json()[name] for name in ("accepted", "rejected", "quarantined")},
    }


async def test_a_strict_batch_with_invalid_events_gets_400_with_every_error_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event(), an_event(event=""), an_event(), without(an_event(), "source"), 7]

    sent = await client.post(BATCH, json={"batch": batch}, headers={**auth(keys.write), **STRICT})

    assert sent.status_code == 400
    body = sent.json()
    assert body["error"] == "invalid_events"
    assert "3 of 5 events are invalid" in body["message"]
    assert [(error["index"], error.get("field")) for error in body["errors"]] == [
        (1, "event"),
        (3, "source"),
        (4, None),
    ]
    assert await stored(client, keys) == NOTHING


async def test_a_strict_batch_with_only_valid_events_is_accepted(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event(), an_event()]

    sent = await client.post(BATCH, json={"batch": batch}, headers={**auth(keys.write), **STRICT})

    assert sent.status_code == 201
    assert sent.json() == {"accepted": 2, "duplicates": 0, "rejected": 0, "errors": []}


async def test_duplicates_do_not_fail_a_strict_batch(client: httpx.AsyncClient, keys: Keys) -> None:
    stored = an_event()
    await client.post(BATCH, json={"batch": [stored]}, headers=auth(keys.write))

    sent = await client.post(
        BATCH, json={"batch": [stored, an_event()]}, headers={**auth(keys.write), **STRICT}
    )

    assert sent.status_code == 201
    assert sent.json() == {"accepted": 1, "duplicates": 1, "rejected": 0, "errors": []}


async def test_an_oversized_event_fails_a_strict_batch(
    small_limits_client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event(), an_event(payload={"note": "x" * SMALL_EVENT_BYTES})]

    sent = await small_limits_client.post(
        BATCH, json={"batch": batch}, headers={**auth(keys.write), **STRICT}
    )

    assert sent.status_code == 400
    assert [error["index"] for error in sent.json()["errors"]] == [1]
    assert await stored(small_limits_client, keys) == NOTHING


async def test_a_strict_single_event_that_is_invalid_gets_400(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    event = an_event(correlationKey="")

    sent = await client.post("/api/events/", json=event, headers={**auth(keys.write), **STRICT})

    assert sent.status_code == 400
    assert sent.json()["errors"][0]["field"] == "correlationKey"
    assert await stored(client, keys) == NOTHING


@pytest.mark.parametrize("value", ["0", ""])
async def test_without_strict_set_to_1_invalid_events_are_quarantined_as_usual(
    client: httpx.AsyncClient, keys: Keys, value: str
) -> None:
    batch = [an_event(), an_event(event="")]

    sent = await client.post(
        BATCH, json={"batch": batch}, headers={**auth(keys.write), "Herald-Strict": value}
    )

    assert sent.status_code == 201
    assert (sent.json()["accepted"], sent.json()["rejected"]) == (1, 1)
