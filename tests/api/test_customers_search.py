"""POST /api/customers/search: every operator over the API, type mismatches, pages, bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Keys, auth

SEARCH = "/api/customers/search"

# Undeclared attributes take any JSON value, so customers can disagree on types (bob's age).
CUSTOMERS: dict[str, dict[str, Any]] = {
    "ada": {"plan": "pro", "age": 36, "tags": ["vip", "beta"], "vip": True, "city": "London"},
    "bob": {"plan": "free", "age": "thirty", "tags": [], "vip": False, "city": "Oslo"},
    "cy": {"plan": "pro", "age": 41, "city": "Paris"},
    "dee": {"age": 25, "tags": ["beta"], "vip": 1, "score": 9.5},
}


async def create_customers(client: httpx.AsyncClient, keys: Keys) -> dict[str, str]:
    """Upsert CUSTOMERS; return their names by id."""
    names = {}
    for name, properties in CUSTOMERS.items():
        answer = await client.post(
            "/api/customers/upsert",
            json={"primary_key": f"{name}@example.com", "properties": properties},
            headers=auth(keys.admin),
        )
        assert answer.status_code == 201, answer.text
        names[answer.json()["id"]] = name
    return names


async def search(client: httpx.AsyncClient, keys: Keys, body: dict[str, Any]) -> httpx.Response:
    return await client.post(SEARCH, json=body, headers=auth(keys.admin))


def condition(field: str, op: str, *value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, **({"value": value[0]} if value else {})}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], ["ada", "bob", "cy", "dee"]),
        ([condition("plan", "eq", "pro")], ["ada", "cy"]),
        ([condition("vip", "eq", True)], ["ada"]),
        ([condition("vip", "eq", 1)], ["dee"]),
        ([condition("age", "eq", 36.0)], ["ada"]),
        ([condition("age", "eq", "36")], []),
        ([condition("tags", "eq", ["vip", "beta"])], ["ada"]),
        ([condition("plan", "ne", "pro")], ["bob", "dee"]),
        ([condition("plan", "exists")], ["ada", "bob", "cy"]),
        ([condition("plan", "not_exists")], ["dee"]),
        ([condition("nothing", "exists")], []),
        ([condition("tags", "contains", "beta")], ["ada", "dee"]),
        ([condition("city", "contains", "o")], ["ada", "bob"]),
        ([condition("age", "contains", 3)], []),
        ([condition("age", "gt", 30)], ["ada", "cy"]),
        ([condition("age", "gte", 36)], ["ada", "cy"]),
        ([condition("age", "lt", 36)], ["dee"]),
        ([condition("age", "lte", 36)], ["ada", "dee"]),
        ([condition("score", "gt", 9)], ["dee"]),
        ([condition("city", "gt", "M")], ["bob", "cy"]),
        ([condition("city", "lte", "London")], ["ada"]),
        ([condition("plan", "in", ["pro", "enterprise"])], ["ada", "cy"]),
        ([condition("vip", "in", [True, "yes"])], ["ada"]),
        ([condition("age", "in", [25, 41])], ["cy", "dee"]),
        ([condition("plan", "eq", "pro"), condition("age", "gt", 40)], ["cy"]),
        ([condition("email", "eq", "bob@example.com")], ["bob"]),
    ],
)
async def test_search_finds_the_customers_matching_every_condition(
    client: httpx.AsyncClient,
    keys: Keys,
    conditions: list[dict[str, Any]],
    expected: list[str],
) -> None:
    names = await create_customers(client, keys)

    answer = await search(client, keys, {"conditions": conditions})

    assert answer.status_code == 200, answer.text
    assert [names[customer["id"]] for customer in answer.json()["customers"]] == expected
    assert answer.json()["next_cursor"] is None


@pytest.mark.parametrize(
    "mismatch",
    [
        condition("city", "gt", 5),  # a number against strings
        condition("city", "lte", 1_000),
        condition("age", "gt", "zzz"),  # a string against numbers (and bob's "thirty")
        condition("tags", "gte", 1),  # lists are not ordered
        condition("plan", "contains", 1),
        condition("plan", "eq", ["pro"]),
        condition("plan", "in", [["pro"]]),
    ],
)
async def test_a_value_of_another_type_than_the_attribute_matches_nothing(
    client: httpx.AsyncClient, keys: Keys, mismatch: dict[str, Any]
) -> None:
    await create_customers(client, keys)

    answer = await search(client, keys, {"conditions": [mismatch]})

    assert answer.status_code == 200
    assert answer.json() == {"customers": [], "next_cursor": None}


async def test_searching_page_by_page_returns_each_match_exactly_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    created = {}
    for number in range(9):
        answer = await client.post(
            "/api/customers/upsert",
            json={"primary_key": f"user{number}@example.com", "properties": {"n": number}},
            headers=auth(keys.admin),
        )
        created[answer.json()["id"]] = number
    body: dict[str, Any] = {"conditions": [condition("n", "gte", 2)], "limit": 2}
    seen: list[int] = []

    while True:
        answer = await search(client, keys, body)
        assert answer.status_code == 200, answer.text
        seen.extend(created[customer["id"]] for customer in answer.json()["customers"])
        if answer.json()["next_cursor"] is None:
            break
        body = {**body, "cursor": answer.json()["next_cursor"]}

    assert seen == list(range(2, 9))


async def test_search_returns_whole_customers(client: httpx.AsyncClient, keys: Keys) -> None:
    await create_customers(client, keys)

    answer = await search(client, keys, {"conditions": [condition("score", "exists")]})

    [dee] = answer.json()["customers"]
    assert dee["attributes"] == {"email": "dee@example.com", **CUSTOMERS["dee"]}
    assert set(dee) == {"id", "attributes", "identifiers", "created_at", "updated_at"}


@pytest.mark.parametrize(
    ("conditions", "field", "words"),
    [
        ([condition("plan", "eq")], "conditions[0]", "eq needs a value"),
        ([condition("plan", "eq", None)], "conditions[0]", "eq needs a value"),
        (
            [condition("plan", "eq", "pro"), condition("plan", "in", "pro")],
            "conditions[1]",
            "in needs a list of values",
        ),
        ([condition("plan", "in")], "conditions[0]", "in needs a value"),
        ([condition("age", "gt", True)], "conditions[0]", "gt needs a number or a string"),
        ([condition("age", "lte", {"n": 1})], "conditions[0]", "lte needs a number or a string"),
        ([condition("", "exists")], "conditions[0]", "field must name an attribute"),
        pytest.param(
            [condition("plan", "eq", "pro"), condition("plan", "like", "pro")],
            "conditions[1].op",
            "use one of eq, ne, exists",
            id="unknown-op",
        ),
        pytest.param(
            [{"op": "eq", "value": "pro"}],
            "conditions[0].field",
            "required field is missing",
            id="missing-field",
        ),
        pytest.param(
            [condition("plan", "eq", "pro"), {**condition("plan", "eq", "pro"), "values": []}],
            "conditions[1]",
            "values",
            id="unknown-key",
        ),
    ],
)
async def test_an_invalid_condition_is_refused_naming_it(
    client: httpx.AsyncClient,
    keys: Keys,
    conditions: list[dict[str, Any]],
    field: str,
    words: str,
) -> None:
    answer = await search(client, keys, {"conditions": conditions})

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["field"] == field
    assert answer.json()["message"].startswith(f"{field}")
    assert words in answer.json()["message"]


async def test_an_unknown_operator_is_refused(client: httpx.AsyncClient, keys: Keys) -> None:
    answer = await search(client, keys, {"conditions": [condition("plan", "like", "pro")]})

    assert answer.status_code == 400
    assert "'like'" in answer.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1_001}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"conditions": [condition("plan", "exists")] * 21}, "conditions"),
        ({"conditions": {"field": "plan", "op": "exists"}}, "conditions"),
    ],
)
async def test_a_bad_search_body_is_refused_naming_the_field(
    client: httpx.AsyncClient, keys: Keys, body: dict[str, Any], field: str
) -> None:
    answer = await search(client, keys, body)

    assert answer.status_code == 400
    assert answer.json()["field"] == field


async def test_an_empty_body_searches_everyone(client: httpx.AsyncClient, keys: Keys) -> None:
    names = await create_customers(client, keys)

    answer = await client.post(SEARCH, content=b"{}", headers=auth(keys.admin))

    assert [names[customer["id"]] for customer in answer.json()["customers"]] == list(CUSTOMERS)
