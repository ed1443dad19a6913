"""Mistakes integrators make with headers and parameters get an error that names them."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import an_event
from tests.conftest import Keys, auth


@pytest.mark.parametrize(
    ("header", "scheme"),
    [("Bearer hk_w_test-write-key", "Bearer"), ("hk_w_test-write-key", "hk_w_test-write-key")],
)
async def test_an_authorization_header_of_the_wrong_form_is_named_as_such(
    client: httpx.AsyncClient, header: str, scheme: str
) -> None:
    answer = await client.post(
        "/api/events/batch/", json={"batch": [an_event()]}, headers={"Authorization": header}
    )

    assert answer.status_code == 401
    assert answer.json()["error"] == "missing_api_key"
    assert "not of the form 'Api-Key <key>'" in answer.json()["message"]
    assert repr(scheme) in answer.json()["message"]


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
async def test_every_spelling_of_yes_makes_strict_mode_all_or_nothing(
    client: httpx.AsyncClient, keys: Keys, value: str
) -> None:
    batch = [an_event(), an_event(event=5)]

    answer = await client.post(
        "/api/events/batch/",
        json={"batch": batch},
        headers={**auth(keys.write), "Herald-Strict": value},
    )
    stored = await client.get(f"/api/events/{batch[0]['uuid']}", headers=auth(keys.admin))

    assert answer.status_code == 400
    assert stored.status_code == 404


async def test_strict_mode_off_spelled_false_quarantines_as_usual(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.post(
        "/api/events/batch/",
        json={"batch": [an_event(), an_event(event=5)]},
        headers={**auth(keys.write), "Herald-Strict": "false"},
    )

    assert answer.status_code == 201
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (1, 1)


async def test_an_unknown_strict_value_is_refused_naming_the_header(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.post(
        "/api/events/batch/",
        json={"batch": [an_event()]},
        headers={**auth(keys.write), "Herald-Strict": "sometimes"},
    )

    assert answer.status_code == 400
    assert answer.json()["field"] == "Herald-Strict"


@pytest.mark.parametrize(
    ("route", "parameter"),
    [("/api/events", "correlation_value"), ("/api/quarantine", "replayed")],
)
async def test_a_misspelt_query_parameter_is_refused_instead_of_ignored(
    client: httpx.AsyncClient, keys: Keys, route: str, parameter: str
) -> None:
    answer = await client.get(f"{route}?{parameter}=x", headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["field"] == parameter
    assert "cursor" in answer.json()["message"]


async def test_replaying_with_a_batch_body_says_to_send_the_event_itself(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await client.post(
        "/api/events/batch/", json={"batch": [an_event(event=5)]}, headers=auth(keys.write)
    )
    (item,) = (await client.get("/api/quarantine", headers=auth(keys.admin))).json()["items"]

    answer = await client.post(
        f"/api/quarantine/{item['id']}/replay",
        json={"batch": [an_event()]},
        headers=auth(keys.admin),
    )

    assert answer.status_code == 400
    assert "corrected event itself" in answer.json()["message"]


async def test_segment_style_fields_are_stored_and_reported_as_warnings(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    event = an_event(properties={"plan": "pro"})

    answer = await client.post(
        "/api/events/batch/", json={"batch": [event]}, headers=auth(keys.write)
    )
    plain = await client.post(
        "/api/events/batch/", json={"batch": [an_event()]}, headers=auth(keys.write)
    )

    assert answer.status_code == 201
    assert answer.json()["accepted"] == 1
    assert [(w["index"], w["field"]) for w in answer.json()["warnings"]] == [(0, "properties")]
    assert "warnings" not in plain.json()
