"""The customers API (admin key): upsert/read/delete by primary key, listing, one customer, its
events, and the primary key's uniqueness, through the real app and the real processor."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock file
import pytest

from herald.store.base import Store
from tests.api.conftest import Event, an_event, drain
from tests.conftest import SEEDS, Keys, auth

BATCH = "/api/events/batch/"
UPSERT = "/api/customers/upsert"
READ = "/api/customers/read"
DELETE = "/api/customers/delete"
SEARCH = "/api/customers/search"
LIST = "/api/customers"

_REFERENCE = (SEEDS / "events-batch-api-reference.txt").read_text()
# The reference's "identify, then trigger a journey" example: $identify and an event, one _id.
IDENTIFY_THEN_TRIGGER: dict[str, Any] = json.JSONDecoder().raw_decode(
    _REFERENCE, _REFERENCE.index("{", _REFERENCE.index("follwed by a regular event"))
)[0]

# Every customers route as (method, path, a valid body); {id} is filled in by the tests.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", UPSERT, {"primary_key": "ada@example.com", "properties": {}}),
    ("POST", READ, {"primary_key": "ada@example.com"}),
    ("POST", DELETE, {"primary_key": "ada@example.com"}),
    ("POST", SEARCH, {"conditions": []}),
    ("GET", LIST, None),
    ("GET", "/api/customers/1", None),
    ("GET", "/api/customers/1/events", None),
]
BODY_ROUTES = [(path, body) for method, path, body in ROUTES if body is not None]


async def upsert(
    client: httpx.AsyncClient, key: str, primary_key: Any, properties: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post(
        UPSERT, json={"primary_key": primary_key, "properties": properties or {}}, headers=auth(key)
    )


async def create(client: httpx.AsyncClient, keys: Keys, primary_key: Any, **properties: Any) -> str:
    answer = await upsert(client, keys.admin, primary_key, properties)
    assert answer.status_code == 201, answer.text
    customer_id: str = answer.json()["id"]
    return customer_id


async def read(client: httpx.AsyncClient, key: str, primary_key: Any) -> httpx.Response:
    return await client.post(READ, json={"primary_key": primary_key}, headers=auth(key))


async def declare(client: httpx.AsyncClient, keys: Keys, name: str, kind: str) -> None:
    answer = await client.post(
        "/api/schema/attributes", json={"name": name, "type": kind}, headers=auth(keys.admin)
    )
    assert answer.status_code == 200, answer.text


async def send(client: httpx.AsyncClient, keys: Keys, *events: Event) -> None:
    sent = await client.post(BATCH, json={"batch": list(events)}, headers=auth(keys.write))
    assert sent.status_code == 201, sent.text
    assert sent.json()["accepted"] == len(events), sent.text


async def all_customers(client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    answer = await client.get(LIST, headers=auth(key))
    assert answer.status_code == 200, answer.text
    customers: list[dict[str, Any]] = answer.json()["customers"]
    return customers


async def events_of(client: httpx.AsyncClient, keys: Keys, customer_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/customers/{customer_id}/events", headers=auth(keys.admin))
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


# -- upsert ---------------------------------------------------------------------------------


async def test_upsert_of_a_new_primary_key_creates_the_customer_with_201(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await upsert(client, keys.admin, "ada@example.com", {"plan": "pro", "age": 36})
    found = await read(client, keys.admin, "ada@example.com")

    assert answer.status_code == 201
    assert answer.json() == {"id": answer.json()["id"], "created": True}
    assert found.status_code == 200
    customer = found.json()
    assert customer["id"] == answer.json()["id"]
    assert customer["attributes"] == {"email": "ada@example.com", "plan": "pro", "age": 36}
    assert customer["identifiers"] == []
    assert customer["created_at"] == customer["updated_at"]


async def test_upsert_of_a_known_primary_key_updates_the_customer_with_200(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    customer_id = await create(client, keys, "ada@example.com", plan="free", age=36)

    answer = await upsert(client, keys.admin, "ada@example.com", {"plan": "pro", "city": "London"})
    found = await read(client, keys.admin, "ada@example.com")

    assert answer.status_code == 200
    assert answer.json() == {"id": customer_id, "created": False}
    assert found.json()["attributes"] == {
        "email": "ada@example.com",
        "plan": "pro",
        "age": 36,
        "city": "London",
    }
    assert len(await all_customers(client, keys.admin)) == 1


async def test_repeating_an_upsert_answers_200_with_the_same_id_and_changes_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    first = await upsert(client, keys.admin, "ada@example.com", {"plan": "pro"})
    before = (await read(client, keys.admin, "ada@example.com")).json()

    again = await upsert(client, keys.admin, "ada@example.com", {"plan": "pro"})
    after = (await read(client, keys.admin, "ada@example.com")).json()

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"id": first.json()["id"], "created": False}
    assert after == before


async def test_concurrent_upserts_of_one_new_primary_key_create_one_customer(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answers = await asyncio.gather(
        *(upsert(client, keys.admin, "ada@example.com", {"n": n}) for n in range(12))
    )

    assert sorted(answer.status_code for answer in answers) == [200] * 11 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(await all_customers(client, keys.admin)) == 1


async def test_upsert_with_a_null_property_removes_that_attribute(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, "ada@example.com", plan="pro", age=36)

    answer = await upsert(client, keys.admin, "ada@example.com", {"plan": None})
    found = await read(client, keys.admin, "ada@example.com")

    assert answer.status_code == 200
    assert found.json()["attributes"] == {"email": "ada@example.com", "age": 36}


async def test_upsert_may_repeat_the_primary_key_in_properties(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await upsert(client, keys.admin, "ada@example.com", {"email": "ada@example.com"})

    assert answer.status_code == 201


@pytest.mark.parametrize(
    ("name", "kind", "value"),
    [
        ("age", "number", "forty"),
        ("age", "number", True),
        ("vip", "boolean", "yes"),
        ("nickname", "string", 5),
        ("tags", "list", "red"),
        ("profile", "object", ["a"]),
        ("signed_up_at", "datetime", "yesterday"),
        ("backup", "email", "not-an-address"),
    ],
)
async def test_a_property_of_the_wrong_declared_type_is_refused_naming_it(
    client: httpx.AsyncClient, keys: Keys, name: str, kind: str, value: Any
) -> None:
    await declare(client, keys, name, kind)

    answer = await upsert(client, keys.admin, "ada@example.com", {name: value})
    found = await read(client, keys.admin, "ada@example.com")

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["field"] == f"properties.{name}"
    assert f"properties.{name}: expected " in answer.json()["message"]
    assert found.status_code == 404


async def test_every_property_of_the_wrong_type_is_named_in_one_answer(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await declare(client, keys, "age", "number")
    await declare(client, keys, "vip", "boolean")

    answer = await upsert(client, keys.admin, "ada@example.com", {"age": "x", "vip": 1, "z": 1})

    assert answer.status_code == 400
    assert answer.json()["field"] == "properties.age"
    assert "properties.age: expected a number" in answer.json()["message"]
    assert "properties.vip: expected a boolean" in answer.json()["message"]
    assert "properties.z" not in answer.json()["message"]


@pytest.mark.parametrize(
    "primary_key",
    [42, 4.2, "not-an-address", ""],
)
async def test_a_primary_key_of_the_wrong_type_is_refused(
    client: httpx.AsyncClient, keys: Keys, primary_key: Any
) -> None:
    answer = await upsert(client, keys.admin, primary_key, {"plan": "pro"})

    assert answer.status_code == 400
    assert answer.json()["field"] == "primary_key"
    assert "primary_key (email): expected an email address" in answer.json()["message"]
    assert await all_customers(client, keys.admin) == []


@pytest.mark.parametrize("primary_key", [None, True, ["ada@example.com"], {"email": "x"}])
async def test_a_primary_key_that_is_not_a_string_or_number_is_refused(
    client: httpx.AsyncClient, keys: Keys, primary_key: Any
) -> None:
    answer = await upsert(client, keys.admin, primary_key)

    assert answer.status_code == 400
    assert answer.json()["field"] == "primary_key"


async def test_a_number_primary_key_takes_numbers_and_refuses_strings(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await declare(client, keys, "account", "number")
    moved = await client.post(
        "/api/schema/primary-key", json={"name": "account"}, headers=auth(keys.admin)
    )

    created = await upsert(client, keys.admin, 42, {"plan": "pro"})
    refused = await upsert(client, keys.admin, "43", {"plan": "pro"})
    found = await read(client, keys.admin, 42)

    assert moved.status_code == 200
    assert created.status_code == 201
    assert refused.status_code == 400
    assert "primary_key (account): expected a number" in refused.json()["message"]
    assert found.json()["attributes"] == {"account": 42, "plan": "pro"}


async def test_properties_email_other_than_the_primary_key_is_refused(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await upsert(client, keys.admin, "ada@example.com", {"email": "bob@example.com"})

    assert answer.status_code == 400
    assert answer.json()["field"] == "properties.email"
    assert "differs from primary_key" in answer.json()["message"]
    assert (await read(client, keys.admin, "ada@example.com")).status_code == 404
    assert (await read(client, keys.admin, "bob@example.com")).status_code == 404


@pytest.mark.parametrize(("path", "body"), BODY_ROUTES)
async def test_broken_json_is_refused_with_its_line_and_column(
    client: httpx.AsyncClient, keys: Keys, path: str, body: dict[str, Any]
) -> None:
    lines = json.dumps(body, indent=2).splitlines()
    lines[-2] += ","  # a trailing comma: JSON allows none
    broken = "\n".join(lines).encode()

    answer = await client.post(path, content=broken, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_json"
    assert (answer.json()["line"], answer.json()["column"]) == (len(lines) - 1, len(lines[-2]))


@pytest.mark.parametrize(("path", "body"), BODY_ROUTES)
async def test_an_unknown_field_is_refused_naming_it(
    client: httpx.AsyncClient, keys: Keys, path: str, body: dict[str, Any]
) -> None:
    answer = await client.post(path, json={**body, "primaryKey": "x"}, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "primaryKey" in answer.json()["message"]
    assert await all_customers(client, keys.admin) == []


@pytest.mark.parametrize(("path", "body"), BODY_ROUTES[:3])
async def test_a_body_without_primary_key_is_refused(
    client: httpx.AsyncClient, keys: Keys, path: str, body: dict[str, Any]
) -> None:
    answer = await client.post(path, json={}, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["field"] == "primary_key"
    assert "required field" in answer.json()["message"]


async def test_an_oversized_upsert_is_refused_with_413(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    properties = {"notes": "x" * 300_000}

    answer = await upsert(client, keys.admin, "ada@example.com", properties)

    assert answer.status_code == 413
    assert await all_customers(client, keys.admin) == []


async def test_a_primary_key_too_long_to_index_is_refused_or_found_again(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    email = "a" * 600 + "@example.com"

    first = await upsert(client, keys.admin, email)
    again = await upsert(client, keys.admin, email)
    found = await read(client, keys.admin, email)

    if first.status_code == 400:
        assert first.json()["field"] == "primary_key"
    else:
        assert again.json() == {"id": first.json()["id"], "created": False}
        assert found.status_code == 200
    assert len(await all_customers(client, keys.admin)) <= 1


# -- keys and workspaces ----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_a_write_key_gets_403_on_every_customers_route(
    client: httpx.AsyncClient, keys: Keys, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = await client.request(method, path, json=body, headers=auth(keys.write))

    assert answer.status_code == 403
    assert answer.json()["error"] == "admin_key_required"


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_no_key_gets_401_on_every_customers_route(
    client: httpx.AsyncClient, keys: Keys, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = await client.request(method, path, json=body)

    assert answer.status_code == 401
    assert answer.json()["error"] == "missing_api_key"


async def test_another_workspaces_admin_key_never_sees_this_workspaces_customers(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    customer_id = await create(client, keys, "ada@example.com", plan="pro")
    other = auth(keys.other_admin)

    read_answer = await read(client, keys.other_admin, "ada@example.com")
    listed = await client.get(LIST, headers=other)
    searched = await client.post(
        SEARCH, json={"conditions": [{"field": "plan", "op": "eq", "value": "pro"}]}, headers=other
    )
    by_id = await client.get(f"/api/customers/{customer_id}", headers=other)
    events = await client.get(f"/api/customers/{customer_id}/events", headers=other)
    deleted = await client.post(DELETE, json={"primary_key": "ada@example.com"}, headers=other)

    assert read_answer.status_code == 404
    assert listed.json() == {"customers": [], "next_cursor": None}
    assert searched.json() == {"customers": [], "next_cursor": None}
    assert by_id.status_code == 404
    assert events.status_code == 404
    assert deleted.status_code == 404
    assert (await read(client, keys.admin, "ada@example.com")).json()["id"] == customer_id


async def test_the_same_primary_key_in_two_workspaces_is_two_customers(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    ours = await upsert(client, keys.admin, "ada@example.com", {"plan": "pro"})
    theirs = await upsert(client, keys.other_admin, "ada@example.com", {"plan": "free"})

    assert (ours.status_code, theirs.status_code) == (201, 201)
    assert ours.json()["id"] != theirs.json()["id"]
    assert (await read(client, keys.admin, "ada@example.com")).json()["attributes"]["plan"] == "pro"


# -- read and delete --------------------------------------------------------------------------


async def test_reading_an_unknown_primary_key_is_404_saying_how_to_create_it(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await read(client, keys.admin, "nobody@example.com")

    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    assert "'nobody@example.com'" in answer.json()["message"]
    assert "POST /api/customers/upsert" in answer.json()["message"]


async def test_a_deleted_customer_is_gone_by_primary_key_id_and_list(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    customer_id = await create(client, keys, "ada@example.com", plan="pro")
    kept_id = await create(client, keys, "bob@example.com")

    deleted = await client.post(
        DELETE, json={"primary_key": "ada@example.com"}, headers=auth(keys.admin)
    )

    assert deleted.status_code == 200
    assert deleted.json() == {"id": customer_id, "deleted": True}
    assert (await read(client, keys.admin, "ada@example.com")).status_code == 404
    by_id = await client.get(f"/api/customers/{customer_id}", headers=auth(keys.admin))
    assert by_id.status_code == 404
    assert [c["id"] for c in await all_customers(client, keys.admin)] == [kept_id]


async def test_deleting_an_unknown_or_deleted_customer_is_404(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, "ada@example.com")
    body = {"primary_key": "ada@example.com"}

    first = await client.post(DELETE, json=body, headers=auth(keys.admin))
    second = await client.post(DELETE, json=body, headers=auth(keys.admin))

    assert first.status_code == 200
    assert second.status_code == 404
    assert "POST /api/customers/upsert" in second.json()["message"]


async def test_upsert_after_delete_creates_the_customer_afresh(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, "ada@example.com", plan="pro")
    await client.post(DELETE, json={"primary_key": "ada@example.com"}, headers=auth(keys.admin))

    again = await upsert(client, keys.admin, "ada@example.com")
    found = await read(client, keys.admin, "ada@example.com")

    assert again.status_code == 201
    assert found.json()["attributes"] == {"email": "ada@example.com"}


async def test_a_deleted_customers_id_never_names_another_customer(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    deleted_id = await create(client, keys, "ada@example.com", plan="pro")
    await client.post(DELETE, json={"primary_key": "ada@example.com"}, headers=auth(keys.admin))

    new = await upsert(client, keys.admin, "bob@example.com")
    by_old_id = await client.get(f"/api/customers/{deleted_id}", headers=auth(keys.admin))

    assert new.json()["id"] != deleted_id
    assert by_old_id.status_code == 404


# -- list and get -----------------------------------------------------------------------------


async def test_listing_page_by_page_returns_every_customer_exactly_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    created = [await create(client, keys, f"user{number}@example.com") for number in range(8)]
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"limit": 3}

    while True:
        answer = await client.get(LIST, params=params, headers=auth(keys.admin))
        assert answer.status_code == 200, answer.text
        pages += 1
        seen.extend(customer["id"] for customer in answer.json()["customers"])
        if answer.json()["next_cursor"] is None:
            break
        params = {"limit": 3, "cursor": answer.json()["next_cursor"]}

    assert seen == created
    assert pages == 3


async def test_a_full_last_page_is_followed_by_an_empty_one(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    created = [await create(client, keys, f"user{number}@example.com") for number in range(2)]

    first = await client.get(LIST, params={"limit": 2}, headers=auth(keys.admin))
    rest = await client.get(
        LIST, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=auth(keys.admin)
    )

    assert [c["id"] for c in first.json()["customers"]] == created
    assert rest.json() == {"customers": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"page": "2"}, "page"),
    ],
)
async def test_a_bad_list_parameter_is_refused_naming_it(
    client: httpx.AsyncClient, keys: Keys, params: dict[str, str], field: str
) -> None:
    answer = await client.get(LIST, params=params, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["field"] == field


async def test_a_customer_is_got_by_its_id(client: httpx.AsyncClient, keys: Keys) -> None:
    customer_id = await create(client, keys, "ada@example.com", plan="pro")

    answer = await client.get(f"/api/customers/{customer_id}", headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json() == (await read(client, keys.admin, "ada@example.com")).json()


@pytest.mark.parametrize(
    ("customer_id", "words"),
    [
        ("abc", "ids are UUIDs"),
        ("1", "ids are UUIDs"),
        ("-1", "ids are UUIDs"),
        ("%20", "ids are UUIDs"),
        ("00000000-0000-4000-8000-000000000000", "find customers with GET /api/customers"),
    ],
)
async def test_an_id_that_names_no_customer_is_404(
    client: httpx.AsyncClient, keys: Keys, customer_id: str, words: str
) -> None:
    await create(client, keys, "ada@example.com")

    one = await client.get(f"/api/customers/{customer_id}", headers=auth(keys.admin))
    events = await client.get(f"/api/customers/{customer_id}/events", headers=auth(keys.admin))

    assert (one.status_code, events.status_code) == (404, 404)
    assert one.json()["error"] == "not_found"
    assert words in one.json()["message"]
    assert events.json()["message"] == one.json()["message"]


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", "/api/customers/%C2%B2", None, 404),
        ("GET", "/api/customers/99999999999999999999", None, 404),
        ("GET", "/api/customers/{id}/events?cursor=%C2%B2", None, 400),
        ("GET", "/api/customers/{id}/events?cursor=99999999999999999999", None, 400),
        ("GET", "/api/customers?cursor=%C2%B2", None, 400),
        ("GET", "/api/customers?cursor=99999999999999999999", None, 400),
        ("GET", "/api/customers?limit=%C2%B2", None, 400),
        ("POST", SEARCH, {"cursor": "99999999999999999999"}, 400),
    ],
)
async def test_an_id_or_cursor_herald_never_gave_out_is_refused_not_a_500(
    client: httpx.AsyncClient,
    keys: Keys,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    customer_id = await create(client, keys, "ada@example.com")

    answer = await client.request(
        method, url.replace("{id}", customer_id), json=body, headers=auth(keys.admin)
    )

    assert answer.status_code == status


# -- events and identity ----------------------------------------------------------------------


async def test_a_customers_events_come_in_commit_order_with_their_outcomes(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    first = [
        an_event(event="page_view", correlationValue="anon-1"),
        an_event(event="$identify", correlationValue="anon-1", payload={"distinct_id": "a@b.co"}),
        an_event(event="purchase", correlationValue="anon-1"),
    ]
    second = [
        an_event(event="page_view", correlationValue="anon-2"),
        an_event(event="$identify", correlationValue="anon-2", payload={"distinct_id": "a@b.co"}),
    ]
    await send(client, keys, *first)
    await send(client, keys, *second)

    applied = drain(store)
    customer = (await read(client, keys.admin, "a@b.co")).json()
    page = await events_of(client, keys, customer["id"])

    assert applied == 5
    assert customer["identifiers"] == ["anon-1", "anon-2"]
    assert len(await all_customers(client, keys.admin)) == 1
    assert page["customer_id"] == customer["id"]
    assert [item["event"]["uuid"] for item in page["events"]] == [
        event["uuid"] for event in first + second
    ]
    assert [item["outcome"] for item in page["events"]] == [
        "created",
        "identified",
        "attributed",
        "created",
        "merged",
    ]
    assert page["next_cursor"] is None


async def test_a_customers_events_come_a_page_at_a_time(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    sent = [an_event(event=f"step-{number}", correlationValue="anon-1") for number in range(5)]
    await send(client, keys, *sent)
    drain(store)
    [customer] = await all_customers(client, keys.admin)
    url = f"/api/customers/{customer['id']}/events"
    seen: list[str] = []

    params: dict[str, Any] = {"limit": 2}
    while True:
        answer = await client.get(url, params=params, headers=auth(keys.admin))
        seen.extend(item["event"]["event"] for item in answer.json()["events"])
        if answer.json()["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": answer.json()["next_cursor"]}

    assert seen == [f"step-{number}" for number in range(5)]


async def test_events_reach_a_customer_only_once_processed(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    customer_id = await create(client, keys, "ada@example.com")
    await send(client, keys, an_event(correlationKey="email", correlationValue="ada@example.com"))

    before = await events_of(client, keys, customer_id)
    drain(store)
    after = await events_of(client, keys, customer_id)

    assert before["events"] == []
    assert [item["outcome"] for item in after["events"]] == ["attributed"]


async def test_an_identify_against_another_identified_customer_is_marked_a_conflict(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    await create(client, keys, "bob@example.com")
    await send(
        client,
        keys,
        an_event(event="$identify", correlationValue="anon-1", payload={"distinct_id": "a@b.co"}),
        an_event(
            event="$identify",
            correlationValue="anon-1",
            payload={"distinct_id": "bob@example.com"},
        ),
    )

    drain(store)
    ada = (await read(client, keys.admin, "a@b.co")).json()
    page = await events_of(client, keys, ada["id"])

    assert [item["outcome"] for item in page["events"]] == ["identified", "conflict"]
    assert page["events"][1]["detail"]
    assert len(await all_customers(client, keys.admin)) == 2


async def test_a_merged_anonymous_id_gets_the_customer_it_was_merged_into(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    target_id = await create(client, keys, "ada@example.com", plan="pro")
    await send(client, keys, an_event(correlationValue="anon-1"))
    drain(store)
    [anonymous] = [c for c in await all_customers(client, keys.admin) if c["id"] != target_id]

    await send(
        client,
        keys,
        an_event(
            event="$identify",
            correlationValue="anon-1",
            payload={"distinct_id": "ada@example.com"},
        ),
    )
    drain(store)
    answer = await client.get(f"/api/customers/{anonymous['id']}", headers=auth(keys.admin))
    events = await events_of(client, keys, anonymous["id"])

    assert anonymous["identifiers"] == ["anon-1"]
    assert answer.status_code == 200
    assert answer.json()["id"] == target_id
    assert answer.json()["identifiers"] == ["anon-1"]
    assert answer.json()["attributes"]["plan"] == "pro"
    assert events["customer_id"] == target_id
    assert [item["outcome"] for item in events["events"]] == ["created", "merged"]
    assert [c["id"] for c in await all_customers(client, keys.admin)] == [target_id]


async def test_the_references_identify_then_trigger_batch_lands_on_the_upserted_customer(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    [identify, trigger] = IDENTIFY_THEN_TRIGGER["batch"]
    email = identify["payload"]["distinct_id"]
    customer_id = await create(client, keys, email, plan="pro")

    sent = await client.post(BATCH, json=IDENTIFY_THEN_TRIGGER, headers=auth(keys.write))
    drain(store)
    customer = await read(client, keys.admin, email)
    page = await events_of(client, keys, customer_id)

    assert sent.status_code == 201
    assert sent.json()["accepted"] == 2
    assert customer.json()["id"] == customer_id
    assert customer.json()["identifiers"] == [identify["correlationValue"]]
    assert customer.json()["attributes"] == {"email": email, "plan": "pro"}
    assert len(await all_customers(client, keys.admin)) == 1
    assert [item["event"]["event"] for item in page["events"]] == ["$identify", trigger["event"]]
    assert [item["outcome"] for item in page["events"]] == ["merged", "attributed"]


async def test_deleting_a_customer_drops_its_events_but_keeps_the_log(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    customer_id = await create(client, keys, "ada@example.com")
    await send(client, keys, an_event(correlationKey="email", correlationValue="ada@example.com"))
    drain(store)

    await client.post(DELETE, json={"primary_key": "ada@example.com"}, headers=auth(keys.admin))
    events = await client.get(f"/api/customers/{customer_id}/events", headers=auth(keys.admin))
    log = await client.get("/api/events", headers=auth(keys.admin))

    assert events.status_code == 404
    assert len(log.json()["events"]) == 1


# -- the primary key must be unique -----------------------------------------------------------


async def test_a_primary_key_two_customers_share_is_refused_with_409_naming_the_value(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await declare(client, keys, "account", "string")
    await create(client, keys, "ada@example.com", account="acme")
    await create(client, keys, "bob@example.com", account="acme")
    await create(client, keys, "cy@example.com", account="initech")

    answer = await client.post(
        "/api/schema/primary-key", json={"name": "account"}, headers=auth(keys.admin)
    )
    schema = await client.get("/api/schema", headers=auth(keys.admin))

    assert answer.status_code == 409
    assert answer.json()["error"] == "conflict"
    assert "'acme'" in answer.json()["message"]
    assert "account" in answer.json()["message"]
    assert schema.json()["primary_key"] == "email"


async def test_a_primary_key_with_unique_values_is_allowed_and_used_by_read(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await declare(client, keys, "account", "string")
    ada_id = await create(client, keys, "ada@example.com", account="acme")
    await create(client, keys, "bob@example.com", account="initech")
    await create(client, keys, "cy@example.com")

    answer = await client.post(
        "/api/schema/primary-key", json={"name": "account"}, headers=auth(keys.admin)
    )
    found = await read(client, keys.admin, "acme")
    updated = await upsert(client, keys.admin, "acme", {"plan": "pro"})

    assert answer.status_code == 200
    assert answer.json()["primary_key"] == "account"
    assert found.json()["id"] == ada_id
    assert updated.json() == {"id": ada_id, "created": False}


async def test_values_that_match_the_same_key_count_as_shared(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await declare(client, keys, "account", "string")
    await create(client, keys, "ada@example.com", account="42")
    await declare(client, keys, "account", "number")
    await create(client, keys, "bob@example.com", account=42)

    answer = await client.post(
        "/api/schema/primary-key", json={"name": "account"}, headers=auth(keys.admin)
    )

    assert answer.status_code == 409


async def test_values_shared_only_with_a_deleted_customer_do_not_block_the_primary_key(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await declare(client, keys, "account", "string")
    await create(client, keys, "ada@example.com", account="acme")
    await create(client, keys, "bob@example.com", account="acme")
    await client.post(DELETE, json={"primary_key": "bob@example.com"}, headers=auth(keys.admin))

    answer = await client.post(
        "/api/schema/primary-key", json={"name": "account"}, headers=auth(keys.admin)
    )

    assert answer.status_code == 200


async def test_a_shared_value_in_another_workspace_does_not_block_the_primary_key(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await declare(client, keys, "account", "string")
    await create(client, keys, "ada@example.com", account="acme")
    await upsert(client, keys.other_admin, "bob@example.com", {"account": "acme"})

    answer = await client.post(
        "/api/schema/primary-key", json={"name": "account"}, headers=auth(keys.admin)
    )

    assert answer.status_code == 200


# -- the OpenAPI document describes these answers ---------------------------------------------


def documented_schema(document: dict[str, Any], method: str, path: str, status: int) -> Any:
    """The documented schema of an answer, refusing any field the document does not declare."""
    responses = document["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which is undocumented"
    components = json.loads(json.dumps(document["components"]))
    for schema in components["schemas"].values():
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
    return {
        **responses[str(status)]["content"]["application/json"]["schema"],
        "components": components,
    }


async def test_every_customers_answer_has_a_documented_status_and_shape(
    client: httpx.AsyncClient, keys: Keys, store: Store
) -> None:
    document = (await client.get("/openapi.json")).json()
    admin = auth(keys.admin)
    await send(client, keys, an_event(correlationKey="email", correlationValue="a@b.co"))
    drain(store)
    customer_id = (await read(client, keys.admin, "a@b.co")).json()["id"]
    condition = {"field": "email", "op": "eq", "value": "a@b.co"}
    calls: list[tuple[str, str, str, dict[str, Any] | None, dict[str, str]]] = [
        ("POST", UPSERT, UPSERT, {"primary_key": "b@b.co"}, admin),
        ("POST", UPSERT, UPSERT, {"primary_key": "b@b.co"}, admin),
        ("POST", UPSERT, UPSERT, {"primary_key": 1}, admin),
        ("POST", UPSERT, UPSERT, {"primary_key": "b@b.co"}, auth(keys.write)),
        ("POST", UPSERT, UPSERT, {"primary_key": "b@b.co"}, {}),
        ("POST", READ, READ, {"primary_key": "a@b.co"}, admin),
        ("POST", READ, READ, {"primary_key": "z@b.co"}, admin),
        ("POST", DELETE, DELETE, {"primary_key": "b@b.co"}, admin),
        ("POST", DELETE, DELETE, {"primary_key": "b@b.co"}, admin),
        ("POST", SEARCH, SEARCH, {"conditions": [condition]}, admin),
        ("POST", SEARCH, SEARCH, {"conditions": [{"field": "x", "op": "in"}]}, admin),
        ("GET", LIST, LIST, None, admin),
        ("GET", LIST, f"{LIST}?limit=0", None, admin),
        ("GET", "/api/customers/{id}", f"/api/customers/{customer_id}", None, admin),
        ("GET", "/api/customers/{id}", "/api/customers/x", None, admin),
        ("GET", "/api/customers/{id}/events", f"/api/customers/{customer_id}/events", None, admin),
        ("GET", "/api/customers/{id}/events", "/api/customers/9/events", None, admin),
    ]
    statuses = set()

    for method, template, url, body, headers in calls:
        answer = await client.request(method, url, json=body, headers=headers)
        statuses.add(answer.status_code)
        jsonschema.validate(
            answer.json(), documented_schema(document, method, template, answer.status_code)
        )

    assert statuses == {200, 201, 400, 401, 403, 404}


@pytest.mark.parametrize(("path", "body"), BODY_ROUTES)
async def test_the_documented_request_body_takes_valid_bodies_and_refuses_unknown_fields(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    document = (await client.get("/openapi.json")).json()

    request = document["paths"][path]["post"]["requestBody"]
    schema = {
        **request["content"]["application/json"]["schema"],
        "components": document["components"],
    }

    assert request["required"] is True
    jsonschema.validate(body, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "primaryKey": "x"}, schema)


async def test_the_primary_key_conflict_is_documented(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = (await client.get("/openapi.json")).json()
    await declare(client, keys, "account", "string")
    await create(client, keys, "ada@example.com", account="acme")
    await create(client, keys, "bob@example.com", account="acme")

    answer = await client.post(
        "/api/schema/primary-key", json={"name": "account"}, headers=auth(keys.admin)
    )

    assert answer.status_code == 409
    schema = documented_schema(document, "POST", "/api/schema/primary-key", 409)
    jsonschema.validate(answer.json(), schema)
