"""Regressions from a new-user review of the customers API."""

from __future__ import annotations

from typing import Any

import httpx

from herald.store.base import Store
from tests.api.conftest import drain
from tests.api.test_customers import create, read, send
from tests.conftest import Keys, auth


def event(correlation_value: str, name: str = "opened_app", **fields: Any) -> dict[str, Any]:
    return {
        "event": name,
        "source": "custom",
        "correlationKey": "_id",
        "correlationValue": correlation_value,
        "payload": {},
        **fields,
    }


async def test_one_herald_id_spelt_two_ways_in_one_batch_lands_on_that_customer(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    customer_id = await create(client, keys, "ada@example.com")

    await send(client, keys, event(customer_id.lower()), event(customer_id.upper()))
    drain(store)
    answer = await client.get(f"/api/customers/{customer_id}/events", headers=auth(keys.admin))
    everyone = await client.get("/api/customers", headers=auth(keys.admin))

    assert [item["outcome"] for item in answer.json()["events"]] == ["attributed", "attributed"]
    assert len(everyone.json()["customers"]) == 1


async def test_a_body_that_is_not_utf8_is_400_with_where(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    body = b'{"primary_key": "\xff@b.com"}'

    answer = await client.post("/api/customers/read", content=body, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_json"
    assert (answer.json()["line"], answer.json()["column"]) == (1, 18)
    assert "UTF-8" in answer.json()["message"]


async def test_a_body_nested_too_deeply_is_400(client: httpx.AsyncClient, keys: Keys) -> None:
    deep = "[" * 5_000 + "]" * 5_000
    body = f'{{"primary_key": "d@b.com", "properties": {{"x": {deep}}}}}'.encode()

    answer = await client.post("/api/customers/upsert", content=body, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert "too deeply" in answer.json()["message"]


async def test_a_primary_key_of_the_wrong_kind_is_explained_by_the_declared_type(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for value, words in ((True, "got a boolean"), (None, "missing")):
        answer = await client.post(
            "/api/customers/read", json={"primary_key": value}, headers=auth(keys.admin)
        )

        assert answer.status_code == 400
        assert answer.json()["field"] == "primary_key"
        assert "email" in answer.json()["message"]
        assert words in answer.json()["message"]


async def test_a_non_object_body_is_called_a_body_not_an_event(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.post("/api/customers/read", json=[1], headers=auth(keys.admin))

    assert answer.status_code == 400
    assert "the body must be a JSON object" in answer.json()["message"]


async def test_get_on_a_post_only_customer_route_is_405(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for route in ("upsert", "read", "delete", "search"):
        answer = await client.get(f"/api/customers/{route}", headers=auth(keys.admin))

        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"


async def test_an_event_of_a_deleted_customer_says_so_instead_of_pending(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    uuid = "5f0c6b1e-8d2a-4e3b-9c4d-7a6b5c4d3e2f"
    await send(
        client, keys, event("phone-1", "$identify", uuid=uuid, payload={"distinct_id": "a@b.co"})
    )
    drain(store)
    assert (await read(client, keys.admin, "a@b.co")).status_code == 200

    deleted = await client.post(
        "/api/customers/delete", json={"primary_key": "a@b.co"}, headers=auth(keys.admin)
    )
    answer = await client.get(f"/api/events/{uuid}", headers=auth(keys.admin))

    assert deleted.status_code == 200
    assert answer.json()["processing"]["outcome"] == "customer_deleted"
    assert "customer_id" not in answer.json()["processing"]


async def test_a_boolean_attribute_is_refused_as_primary_key_before_uniqueness(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await client.post(
        "/api/schema/attributes", json={"name": "vip", "type": "boolean"}, headers=auth(keys.admin)
    )
    for email in ("a@b.co", "c@d.co"):
        await client.post(
            "/api/customers/upsert",
            json={"primary_key": email, "properties": {"vip": True}},
            headers=auth(keys.admin),
        )

    answer = await client.post(
        "/api/schema/primary-key", json={"name": "vip"}, headers=auth(keys.admin)
    )

    assert answer.status_code == 400
    assert "boolean" in answer.json()["message"]
