"""The customer schema over HTTP: read it, declare attributes, choose the primary key."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import an_event
from tests.conftest import Keys, auth


async def test_a_new_workspace_has_email_as_its_primary_key(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.get("/api/schema", headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json() == {"primary_key": "email", "attributes": {"email": "email"}}


async def test_a_declared_type_is_checked_on_the_next_set_event(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    declared = await client.post(
        "/api/schema/attributes", json={"name": "age", "type": "number"}, headers=auth(keys.admin)
    )

    answer = await client.post(
        "/api/events/batch/",
        json={"batch": [an_event(event="$set", payload={"age": "forty"})]},
        headers=auth(keys.write),
    )

    assert declared.status_code == 200
    assert declared.json()["attributes"]["age"] == "number"
    assert answer.json()["rejected"] == 1
    assert answer.json()["errors"][0]["field"] == "payload.age"


async def test_identify_follows_a_new_primary_key(client: httpx.AsyncClient, keys: Keys) -> None:
    await client.post(
        "/api/schema/attributes",
        json={"name": "account", "type": "number"},
        headers=auth(keys.admin),
    )
    moved = await client.post(
        "/api/schema/primary-key", json={"name": "account"}, headers=auth(keys.admin)
    )

    answer = await client.post(
        "/api/events/batch/",
        json={
            "batch": [
                an_event(event="$identify", payload={"distinct_id": 42}),
                an_event(event="$identify", payload={"distinct_id": "ada@example.com"}),
            ]
        },
        headers=auth(keys.write),
    )

    assert moved.json()["primary_key"] == "account"
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (1, 1)
    assert answer.json()["errors"][0]["index"] == 1


@pytest.mark.parametrize(
    ("route", "body", "words"),
    [
        ("/api/schema/attributes", {"name": "age", "type": "integer"}, "type must be one of"),
        ("/api/schema/attributes", {"name": "age"}, "required field is missing"),
        ("/api/schema/attributes", {"name": "age", "type": "number", "x": 1}, "x"),
        ("/api/schema/attributes", {"name": "$age", "type": "number"}, "not usable"),
        ("/api/schema/primary-key", {"name": "nobody"}, "not a declared attribute"),
    ],
)
async def test_a_bad_schema_change_is_refused_saying_why(
    client: httpx.AsyncClient, keys: Keys, route: str, body: dict[str, object], words: str
) -> None:
    answer = await client.post(route, json=body, headers=auth(keys.admin))
    after = await client.get("/api/schema", headers=auth(keys.admin))

    assert answer.status_code == 400
    assert words in answer.json()["message"]
    assert after.json() == {"primary_key": "email", "attributes": {"email": "email"}}


async def test_a_schema_body_that_is_not_json_is_refused(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.post(
        "/api/schema/attributes", content=b"{name: age}", headers=auth(keys.admin)
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_json"


async def test_a_write_key_cannot_change_the_schema(client: httpx.AsyncClient, keys: Keys) -> None:
    answer = await client.post(
        "/api/schema/primary-key", json={"name": "email"}, headers=auth(keys.write)
    )

    assert answer.status_code == 403


async def test_one_workspace_schema_change_leaves_the_other_alone(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await client.post(
        "/api/schema/attributes", json={"name": "age", "type": "number"}, headers=auth(keys.admin)
    )

    other = await client.get("/api/schema", headers=auth(keys.other_admin))

    assert "age" not in other.json()["attributes"]
