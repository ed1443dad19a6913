"""API keys: who may call what, and one workspace never sees another's data."""

from __future__ import annotations

import httpx
import pytest

from herald.core.keys import key_prefix
from herald.store.base import Store
from tests.api.conftest import an_event
from tests.conftest import Keys, auth

INGEST_ROUTES = [
    ("POST", "/api/events/batch/"),
    ("POST", "/api/events/batch"),
    ("POST", "/api/events/"),
    ("POST", "/api/events/posthog/"),
]
ADMIN_ROUTES = [
    ("GET", "/api/events"),
    ("GET", "/api/events/f451df0a-d713-4076-ae20-41ab1641bc98"),
    ("GET", "/api/quarantine"),
    ("GET", "/api/quarantine/1"),
    ("DELETE", "/api/quarantine/1"),
    ("POST", "/api/quarantine/1/replay"),
    ("GET", "/api/stats"),
]
ALL_ROUTES = [pytest.param(*route, id=" ".join(route)) for route in INGEST_ROUTES + ADMIN_ROUTES]


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    body = {"batch": [an_event()]} if "batch" in path else an_event()
    json_body = body if method == "POST" else None
    return await client.request(method, path, json=json_body, headers=headers)


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES)
async def test_a_request_without_a_key_gets_401_missing_api_key(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    answer = await call(client, method, path, headers={})

    assert answer.status_code == 401
    assert answer.json()["error"] == "missing_api_key"
    assert "Authorization: Api-Key <key>" in answer.json()["message"]


@pytest.mark.parametrize(
    "header",
    ["Bearer hk_w_test-write-key", "Api-Key", "Api-Key   ", "hk_w_test-write-key", "ApiKey x"],
)
async def test_a_malformed_authorization_header_gets_401_saying_how_to_send_the_key(
    client: httpx.AsyncClient, header: str
) -> None:
    answer = await call(client, "POST", "/api/events/batch/", headers={"Authorization": header})

    assert answer.status_code == 401
    assert answer.json()["error"] == "missing_api_key"
    assert "Api-Key <key>" in answer.json()["message"]


async def test_the_key_scheme_is_case_insensitive(client: httpx.AsyncClient, keys: Keys) -> None:
    headers = {"Authorization": f"api-key {keys.write}"}

    answer = await call(client, "POST", "/api/events/batch/", headers=headers)

    assert answer.status_code == 201


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES)
async def test_an_unknown_key_gets_401_unknown_api_key(
    client: httpx.AsyncClient, keys: Keys, method: str, path: str
) -> None:
    answer = await call(client, method, path, headers=auth("hk_w_no-such-key"))

    assert answer.status_code == 401
    assert answer.json()["error"] == "unknown_api_key"


async def test_the_401_for_an_unknown_key_does_not_echo_the_whole_key(
    client: httpx.AsyncClient,
) -> None:
    secret = "hk_w_0123456789abcdefghijklmnop"

    answer = await call(client, "POST", "/api/events/batch/", headers=auth(secret))

    assert secret not in answer.text
    assert key_prefix(secret) in answer.json()["message"]


async def test_a_revoked_key_gets_401_at_once_with_no_cache(
    client: httpx.AsyncClient, store: Store, keys: Keys
) -> None:
    before = await call(client, "POST", "/api/events/batch/", headers=auth(keys.write))
    default = await store.get_workspace("default")
    await store.revoke_key(default.id, key_prefix(keys.write))

    after = await call(client, "POST", "/api/events/batch/", headers=auth(keys.write))

    assert before.status_code == 201
    assert after.status_code == 401
    assert after.json()["error"] == "unknown_api_key"
    assert "revoked" in after.json()["message"]


async def test_revoking_one_key_leaves_the_others_working(
    client: httpx.AsyncClient, store: Store, keys: Keys
) -> None:
    default = await store.get_workspace("default")
    await store.revoke_key(default.id, key_prefix(keys.write))

    answer = await client.get("/api/stats", headers=auth(keys.admin))

    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"), [pytest.param(*r, id=" ".join(r)) for r in ADMIN_ROUTES]
)
async def test_a_write_key_on_an_admin_route_gets_403(
    client: httpx.AsyncClient, keys: Keys, method: str, path: str
) -> None:
    answer = await call(client, method, path, headers=auth(keys.write))

    assert answer.status_code == 403
    assert answer.json()["error"] == "admin_key_required"
    assert "admin key" in answer.json()["message"]


# -- workspace isolation ------------------------------------------------------------------


async def test_a_workspace_lists_none_of_another_workspaces_events(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await client.post(
        "/api/events/batch/", json={"batch": [an_event(), an_event()]}, headers=auth(keys.write)
    )

    listed = await client.get("/api/events", headers=auth(keys.other_admin))
    filtered = await client.get(
        "/api/events", params={"correlationValue": "customer-1"}, headers=auth(keys.other_admin)
    )

    assert listed.json() == {"events": [], "next_cursor": None}
    assert filtered.json()["events"] == []


async def test_another_workspaces_event_is_not_found_by_uuid(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    event = an_event()
    await client.post("/api/events/batch/", json={"batch": [event]}, headers=auth(keys.write))

    read = await client.get(f"/api/events/{event['uuid']}", headers=auth(keys.other_admin))

    assert read.status_code == 404
    assert read.json()["error"] == "not_found"


async def test_another_workspaces_quarantine_is_invisible_and_untouchable(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await client.post(
        "/api/events/batch/", json={"batch": [an_event(event="")]}, headers=auth(keys.write)
    )
    mine = await client.get("/api/quarantine", headers=auth(keys.admin))
    item_id = mine.json()["items"][0]["id"]
    other = auth(keys.other_admin)

    listed = await client.get("/api/quarantine", headers=other)
    read = await client.get(f"/api/quarantine/{item_id}", headers=other)
    replayed = await client.post(
        f"/api/quarantine/{item_id}/replay", json=an_event(), headers=other
    )
    deleted = await client.delete(f"/api/quarantine/{item_id}", headers=other)

    assert listed.json()["items"] == []
    assert [read.status_code, replayed.status_code, deleted.status_code] == [404, 404, 404]
    still_mine = await client.get(f"/api/quarantine/{item_id}", headers=auth(keys.admin))
    assert still_mine.json()["replayed_at"] is None


async def test_a_workspaces_stats_count_only_its_own_events(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await client.post(
        "/api/events/batch/",
        json={"batch": [an_event(), an_event(event="")]},
        headers=auth(keys.write),
    )

    stats = await client.get("/api/stats", headers=auth(keys.other_admin))

    assert stats.json() == {
        "workspace": "other",
        "accepted": 0,
        "duplicates": 0,
        "rejected": 0,
        "quarantined": 0,
    }


async def test_the_same_uuid_is_accepted_in_two_workspaces_and_each_keeps_its_own(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    shared = an_event()

    mine = await client.post(
        "/api/events/batch/",
        json={"batch": [{**shared, "event": "mine"}]},
        headers=auth(keys.write),
    )
    theirs = await client.post(
        "/api/events/batch/",
        json={"batch": [{**shared, "event": "theirs"}]},
        headers=auth(keys.other_write),
    )

    assert mine.json()["accepted"] == theirs.json()["accepted"] == 1
    read_mine = await client.get(f"/api/events/{shared['uuid']}", headers=auth(keys.admin))
    read_theirs = await client.get(f"/api/events/{shared['uuid']}", headers=auth(keys.other_admin))
    assert read_mine.json()["event"] == "mine"
    assert read_theirs.json()["event"] == "theirs"
