"""Operations: liveness, readiness, Prometheus metrics, counters, unknown routes."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import an_event
from tests.conftest import Keys, auth


def samples(exposition: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of metric sample `name`, by their sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


async def test_healthz_answers_ok_without_a_key(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz")

    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


async def test_readyz_answers_ready_with_an_empty_commit_queue(client: httpx.AsyncClient) -> None:
    answer = await client.get("/readyz")

    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "pending_events": 0}


async def test_metrics_count_events_by_outcome(client: httpx.AsyncClient, keys: Keys) -> None:
    stored = an_event()
    await client.post("/api/events/batch/", json={"batch": [stored]}, headers=auth(keys.write))
    batch = [an_event(), an_event(), stored, an_event(event=""), "not an event"]
    await client.post("/api/events/batch/", json={"batch": batch}, headers=auth(keys.write))

    answer = await client.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert samples(answer.text, "herald_events_total") == {
        (("outcome", "accepted"),): 3.0,
        (("outcome", "duplicate"),): 1.0,
        (("outcome", "rejected"),): 2.0,
    }


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await client.post("/api/events/batch/", json={"batch": [an_event()]}, headers=auth(keys.write))
    await client.post("/api/events/batch/", json={"batch": []}, headers=auth(keys.write))
    for uuid in ("9b2f5a52-6a39-4d0e-9e51-1a1b2c3d4e5f", "c3ee7322-cbA2-49c4-b118-87dd86aaa5d0"):
        await client.get(f"/api/events/{uuid}", headers=auth(keys.admin))

    answer = await client.get("/metrics")

    requests = samples(answer.text, "herald_http_requests_total")
    assert requests[(("route", "/api/events/batch/"), ("status", "201"))] == 1.0
    assert requests[(("route", "/api/events/batch/"), ("status", "400"))] == 1.0
    assert requests[(("route", "/api/events/{uuid}"), ("status", "404"))] == 2.0


async def test_metrics_report_the_commit_queue(client: httpx.AsyncClient) -> None:
    answer = await client.get("/metrics")

    assert samples(answer.text, "herald_pending_events") == {(): 0.0}


async def test_stats_count_what_the_workspace_was_sent(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    stored = an_event()
    await client.post("/api/events/batch/", json={"batch": [stored]}, headers=auth(keys.write))
    batch = [stored, an_event(), an_event(source="")]
    await client.post("/api/events/batch/", json={"batch": batch}, headers=auth(keys.write))

    answer = await client.get("/api/stats", headers=auth(keys.admin))

    assert answer.json() == {
        "workspace": "default",
        "accepted": 2,
        "duplicates": 1,
        "rejected": 1,
        "quarantined": 1,
    }


async def test_an_unknown_route_gets_a_json_404_pointing_at_the_api_document(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/api/nothing-here")

    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    assert "/openapi.json" in answer.json()["message"]


async def test_a_wrong_method_gets_a_json_405(client: httpx.AsyncClient, keys: Keys) -> None:
    answer = await client.put("/api/events/batch/", json={}, headers=auth(keys.write))

    assert answer.status_code == 405
    assert answer.json()["error"] == "method_not_allowed"
