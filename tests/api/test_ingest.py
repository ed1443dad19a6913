"""POST /api/events/batch/: every event rule of DESIGN §2, seen through HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import Event, an_event, without
from tests.conftest import Keys, auth

BATCH = "/api/events/batch/"

# (what is wrong, the event, the field the error names, words of its message)
INVALID_EVENTS: list[tuple[str, Any, str | None, str]] = [
    ("event missing", without(an_event(), "event"), "event", "required field is missing"),
    ("event empty", an_event(event=""), "event", "must be a non-empty string"),
    ("event a number", an_event(event=5), "event", "expected a string, got a number"),
    ("event field null", an_event(event=None), "event", "required field is missing"),
    (
        "correlationKey missing",
        without(an_event(), "correlationKey"),
        "correlationKey",
        "required field is missing",
    ),
    (
        "correlationKey empty",
        an_event(correlationKey=""),
        "correlationKey",
        "must be a non-empty string",
    ),
    (
        "correlationKey an array",
        an_event(correlationKey=["_id"]),
        "correlationKey",
        "expected a string, got an array",
    ),
    (
        "correlationValue missing",
        without(an_event(), "correlationValue"),
        "correlationValue",
        "required field is missing",
    ),
    (
        "correlationValue empty",
        an_event(correlationValue=""),
        "correlationValue",
        "must be a non-empty string",
    ),
    (
        "correlationValue a number",
        an_event(correlationValue=42),
        "correlationValue",
        "expected a string, got a number",
    ),
    ("source missing", without(an_event(), "source"), "source", "required field is missing"),
    ("source empty", an_event(source=""), "source", "must be a non-empty string"),
    ("source a boolean", an_event(source=True), "source", "expected a string, got a boolean"),
    ("timestamp not a time", an_event(timestamp="yesterday"), "timestamp", "ISO-8601"),
    ("timestamp a number", an_event(timestamp=1710469865), "timestamp", "expected a string"),
    (
        "timestamp before year 1 in UTC",
        an_event(timestamp="0001-01-01T00:30:00+01:00"),
        "timestamp",
        "0001-01-01T00:30:00+01:00",
    ),
    ("uuid not a UUID", an_event(uuid="not-a-uuid"), "uuid", "must be a UUID"),
    ("uuid a number", an_event(uuid=42), "uuid", "must be a UUID"),
    ("payload an array", an_event(payload=[1, 2]), "payload", "expected an object, got an array"),
    ("payload a string", an_event(payload="cart"), "payload", "expected an object, got a string"),
    ("context a string", an_event(context="ios"), "context", "expected an object"),
    ("$fcm a number", an_event(**{"$fcm": 7}), "$fcm", "expected an object"),
    ("not an object: a string", "purchase", None, "each event must be a JSON object, got a string"),
    ("not an object: a number", 7, None, "each event must be a JSON object, got a number"),
    ("not an object: null", None, None, "each event must be a JSON object, got null"),
    (
        "not an object: an array",
        [an_event()],
        None,
        "each event must be a JSON object, got an array",
    ),
    (
        "$identify without distinct_id",
        an_event(event="$identify", payload={}),
        "payload.distinct_id",
        "required for $identify",
    ),
    (
        "$identify with a distinct_id that is no email",
        an_event(event="$identify", payload={"distinct_id": "ada"}),
        "payload.distinct_id",
        "expected an email address",
    ),
    (
        "$set with a mistyped declared attribute",
        an_event(event="$set", payload={"email": 5}),
        "payload.email",
        "expected an email address",
    ),
]


@pytest.mark.parametrize(
    ("invalid", "field", "words"),
    [pytest.param(event, field, words, id=case) for case, event, field, words in INVALID_EVENTS],
)
async def test_an_invalid_event_is_reported_by_index_and_field_while_its_neighbours_are_stored(
    client: httpx.AsyncClient, keys: Keys, invalid: Any, field: str | None, words: str
) -> None:
    before, after = an_event(event="before"), an_event(event="after")

    sent = await client.post(
        BATCH, json={"batch": [before, invalid, after]}, headers=auth(keys.write)
    )

    assert sent.status_code == 201, sent.text
    result = sent.json()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 0, 1)
    assert [error["index"] for error in result["errors"]] == [1]
    assert result["errors"][0].get("field") == field
    assert words in result["errors"][0]["message"]
    for neighbour in (before, after):
        read = await client.get(f"/api/events/{neighbour['uuid']}", headers=auth(keys.admin))
        assert read.status_code == 200
        assert read.json()["event"] == neighbour["event"]


async def test_an_event_with_several_problems_gets_one_error_per_field(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    broken = {"event": "", "correlationKey": 1, "payload": [], "uuid": "F451DF0A-nope"}

    sent = await client.post(BATCH, json={"batch": [broken]}, headers=auth(keys.write))

    assert sent.status_code == 201, sent.text
    errors = sent.json()["errors"]
    assert {error["field"] for error in errors} == {
        "event",
        "correlationKey",
        "correlationValue",
        "source",
        "payload",
        "uuid",
    }
    assert all(error["index"] == 0 for error in errors)
    assert all(error["uuid"] == "F451DF0A-nope" for error in errors)


async def test_the_error_of_an_event_carries_its_uuid(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    invalid = an_event(uuid="f451df0a-d713-4076-ae20-41ab1641bc98", source="")

    sent = await client.post(BATCH, json={"batch": [invalid]}, headers=auth(keys.write))

    assert sent.json()["errors"] == [
        {
            "index": 0,
            "field": "source",
            "message": "must be a non-empty string",
            "uuid": "f451df0a-d713-4076-ae20-41ab1641bc98",
        }
    ]


@pytest.mark.parametrize(
    "invalid",
    [
        an_event(source=""),
        an_event(timestamp="yesterday"),
        an_event(event="$identify", payload={}),
    ],
    ids=["wire schema", "timestamp", "$identify"],
)
async def test_errors_echo_an_uppercase_uuid_as_the_client_sent_it(
    client: httpx.AsyncClient, keys: Keys, invalid: Event
) -> None:
    sent_uuid = "F451DF0A-D713-4076-AE20-41AB1641BC98"

    sent = await client.post(
        BATCH, json={"batch": [{**invalid, "uuid": sent_uuid}]}, headers=auth(keys.write)
    )

    assert [error["uuid"] for error in sent.json()["errors"]] == [sent_uuid]


async def test_counts_add_up_to_the_batch_in_a_mixed_batch(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    stored = an_event()
    await client.post(BATCH, json={"batch": [stored]}, headers=auth(keys.write))
    batch = [
        an_event(),
        stored,
        an_event(event=""),
        an_event(),
        "not an event",
        an_event(payload=None, source=None),
        an_event(),
    ]

    sent = await client.post(BATCH, json={"batch": batch}, headers=auth(keys.write))

    result = sent.json()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (3, 1, 3)
    assert result["accepted"] + result["duplicates"] + result["rejected"] == len(batch)
    assert sorted({error["index"] for error in result["errors"]}) == [2, 4, 5]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-03-15T02:31:05.295Z",
        "2024-03-15T04:31:05.295+02:00",
        "2024-03-14T21:31:05-05:00",
        "2024-03-15T02:31:05",
        "Jun 7, 2024 3:04:05 PM",
    ],
)
async def test_timestamps_in_every_documented_form_are_accepted_and_kept_as_sent(
    client: httpx.AsyncClient, keys: Keys, timestamp: str
) -> None:
    event = an_event(timestamp=timestamp)

    sent = await client.post(BATCH, json={"batch": [event]}, headers=auth(keys.write))

    assert sent.json()["accepted"] == 1, sent.text
    read = await client.get(f"/api/events/{event['uuid']}", headers=auth(keys.admin))
    assert read.json()["timestamp"] == timestamp


async def test_an_event_without_uuid_is_stored_under_a_uuid_herald_generates(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    event = without(an_event(event="anonymous"), "uuid")

    sent = await client.post(BATCH, json={"batch": [event, event]}, headers=auth(keys.write))

    assert sent.json()["accepted"] == 2, sent.text
    listed = await client.get("/api/events", headers=auth(keys.admin))
    uuids = {stored["uuid"] for stored in listed.json()["events"]}
    assert len(uuids) == 2


async def test_optional_objects_are_kept_and_payload_defaults_to_an_empty_object(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    bare = without(an_event(), "payload")
    full = an_event(
        payload={"cart": True, "items": [1, 2]},
        context={"os": "ios"},
        **{"$fcm": {"iosDeviceToken": "abc"}},
    )

    await client.post(BATCH, json={"batch": [bare, full]}, headers=auth(keys.write))

    read_bare = await client.get(f"/api/events/{bare['uuid']}", headers=auth(keys.admin))
    read_full = await client.get(f"/api/events/{full['uuid']}", headers=auth(keys.admin))
    assert read_bare.json()["payload"] == {}
    assert read_full.json()["payload"] == {"cart": True, "items": [1, 2]}
    assert read_full.json()["context"] == {"os": "ios"}
    assert read_full.json()["$fcm"] == {"iosDeviceToken": "abc"}


async def test_identify_with_an_email_distinct_id_is_accepted(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    identify = an_event(event="$identify", payload={"distinct_id": "ada@example.com"})

    sent = await client.post(BATCH, json={"batch": [identify]}, headers=auth(keys.write))

    assert sent.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}


@pytest.mark.parametrize("name", ["sent_at", "sentAt"])
async def test_the_batch_sent_at_is_recorded_on_its_events(
    client: httpx.AsyncClient, keys: Keys, name: str
) -> None:
    event = an_event()

    sent = await client.post(
        BATCH,
        json={"batch": [event], name: "2024-03-15T02:31:06+00:00"},
        headers=auth(keys.write),
    )

    assert sent.status_code == 201, sent.text
    read = await client.get(f"/api/events/{event['uuid']}", headers=auth(keys.admin))
    assert read.json()["sentAt"] == "2024-03-15T02:31:06Z"


# (what is wrong, the body, words of the message)
UNUSABLE_BODIES: list[tuple[str, Any, str]] = [
    ("no batch", {"events": [an_event()]}, 'no "batch"'),
    ("empty batch", {"batch": []}, '"batch" is empty'),
    ("batch an object", {"batch": an_event()}, '"batch" must be an array'),
    ("batch null", {"batch": None}, '"batch" must be an array'),
    ("body an array", [an_event()], '{"batch": [...]}'),
    ("body a string", "batch", '{"batch": [...]}'),
    ("sent_at not a time", {"batch": [an_event()], "sent_at": "yesterday"}, "sent_at"),
    ("sent_at a number", {"batch": [an_event()], "sent_at": 1710469865}, "sent_at"),
]


@pytest.mark.parametrize(
    ("body", "words"),
    [pytest.param(body, words, id=case) for case, body, words in UNUSABLE_BODIES],
)
async def test_an_unusable_body_is_refused_whole_with_400_saying_why(
    client: httpx.AsyncClient, keys: Keys, body: Any, words: str
) -> None:
    sent = await client.post(BATCH, json=body, headers=auth(keys.write))

    assert sent.status_code == 400, sent.text
    assert sent.json()["error"] == "invalid_request"
    assert words in sent.json()["message"]
    stats = await client.get("/api/stats", headers=auth(keys.admin))
    assert stats.json()["accepted"] == stats.json()["rejected"] == 0


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        (b"", 1, 1),
        (b"{batch: []}", 1, 2),
        (b'{"batch": [}', 1, 12),
        (b'{"batch": [\n  {"event": "a"}\n', 3, 1),
    ],
)
async def test_a_body_that_is_not_json_gets_400_with_line_and_column(
    client: httpx.AsyncClient, keys: Keys, body: bytes, line: int, column: int
) -> None:
    sent = await client.post(BATCH, content=body, headers=auth(keys.write))

    assert sent.status_code == 400
    assert sent.json()["error"] == "invalid_json"
    assert (sent.json()["line"], sent.json()["column"]) == (line, column)
    assert f"line {line}, column {column}" in sent.json()["message"]


@pytest.mark.parametrize("path", ["/api/events/batch/", "/api/events/batch"])
async def test_the_batch_route_answers_with_and_without_trailing_slash(
    client: httpx.AsyncClient, keys: Keys, path: str
) -> None:
    event = an_event()

    sent = await client.post(path, json={"batch": [event]}, headers=auth(keys.write))

    assert sent.status_code == 201, sent.text
    assert sent.json()["accepted"] == 1


@pytest.mark.parametrize("path", ["/api/events/", "/api/events"])
async def test_a_single_event_is_ingested_like_a_batch_of_one(
    client: httpx.AsyncClient, keys: Keys, path: str
) -> None:
    event = an_event(event="single")

    sent = await client.post(path, json=event, headers=auth(keys.write))

    assert sent.status_code == 201, sent.text
    assert sent.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    read = await client.get(f"/api/events/{event['uuid']}", headers=auth(keys.admin))
    assert read.json()["event"] == "single"


async def test_an_invalid_single_event_is_reported_and_quarantined(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    event = an_event(correlationValue="")

    sent = await client.post("/api/events/", json=event, headers=auth(keys.write))

    assert sent.status_code == 201, sent.text
    assert sent.json()["rejected"] == 1
    assert sent.json()["errors"][0]["field"] == "correlationValue"
    quarantine = await client.get("/api/quarantine", headers=auth(keys.admin))
    assert len(quarantine.json()["items"]) == 1


@pytest.mark.parametrize("body", [[an_event()], "purchase", 7])
async def test_the_single_event_route_refuses_a_body_that_is_not_an_object(
    client: httpx.AsyncClient, keys: Keys, body: Any
) -> None:
    sent = await client.post("/api/events/", json=body, headers=auth(keys.write))

    assert sent.status_code == 400
    assert "/api/events/batch/" in sent.json()["message"]


@pytest.mark.parametrize("path", ["/api/events/posthog/", "/api/events/posthog"])
async def test_the_posthog_route_answers_201_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys, path: str
) -> None:
    body: dict[str, list[Event]] = {"batch": [an_event()]}

    sent = await client.post(path, json=body, headers=auth(keys.write))

    assert sent.status_code == 201
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert listed.json()["events"] == []
    stats = await client.get("/api/stats", headers=auth(keys.admin))
    assert stats.json()["accepted"] == 0


async def test_a_number_beyond_float_range_is_a_per_event_error_not_a_server_error(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    valid = an_event()
    huge = json.dumps(an_event(payload={"amount": 0})).replace('"amount": 0', '"amount": 1e400')
    body = '{"batch": [' + json.dumps(valid) + ", " + huge + "]}"

    sent = await client.post(BATCH, content=body, headers=auth(keys.write))

    assert sent.status_code == 201, sent.text
    assert (sent.json()["accepted"], sent.json()["rejected"]) == (1, 1)
    assert sent.json()["errors"][0]["index"] == 1


async def test_deeply_nested_json_is_refused_as_a_client_error(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    nested = json.dumps(an_event(payload={"x": 0})).replace("0}", "[" * 2_000 + "]" * 2_000 + "}")
    body = '{"batch": [' + nested + "]}"

    sent = await client.post(BATCH, content=body, headers=auth(keys.write))

    assert sent.status_code == 400, sent.text
    assert sent.json()["error"] == "invalid_request"
    assert "too deeply" in sent.json()["message"]


def with_bytes(field: str, raw: bytes) -> bytes:
    """A valid event as JSON text whose string `field` is the bytes `raw`."""
    event = json.dumps(an_event(**{field: "PLACEHOLDER"})).encode()
    return event.replace(b'"PLACEHOLDER"', b'"' + raw + b'"')


@pytest.mark.parametrize(
    ("field", "raw"),
    [("event", b"\xff"), ("timestamp", b"\xff2024-03-15T02:31:05Z"), ("source", b"caf\xe9")],
)
async def test_an_event_with_bytes_that_are_not_utf8_is_rejected_alone(
    client: httpx.AsyncClient, keys: Keys, field: str, raw: bytes
) -> None:
    valid = an_event()
    body = b'{"batch": [' + json.dumps(valid).encode() + b", " + with_bytes(field, raw) + b"]}"

    sent = await client.post(BATCH, content=body, headers=auth(keys.write))

    assert sent.status_code == 201, sent.text
    assert (sent.json()["accepted"], sent.json()["rejected"]) == (1, 1)
    (error,) = sent.json()["errors"]
    assert error["index"] == 1
    assert "UTF-8" in error["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (BATCH, b'{"batch": [' + json.dumps(an_event()).encode() + b'], "sent_at": "\xff"}'),
        ("/api/events/", with_bytes("event", b"caf\xe9")),
    ],
    ids=["sent_at", "single event"],
)
async def test_bytes_that_are_not_utf8_in_sent_at_or_a_single_event_body_get_400(
    client: httpx.AsyncClient, keys: Keys, path: str, body: bytes
) -> None:
    sent = await client.post(path, content=body, headers=auth(keys.write))

    assert sent.status_code == 400, sent.text
    assert sent.json()["error"] == "invalid_json"
    assert "UTF-8" in sent.json()["message"]
