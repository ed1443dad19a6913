"""The quarantine: invalid events kept with their JSON and reasons, to correct and replay."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import Event, an_event, without
from tests.conftest import Keys, auth

BATCH = "/api/events/batch/"


async def quarantine(client: httpx.AsyncClient, keys: Keys, *events: Any) -> list[dict[str, Any]]:
    """Send `events` (all invalid) and return the quarantine items they became."""
    sent = await client.post(BATCH, json={"batch": list(events)}, headers=auth(keys.write))
    assert sent.json()["rejected"] == len(events), sent.text
    listed = await client.get("/api/quarantine", headers=auth(keys.admin))
    items: list[dict[str, Any]] = listed.json()["items"]
    return items[-len(events) :]


async def stats(client: httpx.AsyncClient, keys: Keys) -> dict[str, Any]:
    answer = await client.get("/api/stats", headers=auth(keys.admin))
    counters: dict[str, Any] = answer.json()
    return counters


async def test_an_invalid_event_is_kept_with_its_json_as_sent_and_its_reasons(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    invalid = an_event(source="", payload=[1])
    body = '{"batch": [' + json.dumps(an_event()) + ",  " + json.dumps(invalid) + "]}"
    await client.post(BATCH, content=body, headers=auth(keys.write))

    listed = await client.get("/api/quarantine", headers=auth(keys.admin))

    (item,) = listed.json()["items"]
    assert item["raw"] == json.dumps(invalid)
    assert item["index"] == 1
    assert item["uuid"] == invalid["uuid"]
    assert {error["field"] for error in item["errors"]} == {"source", "payload"}
    assert item["replayed_at"] is None
    assert item["received_at"].endswith("Z")


async def test_a_quarantined_event_is_read_by_id(client: httpx.AsyncClient, keys: Keys) -> None:
    (item,) = await quarantine(client, keys, an_event(event=""))

    read = await client.get(f"/api/quarantine/{item['id']}", headers=auth(keys.admin))

    assert read.status_code == 200
    assert read.json() == item


async def test_the_quarantine_is_paged_with_next_cursor(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    items = await quarantine(client, keys, *[an_event(event="") for _ in range(5)])
    walked: list[int] = []
    cursor: str | None = None

    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get("/api/quarantine", params=params, headers=auth(keys.admin))
        walked.extend(item["id"] for item in page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert walked == [item["id"] for item in items]
    assert cursor is None


@pytest.mark.parametrize(
    ("params", "field"), [({"cursor": "x"}, "cursor"), ({"limit": "0"}, "limit")]
)
async def test_a_bad_quarantine_parameter_gets_400(
    client: httpx.AsyncClient, keys: Keys, params: dict[str, str], field: str
) -> None:
    answer = await client.get("/api/quarantine", params=params, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["field"] == field


async def test_deleting_a_quarantined_event_removes_it(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    kept, dropped = await quarantine(client, keys, an_event(event=""), an_event(event=""))

    deleted = await client.delete(f"/api/quarantine/{dropped['id']}", headers=auth(keys.admin))

    assert deleted.status_code == 204
    gone = await client.get(f"/api/quarantine/{dropped['id']}", headers=auth(keys.admin))
    assert gone.status_code == 404
    listed = await client.get("/api/quarantine", headers=auth(keys.admin))
    assert [item["id"] for item in listed.json()["items"]] == [kept["id"]]
    assert (await stats(client, keys))["quarantined"] == 1


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("DELETE", ""), ("POST", "/replay")])
async def test_an_unknown_quarantine_id_is_404(
    client: httpx.AsyncClient, keys: Keys, method: str, suffix: str
) -> None:
    answer = await client.request(method, f"/api/quarantine/4242{suffix}", headers=auth(keys.admin))

    assert answer.status_code == 404
    assert "GET /api/quarantine" in answer.json()["message"]


async def test_replaying_a_corrected_event_stores_it_under_the_uuid_first_sent(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    invalid = an_event(event="purchase", correlationValue="")
    (item,) = await quarantine(client, keys, invalid)
    corrected = without({**invalid, "correlationValue": "ada"}, "uuid")

    replayed = await client.post(
        f"/api/quarantine/{item['id']}/replay", json=corrected, headers=auth(keys.admin)
    )

    assert replayed.status_code == 201, replayed.text
    assert replayed.json() == {"id": item["id"], "uuid": invalid["uuid"], "duplicate": False}
    read = await client.get(f"/api/events/{invalid['uuid']}", headers=auth(keys.admin))
    assert read.json()["correlationValue"] == "ada"
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert [event["uuid"] for event in listed.json()["events"]] == [invalid["uuid"]]


async def test_a_replayed_item_is_marked_and_leaves_the_open_count(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    (item,) = await quarantine(client, keys, an_event(source=""))

    await client.post(
        f"/api/quarantine/{item['id']}/replay", json=an_event(), headers=auth(keys.admin)
    )

    read = await client.get(f"/api/quarantine/{item['id']}", headers=auth(keys.admin))
    assert read.json()["replayed_at"] is not None
    counters = await stats(client, keys)
    assert (counters["accepted"], counters["rejected"], counters["quarantined"]) == (1, 1, 0)


async def test_replaying_an_event_that_is_still_invalid_gets_400_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    invalid = an_event(source="")
    (item,) = await quarantine(client, keys, invalid)

    replayed = await client.post(
        f"/api/quarantine/{item['id']}/replay",
        json={**invalid, "source": "mobile", "event": ""},
        headers=auth(keys.admin),
    )

    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_events"
    assert [error["field"] for error in replayed.json()["errors"]] == ["event"]
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert listed.json()["events"] == []
    still = await client.get(f"/api/quarantine/{item['id']}", headers=auth(keys.admin))
    assert still.json()["replayed_at"] is None


async def test_replaying_with_an_empty_body_retries_the_event_as_it_was_sent(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    (item,) = await quarantine(client, keys, an_event(event=""))

    replayed = await client.post(f"/api/quarantine/{item['id']}/replay", headers=auth(keys.admin))

    assert replayed.status_code == 400
    assert replayed.json()["errors"][0]["field"] == "event"


async def test_replaying_a_body_that_is_not_json_gets_400_invalid_json(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    (item,) = await quarantine(client, keys, an_event(event=""))

    replayed = await client.post(
        f"/api/quarantine/{item['id']}/replay", content=b"{oops", headers=auth(keys.admin)
    )

    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_json"


async def test_replaying_twice_reports_a_duplicate_and_stores_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    (item,) = await quarantine(client, keys, without(an_event(source=""), "uuid"))
    corrected: Event = without(an_event(), "uuid")
    path = f"/api/quarantine/{item['id']}/replay"

    first = await client.post(path, json=corrected, headers=auth(keys.admin))
    second = await client.post(path, json=corrected, headers=auth(keys.admin))

    assert first.json()["duplicate"] is False
    assert second.status_code == 201
    assert second.json() == {**first.json(), "duplicate": True}
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert [event["uuid"] for event in listed.json()["events"]] == [first.json()["uuid"]]


async def test_rejected_counts_and_the_open_quarantine_count_match_what_was_sent(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event(), an_event(event=""), "not an event", an_event()]

    await client.post(BATCH, json={"batch": batch}, headers=auth(keys.write))

    counters = await stats(client, keys)
    assert counters == {
        "workspace": "default",
        "accepted": 2,
        "duplicates": 0,
        "rejected": 2,
        "quarantined": 2,
    }
