"""/openapi.json and /docs describe the API the app really serves."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

# The routes of the README, as (method, path template).
README_ROUTES = [
    ("post", "/api/events/batch/"),
    ("post", "/api/events/"),
    ("post", "/api/events/posthog/"),
    ("get", "/api/events"),
    ("get", "/api/events/{uuid}"),
    ("get", "/api/quarantine"),
    ("get", "/api/quarantine/{id}"),
    ("delete", "/api/quarantine/{id}"),
    ("post", "/api/quarantine/{id}/replay"),
    ("get", "/api/stats"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
]
PATH_VALUES = {"{uuid}": "f451df0a-d713-4076-ae20-41ab1641bc98", "{id}": "1"}


async def fetch_document(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


async def test_the_document_is_openapi_3_1_with_a_title_and_version(
    client: httpx.AsyncClient,
) -> None:
    document = await fetch_document(client)

    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "Herald"
    assert document["info"]["version"]


@pytest.mark.parametrize(("method", "path"), README_ROUTES)
async def test_every_route_of_the_readme_is_documented(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    document = await fetch_document(client)

    assert method in document["paths"].get(path, {}), f"{method.upper()} {path} is not documented"


async def test_every_documented_operation_is_served_and_guarded_as_documented(
    client: httpx.AsyncClient,
) -> None:
    document = await fetch_document(client)
    answers: dict[str, int] = {}

    for method, template, _ in operations(document):
        path = template
        for placeholder, value in PATH_VALUES.items():
            path = path.replace(placeholder, value)
        answer = await client.request(method.upper(), path)
        answers[f"{method.upper()} {template}"] = answer.status_code

    expected = {
        f"{method.upper()} {template}": 401 if operation.get("security") else 200
        for method, template, operation in operations(document)
    }
    assert answers == expected


async def test_every_reference_of_the_document_resolves(client: httpx.AsyncClient) -> None:
    document = await fetch_document(client)
    schemas = document["components"]["schemas"]

    references = set()
    pending: list[Any] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                references.add(node["$ref"])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)

    assert references
    for reference in references:
        assert reference.startswith("#/components/schemas/")
        assert reference.removeprefix("#/components/schemas/") in schemas


async def test_the_documented_error_statuses_of_ingestion_say_when_to_retry(
    client: httpx.AsyncClient,
) -> None:
    document = await fetch_document(client)

    ingest = document["paths"]["/api/events/batch/"]["post"]

    assert set(ingest["responses"]) >= {"201", "400", "401", "413", "415", "503"}
    assert "503" in ingest["description"] and "duplicates" in ingest["description"]


async def test_docs_is_a_page_listing_every_operation(client: httpx.AsyncClient) -> None:
    document = await fetch_document(client)

    page = await client.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    for method, template, _ in operations(document):
        assert f"<code>{method.upper()}</code></td><td><code>{template}</code>" in page.text
