"""The wire schema of `POST /api/events/batch/`: what Herald accepts, refuses, and how it says so.

Every row of DESIGN §2's event table goes through `decode_envelope` + `check_batch`, the way the API
calls them; `check_event` and `decode_single` are exercised where they are the entry point.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest

from herald.core.events import (
    PARTITIONS,
    CheckedBatch,
    Envelope,
    Limits,
    WireEvent,
    check_batch,
    check_event,
    decode_envelope,
    decode_single,
    parse_timestamp,
    partition_of,
    translate_validation_error,
)
from herald.core.schema import AttributeType, CustomerSchema
from herald.errors import InvalidJSON, InvalidRequest, PayloadTooLarge

UUID_TEXT = "F451DF0A-D713-4076-AE20-41AB1641BC98"
CUSTOMER = "FBBBCB26-B75E-4342-B40B-568BF879F7C5"
EVENT: dict[str, Any] = {
    "event": "purchase",
    "correlationKey": "_id",
    "correlationValue": CUSTOMER,
    "source": "mobile",
}
REQUIRED = ["event", "correlationKey", "correlationValue", "source"]
LIMITS = Limits(max_batch_events=100, max_event_bytes=64 * 1024)
WORKSPACE = 7
UUID_HINT = (
    "must be a UUID such as 'F451DF0A-D713-4076-AE20-41AB1641BC98'; "
    "leave it out and Herald generates one"
)


def event_with(
    changes: dict[str, Any] | None = None, *, without: tuple[str, ...] = ()
) -> dict[str, Any]:
    """EVENT with some fields changed and others left out."""
    event = {**EVENT, **(changes or {})}
    for name in without:
        del event[name]
    return event


def batch_body(*events: Any, **envelope: Any) -> bytes:
    return msgspec.json.encode({"batch": list(events), **envelope})


def sequential_ids() -> Callable[[], bytes]:
    """A `new_id` whose ids are 1, 2, 3, ... as 16 bytes, in call order."""
    counter = itertools.count(1)
    return lambda: next(counter).to_bytes(16, "big")


def generated_id(number: int) -> bytes:
    return number.to_bytes(16, "big")


def check(
    body: bytes, *, schema: CustomerSchema | None = None, limits: Limits = LIMITS
) -> CheckedBatch:
    """Decode and check a batch body as the ingest route does."""
    return check_batch(
        decode_envelope(body),
        workspace_id=WORKSPACE,
        schema=schema or CustomerSchema(),
        limits=limits,
        new_id=sequential_ids(),
    )


def errors_of(checked: CheckedBatch) -> list[tuple[int, str | None, str]]:
    return [
        (error.index, error.field, error.message)
        for rejected in checked.rejected
        for error in rejected.errors
    ]


# Accepted events


def test_a_valid_event_is_accepted_as_sent_with_its_uuid_as_id() -> None:
    raw = msgspec.json.encode(event_with({"uuid": UUID_TEXT, "payload": {"cart": True}}))
    body = b'{"batch": [' + raw + b"]}"

    checked = check(body)

    assert checked.rejected == []
    assert [accepted.raw for accepted in checked.accepted] == [raw]
    assert checked.accepted[0].id == UUID(UUID_TEXT).bytes
    assert checked.sent_at is None


def test_accepted_and_rejected_events_keep_their_json_byte_for_byte() -> None:
    good = b'{ "event":"a" , "correlationKey":"_id","correlationValue":"c","source":"custom" }'
    bad = b'{"event": "" ,  "correlationKey": "_id"}'
    body = b'{"batch": [' + good + b",\n  " + bad + b"]}"

    checked = check(body)

    assert [accepted.raw for accepted in checked.accepted] == [good]
    assert [rejected.raw for rejected in checked.rejected] == [bad]


def test_batch_order_is_preserved_in_accepted_and_rejected_events_keep_their_index() -> None:
    events: list[Any] = [event_with({"event": f"step-{number}"}) for number in range(6)]
    events[2] = event_with(without=("source",))
    events[4] = 5

    checked = check(batch_body(*events))

    assert [json.loads(accepted.raw)["event"] for accepted in checked.accepted] == [
        "step-0",
        "step-1",
        "step-3",
        "step-5",
    ]
    assert [rejected.index for rejected in checked.rejected] == [2, 4]
    assert [error.index for rejected in checked.rejected for error in rejected.errors] == [2, 4]


def test_optional_fields_may_be_absent_or_null() -> None:
    nulls = event_with({"timestamp": None, "uuid": None, "context": None, "$fcm": None})

    checked = check(batch_body(EVENT, nulls))

    assert errors_of(checked) == []
    assert len(checked.accepted) == 2


def test_context_and_fcm_objects_are_kept_with_the_event() -> None:
    event = event_with({"context": {"app": {"version": "1.2"}}, "$fcm": {"token": "push-token"}})

    checked = check(batch_body(event))

    stored = json.loads(checked.accepted[0].raw)
    assert stored["context"] == {"app": {"version": "1.2"}}
    assert stored["$fcm"] == {"token": "push-token"}


def test_unknown_fields_are_kept_and_do_not_reject_the_event() -> None:
    event = event_with({"messageId": "m-1", "properties": [1, 2]})

    checked = check(batch_body(event))

    assert errors_of(checked) == []
    assert json.loads(checked.accepted[0].raw)["messageId"] == "m-1"


# Required fields


@pytest.mark.parametrize("field", REQUIRED)
def test_an_event_missing_a_required_field_is_rejected_naming_the_field(field: str) -> None:
    body = batch_body(event_with(without=(field,)))

    checked = check(body)

    assert checked.accepted == []
    assert errors_of(checked) == [(0, field, "required field is missing")]


@pytest.mark.parametrize("field", REQUIRED)
def test_a_required_field_sent_as_null_counts_as_missing(field: str) -> None:
    body = batch_body(event_with({field: None}))

    checked = check(body)

    assert errors_of(checked) == [(0, field, "required field is missing")]


@pytest.mark.parametrize("field", REQUIRED)
@pytest.mark.parametrize(
    ("value", "described"),
    [
        (42, "a number"),
        (1.5, "a number"),
        (True, "a boolean"),
        (["x"], "an array"),
        ({}, "an object"),
    ],
)
def test_a_required_field_of_the_wrong_type_is_rejected_saying_what_was_sent(
    field: str, value: Any, described: str
) -> None:
    body = batch_body(event_with({field: value}))

    checked = check(body)

    assert checked.accepted == []
    assert errors_of(checked) == [(0, field, f"expected a string, got {described}")]


@pytest.mark.parametrize("field", REQUIRED)
def test_a_required_field_that_is_an_empty_string_is_rejected(field: str) -> None:
    body = batch_body(event_with({field: ""}))

    checked = check(body)

    assert errors_of(checked) == [(0, field, "must be a non-empty string")]


def test_every_problem_of_an_event_is_reported_at_once() -> None:
    event = {"event": "", "correlationKey": 5, "payload": [], "timestamp": 3, "uuid": "nope"}

    checked = check(batch_body(event))

    assert errors_of(checked) == [
        (0, "event", "must be a non-empty string"),
        (0, "correlationKey", "expected a string, got a number"),
        (0, "correlationValue", "required field is missing"),
        (0, "source", "required field is missing"),
        (0, "payload", "expected an object, got an array"),
        (0, "timestamp", "expected a string, got a number"),
        (0, "uuid", UUID_HINT),
    ]


@pytest.mark.parametrize(
    ("value", "described"),
    [(5, "a number"), ("event", "a string"), (None, "null"), ([], "an array"), (True, "a boolean")],
)
def test_an_item_of_the_batch_that_is_not_an_object_is_rejected(value: Any, described: str) -> None:
    body = batch_body(EVENT, value)

    checked = check(body)

    assert len(checked.accepted) == 1
    assert errors_of(checked) == [(1, None, f"each event must be a JSON object, got {described}")]


# payload, context and $fcm


@pytest.mark.parametrize("field", ["payload", "context", "$fcm"])
@pytest.mark.parametrize(
    ("value", "described"),
    [([], "an array"), ("{}", "a string"), (3, "a number"), (False, "a boolean")],
)
def test_payload_context_and_fcm_must_be_objects(field: str, value: Any, described: str) -> None:
    body = batch_body(event_with({field: value}))

    checked = check(body)

    assert errors_of(checked) == [(0, field, f"expected an object, got {described}")]


def test_a_null_payload_is_rejected_because_payload_defaults_to_an_empty_object() -> None:
    body = batch_body(event_with({"payload": None}))

    checked = check(body)

    assert errors_of(checked) == [(0, "payload", "expected an object, got null")]


def test_a_number_too_large_for_a_float_rejects_only_its_event() -> None:
    body = b'{"batch": [{"event": "a", "correlationKey": "_id", "correlationValue": "c", '
    body += b'"source": "custom", "payload": {"total": 1e999}}, ' + msgspec.json.encode(EVENT)
    body += b"]}"

    checked = check(body)

    assert len(checked.accepted) == 1
    assert errors_of(checked) == [(0, "payload", "Number out of range")]


# Timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-15T02:31:05.295Z", datetime(2024, 3, 15, 2, 31, 5, 295000, tzinfo=UTC)),
        ("2024-03-15T04:31:05+02:00", datetime(2024, 3, 15, 2, 31, 5, tzinfo=UTC)),
        ("2024-03-14T21:01:05.5-05:30", datetime(2024, 3, 15, 2, 31, 5, 500000, tzinfo=UTC)),
        ("2024-03-15T02:31:05+00:00", datetime(2024, 3, 15, 2, 31, 5, tzinfo=UTC)),
        ("2024-03-15T02:31:05", datetime(2024, 3, 15, 2, 31, 5, tzinfo=UTC)),
        ("2024-03-15 02:31:05Z", datetime(2024, 3, 15, 2, 31, 5, tzinfo=UTC)),
        ("2024-03-15t02:31:05z", datetime(2024, 3, 15, 2, 31, 5, tzinfo=UTC)),
        ("2024-03-15", datetime(2024, 3, 15, tzinfo=UTC)),
        ("Jun 7, 2024 3:04:05 PM", datetime(2024, 6, 7, 15, 4, 5, tzinfo=UTC)),
        ("Jun 7, 2024 12:04:05 AM", datetime(2024, 6, 7, 0, 4, 5, tzinfo=UTC)),
        ("Dec 31, 2023 11:59:59 PM", datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)),
        # Android 14 (CLDR 42) puts a narrow no-break space before AM/PM.
        ("Jun 7, 2024 3:04:05\u202fPM", datetime(2024, 6, 7, 15, 4, 5, tzinfo=UTC)),
    ],
)
def test_iso_and_android_timestamps_are_accepted_as_aware_utc_instants(
    text: str, expected: datetime
) -> None:
    body = batch_body(event_with({"timestamp": text}))

    checked = check(body)
    parsed = parse_timestamp(text)

    assert errors_of(checked) == []
    assert len(checked.accepted) == 1
    assert parsed == expected
    assert parsed.utcoffset() is not None


def test_a_timestamp_keeps_the_offset_it_was_sent_with() -> None:
    text = "2024-03-15T04:31:05+02:00"

    parsed = parse_timestamp(text)

    assert parsed.isoformat() == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "1710469865",
        "2024-13-01T00:00:00Z",
        "2024-03-15T25:00:00Z",
        "2024-03-15T02:31:05+25:00",
        "Jun 31, 2024 3:04:05 PM",
        "Jun 7, 2024 15:04:05 PM",
        "7 Jun 2024 3:04:05 PM",
    ],
)
def test_an_unreadable_timestamp_is_rejected_showing_the_value_and_the_expected_form(
    text: str,
) -> None:
    body = batch_body(event_with({"timestamp": text, "uuid": UUID_TEXT}), EVENT)

    checked = check(body)

    assert len(checked.accepted) == 1
    assert errors_of(checked) == [
        (
            0,
            "timestamp",
            f"{text!r} is not a timestamp Herald understands: use ISO-8601 such as "
            "'2024-03-15T02:31:05.295Z', or leave it out to use the time Herald received the event",
        )
    ]
    assert UUID(str(checked.rejected[0].errors[0].uuid)) == UUID(UUID_TEXT)
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_a_long_unreadable_timestamp_is_shortened_in_the_message() -> None:
    text = "x" * 100

    checked = check(batch_body(event_with({"timestamp": text})))

    message = errors_of(checked)[0][2]
    assert message.startswith(repr("x" * 37 + "...") + " is not a timestamp")
    assert "x" * 38 not in message


@pytest.mark.parametrize(("value", "described"), [(1710469865, "a number"), ([], "an array")])
def test_a_timestamp_that_is_not_a_string_is_rejected(value: Any, described: str) -> None:
    body = batch_body(event_with({"timestamp": value}))

    checked = check(body)

    assert errors_of(checked) == [(0, "timestamp", f"expected a string, got {described}")]


# uuid


def test_uppercase_and_lowercase_uuids_give_the_same_16_byte_id() -> None:
    upper = batch_body(event_with({"uuid": UUID_TEXT}))
    lower = batch_body(event_with({"uuid": UUID_TEXT.lower()}))

    from_upper = check(upper).accepted[0].id
    from_lower = check(lower).accepted[0].id

    assert from_upper == from_lower == UUID(UUID_TEXT).bytes
    assert len(from_upper) == 16


def test_events_without_a_uuid_get_ids_from_new_id_in_batch_order() -> None:
    events = [EVENT, event_with({"uuid": UUID_TEXT}), event_with({"uuid": None}), EVENT]

    checked = check(batch_body(*events))

    assert [accepted.id for accepted in checked.accepted] == [
        generated_id(1),
        UUID(UUID_TEXT).bytes,
        generated_id(2),
        generated_id(3),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "not-a-uuid",
        "",
        UUID_TEXT[:-1],
        UUID_TEXT + "0",
        "G451DF0A-D713-4076-AE20-41AB1641BC98",
        "{F451DF0A-D713-4076-AE20-41AB1641BC98}",
    ],
)
def test_a_uuid_that_is_not_a_uuid_is_rejected_showing_it_and_how_to_fix_it(value: str) -> None:
    body = batch_body(event_with({"uuid": value}), EVENT)

    checked = check(body)

    assert len(checked.accepted) == 1
    assert errors_of(checked) == [(0, "uuid", UUID_HINT)]
    assert checked.rejected[0].errors[0].uuid == value


@pytest.mark.parametrize(("value", "shown"), [(42, None), ("x" * 65, None), ("x" * 64, "x" * 64)])
def test_a_bad_uuid_is_echoed_in_the_error_only_when_it_is_a_short_string(
    value: Any, shown: str | None
) -> None:
    body = batch_body(event_with({"uuid": value}))

    checked = check(body)

    assert errors_of(checked) == [(0, "uuid", UUID_HINT)]
    assert checked.rejected[0].errors[0].uuid == shown


def test_errors_of_an_event_name_its_uuid_so_the_client_can_match_them() -> None:
    body = batch_body(event_with({"uuid": UUID_TEXT, "source": ""}))

    checked = check(body)

    assert [error.uuid for error in checked.rejected[0].errors] == [UUID_TEXT]


# $identify


def identify(payload: dict[str, Any] | None) -> dict[str, Any]:
    if payload is None:
        return event_with({"event": "$identify"})
    return event_with({"event": "$identify", "payload": payload})


def test_identify_with_a_distinct_id_matching_the_primary_key_type_is_accepted() -> None:
    body = batch_body(identify({"distinct_id": "ada@example.com"}))

    checked = check(body)

    assert errors_of(checked) == []
    assert len(checked.accepted) == 1


@pytest.mark.parametrize("payload", [None, {}, {"distinct_id": None}, {"email": "a@example.com"}])
def test_identify_without_distinct_id_is_rejected_naming_the_field_and_the_primary_key(
    payload: dict[str, Any] | None,
) -> None:
    body = batch_body(identify(payload), EVENT)

    checked = check(body)

    assert len(checked.accepted) == 1
    assert errors_of(checked) == [
        (0, "payload.distinct_id", "required for $identify: the customer's primary key (email)")
    ]


def test_identify_with_an_empty_distinct_id_is_rejected() -> None:
    body = batch_body(identify({"distinct_id": ""}))

    checked = check(body)

    assert errors_of(checked) == [(0, "payload.distinct_id", "must not be empty")]


@pytest.mark.parametrize(
    ("distinct_id", "message"),
    [
        (42, "expected an email address like 'ada@example.com', got a number 42"),
        ("ada", "expected an email address like 'ada@example.com', got a string \"ada\""),
        (
            ["a@example.com"],
            "expected an email address like 'ada@example.com', got an array [\"a@example.com\"]",
        ),
    ],
)
def test_identify_with_a_distinct_id_of_the_wrong_type_for_the_primary_key_is_rejected(
    distinct_id: Any, message: str
) -> None:
    body = batch_body(identify({"distinct_id": distinct_id}))

    checked = check(body)

    assert errors_of(checked) == [(0, "payload.distinct_id", message)]


@pytest.mark.parametrize("distinct_id", ["user-1", 42])
def test_identify_accepts_a_string_or_whole_number_for_an_undeclared_primary_key(
    distinct_id: Any,
) -> None:
    schema = CustomerSchema(primary_key="user_id", attributes={})
    body = batch_body(identify({"distinct_id": distinct_id}))

    checked = check(body, schema=schema)

    assert errors_of(checked) == []


@pytest.mark.parametrize(
    ("distinct_id", "shown"),
    [
        (True, "a boolean true"),
        (1.5, "a number 1.5"),
        (["user-1"], 'an array ["user-1"]'),
        ({"id": 1}, 'an object {"id":1}'),
    ],
)
def test_identify_rejects_a_distinct_id_that_cannot_be_a_primary_key_value(
    distinct_id: Any, shown: str
) -> None:
    schema = CustomerSchema(primary_key="user_id", attributes={})
    body = batch_body(identify({"distinct_id": distinct_id}))

    checked = check(body, schema=schema)

    assert errors_of(checked) == [
        (0, "payload.distinct_id", f"expected a string or a whole number, got {shown}")
    ]


def test_identify_in_a_workspace_without_a_primary_key_is_rejected_saying_how_to_set_one() -> None:
    schema = CustomerSchema(primary_key=None)
    body = batch_body(identify({"distinct_id": "ada@example.com"}), EVENT)

    checked = check(body, schema=schema)

    assert len(checked.accepted) == 1
    assert errors_of(checked) == [
        (
            0,
            "event",
            "$identify needs a primary key, and this workspace has none: "
            "set one with `herald schema set-primary-key`",
        )
    ]


def test_identify_reports_a_bad_timestamp_and_a_missing_distinct_id_together() -> None:
    event = {**identify({}), "timestamp": "soon"}

    checked = check(batch_body(event))

    assert [(field, message[:6]) for _, field, message in errors_of(checked)] == [
        ("timestamp", "'soon'"),
        ("payload.distinct_id", "requir"),
    ]


# $set


PROFILE = CustomerSchema(
    primary_key="email",
    attributes={
        "email": AttributeType.EMAIL,
        "name": AttributeType.STRING,
        "age": AttributeType.NUMBER,
        "vip": AttributeType.BOOLEAN,
        "signed_up_at": AttributeType.DATETIME,
        "tags": AttributeType.LIST,
        "address": AttributeType.OBJECT,
    },
)


def set_attributes(payload: dict[str, Any]) -> dict[str, Any]:
    return event_with({"event": "$set", "payload": payload})


def test_set_with_values_of_the_declared_types_is_accepted() -> None:
    payload = {
        "email": "ada@example.com",
        "name": "Ada",
        "age": 36,
        "vip": True,
        "signed_up_at": "2024-03-15T02:31:05Z",
        "tags": ["beta"],
        "address": {"city": "London"},
        "undeclared": {"anything": [1, "two"]},
        "vip_since": None,
    }

    checked = check(batch_body(set_attributes(payload)), schema=PROFILE)

    assert errors_of(checked) == []


def test_set_with_null_unsets_a_declared_attribute() -> None:
    body = batch_body(set_attributes({"age": None, "email": None}))

    checked = check(body, schema=PROFILE)

    assert errors_of(checked) == []


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("email", "ada", "expected an email address like 'ada@example.com', got a string \"ada\""),
        ("name", 5, "expected a string, got a number 5"),
        ("age", "36", 'expected a number, got a string "36"'),
        ("age", True, "expected a number, got a boolean true"),
        ("vip", "yes", 'expected a boolean, got a string "yes"'),
        (
            "signed_up_at",
            "last week",
            "expected an ISO-8601 datetime like '2024-03-15T02:31:05Z', got a string \"last week\"",
        ),
        ("tags", "beta", 'expected an array, got a string "beta"'),
        ("address", ["London"], 'expected an object, got an array ["London"]'),
    ],
)
def test_set_with_a_value_of_the_wrong_declared_type_is_rejected_naming_the_attribute(
    attribute: str, value: Any, message: str
) -> None:
    body = batch_body(set_attributes({attribute: value}), EVENT)

    checked = check(body, schema=PROFILE)

    assert len(checked.accepted) == 1
    assert errors_of(checked) == [(0, f"payload.{attribute}", message)]


def test_set_reports_every_attribute_of_the_wrong_type() -> None:
    body = batch_body(set_attributes({"age": "old", "name": "Ada", "vip": 1}))

    checked = check(body, schema=PROFILE)

    assert [field for _, field, _ in errors_of(checked)] == ["payload.age", "payload.vip"]


def test_declared_types_are_checked_only_on_set_events() -> None:
    body = batch_body(event_with({"event": "profile_viewed", "payload": {"age": "old"}}))

    checked = check(body, schema=PROFILE)

    assert errors_of(checked) == []


# Sizes


def test_an_event_over_max_event_bytes_is_rejected_stating_both_sizes() -> None:
    small = msgspec.json.encode(EVENT)
    large = msgspec.json.encode(event_with({"payload": {"note": "x" * 2000}}))
    limits = Limits(max_batch_events=10, max_event_bytes=len(large) - 1)
    body = b'{"batch": [' + small + b"," + large + b"]}"

    checked = check(body, limits=limits)

    assert [accepted.raw for accepted in checked.accepted] == [small]
    assert checked.rejected[0].raw == large
    assert errors_of(checked) == [
        (
            1,
            None,
            f"the event is {len(large):,} bytes; the limit is {len(large) - 1:,} bytes per event",
        )
    ]


def test_an_event_of_exactly_max_event_bytes_is_accepted() -> None:
    raw = msgspec.json.encode(EVENT)
    limits = Limits(max_batch_events=10, max_event_bytes=len(raw))

    checked = check(batch_body(EVENT), limits=limits)

    assert len(checked.accepted) == 1


def test_a_batch_of_exactly_max_batch_events_is_accepted() -> None:
    limits = Limits(max_batch_events=3, max_event_bytes=1024)

    checked = check(batch_body(EVENT, EVENT, EVENT), limits=limits)

    assert len(checked.accepted) == 3


def test_a_batch_over_max_batch_events_is_refused_whole_stating_the_limit() -> None:
    limits = Limits(max_batch_events=1000, max_event_bytes=1024)
    envelope = decode_envelope(batch_body(*[EVENT] * 1001))

    with pytest.raises(PayloadTooLarge) as raised:
        check_batch(
            envelope,
            workspace_id=WORKSPACE,
            schema=CustomerSchema(),
            limits=limits,
            new_id=sequential_ids(),
        )

    assert raised.value.message == (
        "The batch has 1,001 events; the limit is 1,000 per request: split it into smaller batches."
    )


# sent_at


@pytest.mark.parametrize("name", ["sent_at", "sentAt"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-15T02:31:06Z", datetime(2024, 3, 15, 2, 31, 6, tzinfo=UTC)),
        ("2024-03-15T04:31:06+02:00", datetime(2024, 3, 15, 2, 31, 6, tzinfo=UTC)),
        ("Mar 15, 2024 2:31:06 AM", datetime(2024, 3, 15, 2, 31, 6, tzinfo=UTC)),
    ],
)
def test_sent_at_is_read_under_either_spelling(name: str, text: str, expected: datetime) -> None:
    body = batch_body(EVENT, **{name: text})

    checked = check(body)

    assert checked.sent_at == expected


def test_sent_at_wins_over_sent_at_in_camel_case_when_both_are_sent() -> None:
    body = batch_body(EVENT, sent_at="2024-03-15T02:31:06Z", sentAt="2030-01-01T00:00:00Z")

    checked = check(body)

    assert checked.sent_at == datetime(2024, 3, 15, 2, 31, 6, tzinfo=UTC)


@pytest.mark.parametrize("name", ["sent_at", "sentAt"])
def test_an_unreadable_sent_at_refuses_the_batch_naming_the_field(name: str) -> None:
    envelope = decode_envelope(batch_body(EVENT, **{name: "later"}))

    with pytest.raises(InvalidRequest) as raised:
        check_batch(
            envelope,
            workspace_id=WORKSPACE,
            schema=CustomerSchema(),
            limits=LIMITS,
            new_id=sequential_ids(),
        )

    assert raised.value.message.startswith(
        "\"sent_at\": 'later' is not a timestamp Herald understands: use ISO-8601"
    )
    assert raised.value.details == {"field": "sent_at"}


@pytest.mark.parametrize("name", ["sent_at", "sentAt"])
def test_a_sent_at_that_is_not_a_string_refuses_the_batch(name: str) -> None:
    body = batch_body(EVENT, **{name: 1710469865})

    with pytest.raises(InvalidRequest) as raised:
        decode_envelope(body)

    assert raised.value.message == f'"{name}": expected a string, got a number.'


# The envelope


@pytest.mark.parametrize("body", [b"[]", b'"batch"', b"5", b"null", b"true", b"[{}]"])
def test_a_body_that_is_not_an_object_is_refused_showing_the_expected_shape(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_envelope(body)

    assert raised.value.message == 'The body must be a JSON object like {"batch": [...]}.'
    assert not isinstance(raised.value, InvalidJSON)


@pytest.mark.parametrize("body", [b"{}", b'{"events": []}', b'{"Batch": []}'])
def test_a_body_without_batch_is_refused_showing_the_expected_shape(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_envelope(body)

    assert raised.value.message == 'The body has no "batch": send {"batch": [event, ...]}.'


@pytest.mark.parametrize(
    ("batch", "described"),
    [
        (b"{}", "an object"),
        (b'"events"', "a string"),
        (b"null", "null"),
        (b"3", "a number"),
    ],
)
def test_a_batch_that_is_not_an_array_is_refused_saying_what_it_is(
    batch: bytes, described: str
) -> None:
    body = b'{"batch": ' + batch + b"}"

    with pytest.raises(InvalidRequest) as raised:
        decode_envelope(body)

    assert raised.value.message == (
        f'"batch" must be an array of events: expected an array, got {described}.'
    )


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_envelope(b'{"batch": []}')

    assert raised.value.message == '"batch" is empty: send at least one event.'


def test_a_body_that_is_a_number_out_of_range_is_refused_with_msgspecs_reason() -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_envelope(b"1e999")

    assert raised.value.message == "Number out of range"


def test_an_envelope_from_decode_envelope_holds_each_event_as_sent() -> None:
    body = b'{"batch": [{"event": 1},  [2]], "sent_at": "2024-03-15T02:31:06Z"}'

    envelope = decode_envelope(body)

    assert [bytes(raw) for raw in envelope.batch] == [b'{"event": 1}', b"[2]"]
    assert envelope.sent_at == "2024-03-15T02:31:06Z"


# Malformed JSON


@pytest.mark.parametrize(
    ("body", "reason", "line", "column"),
    [
        (b"", "Input data was truncated", 1, 1),
        (b'{"batch": [', "Input data was truncated", 1, 12),
        (b'{\n  "batch": [\n    {"event": "a"', "Input data was truncated", 3, 18),
        (b'{"batch": [-]}', "invalid character", 1, 13),
        (b'{"batch": []} x', "trailing characters", 1, 15),
        (b'{"batch": []}\n\n  xyz', "trailing characters", 3, 3),
        (b'{"batch": [], sent_at: 1}', "object keys must be strings", 1, 15),
        (b'{"batch" []}', "expected ':'", 1, 10),
        (b'{"batch": [1 2]}', "expected ',' or ']'", 1, 13),
        (b'{"batch": []\n\n  "sent_at": "x"}', "expected ',' or '}'", 1, 13),
        (b'{"batch": [1,\n]}', "trailing comma in array", 1, 13),
        (b'{\n  "batch": [],\n}', "trailing comma in object", 2, 14),
        (b'{"batch": [{"name": "caf\xc3\xa9" "x": 1}]}', "expected ',' or '}'", 1, 27),
        (
            b'{"batch": [{"name": "\xe2\x82\xac\xe2\x82\xac"}],, }',
            "object keys must be strings",
            1,
            28,
        ),
    ],
)
def test_malformed_json_is_refused_naming_the_line_and_column_of_the_mistake(
    body: bytes, reason: str, line: int, column: int
) -> None:
    with pytest.raises(InvalidJSON) as raised:
        decode_envelope(body)

    assert raised.value.message == (
        f"The body is not valid JSON: {reason} at line {line}, column {column}."
    )
    assert raised.value.details == {"line": line, "column": column}


def test_a_missing_comma_is_pointed_at_where_the_comma_belongs() -> None:
    body = b'{"batch": [\n  {"event": "a"\n   "source": "custom"}\n]}'

    with pytest.raises(InvalidJSON) as raised:
        decode_envelope(body)

    line, column = raised.value.details["line"], raised.value.details["column"]
    assert body.decode().splitlines()[line - 1][: column - 1] == '  {"event": "a"'


def test_a_trailing_comma_is_pointed_at_the_comma_itself() -> None:
    body = b'{"batch": [\n  {"event": "a"},\n]}'

    with pytest.raises(InvalidJSON) as raised:
        decode_envelope(body)

    line, column = raised.value.details["line"], raised.value.details["column"]
    assert body.decode().splitlines()[line - 1][column - 1] == ","
    assert (line, column) == (2, 17)


def test_json_nested_too_deeply_is_refused_instead_of_crashing() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    body = b'{"batch": [{"event": "a", "payload": {"x": ' + deep + b"}}]}"

    with pytest.raises(InvalidRequest) as raised:
        decode_envelope(body)

    assert raised.value.message.startswith("The body nests arrays or objects too deeply")


# check_event and decode_single: one event, as POST /api/events/ and quarantine replay use them


def test_decode_single_makes_a_batch_of_one_that_is_checked_like_any_batch() -> None:
    body = msgspec.json.encode(event_with({"uuid": UUID_TEXT}))

    envelope = decode_single(body)
    checked = check_batch(
        envelope,
        workspace_id=WORKSPACE,
        schema=CustomerSchema(),
        limits=LIMITS,
        new_id=sequential_ids(),
    )

    assert envelope == Envelope(batch=[msgspec.Raw(body)])
    assert [(accepted.id, accepted.raw) for accepted in checked.accepted] == [
        (UUID(UUID_TEXT).bytes, body)
    ]


@pytest.mark.parametrize(("body", "described"), [(b"[]", "an array"), (b"7", "a number")])
def test_decode_single_refuses_a_body_that_is_not_one_event_pointing_at_the_batch_route(
    body: bytes, described: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_single(body)

    assert raised.value.message == (
        f"The body must be one event as a JSON object, got {described}; "
        'to send several, POST {"batch": [...]} to /api/events/batch/.'
    )


def test_decode_single_refuses_malformed_json_naming_the_line_and_column() -> None:
    body = b'{\n  "event": "a",\n  "source": "custom"\n  "correlationKey": "_id"\n}'

    with pytest.raises(InvalidJSON) as raised:
        decode_single(body)

    assert raised.value.details == {"line": 3, "column": 21}


def test_decode_single_refuses_a_number_out_of_range_without_a_position() -> None:
    with pytest.raises(InvalidJSON) as raised:
        decode_single(b'{"total": 1e999}')

    assert raised.value.message.startswith("The body is not valid JSON: Number out of range")
    assert raised.value.details == {}


def test_decode_single_refuses_json_nested_too_deeply() -> None:
    body = b'{"payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    with pytest.raises(InvalidRequest) as raised:
        decode_single(body)

    assert raised.value.message.startswith("The body nests arrays or objects too deeply")


def test_check_event_returns_the_decoded_event_when_it_is_valid() -> None:
    raw = msgspec.json.encode(event_with({"uuid": UUID_TEXT, "payload": {"cart": True}}))

    event, errors = check_event(raw, index=0, schema=CustomerSchema())

    assert errors == []
    assert event is not None
    assert (event.event, event.correlation_key, event.correlation_value, event.source) == (
        "purchase",
        "_id",
        CUSTOMER,
        "mobile",
    )
    assert event.uuid == UUID(UUID_TEXT)
    assert event.payload == {"cart": True}


def test_check_event_on_stored_bytes_that_are_not_json_says_so() -> None:
    event, errors = check_event(b'{"event": "a"', index=3, schema=CustomerSchema())

    assert event is None
    assert [(error.index, error.field) for error in errors] == [(3, None)]
    assert errors[0].message.startswith("not valid JSON: ")


def test_check_event_reports_the_first_error_when_the_rest_cannot_be_read() -> None:
    raw = b'{"event": 5, "payload": {"x": ' + b"[" * 100_000

    event, errors = check_event(raw, index=0, schema=CustomerSchema())

    assert event is None
    assert [(error.field, error.message) for error in errors] == [
        ("event", "expected a string, got a number")
    ]


def test_check_event_refuses_an_event_nested_too_deeply() -> None:
    raw = b'{"payload": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"

    event, errors = check_event(raw, index=2, schema=CustomerSchema())

    assert event is None
    assert [(error.index, error.message) for error in errors] == [
        (2, "the event nests arrays or objects too deeply to read")
    ]


# One pass or event by event: the result is the same


ANDROID_EVENT = event_with({"timestamp": "Jun 7, 2024 3:04:05 PM"})  # only the slow path reads it
SAMPLES: list[dict[str, Any]] = [
    event_with({"uuid": UUID_TEXT, "timestamp": "2024-03-15T02:31:05.295Z"}),
    event_with({"timestamp": "2024-03-15T02:31:05"}),
    identify({"distinct_id": "ada@example.com"}),
    identify({}),
    identify({"distinct_id": 5}),
    set_attributes({"email": "not an email"}),
    event_with({"event": "$delivered", "source": "message"}),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda sample: str(sample["event"]))
def test_an_events_fate_does_not_depend_on_the_other_events_of_its_batch(
    sample: dict[str, Any],
) -> None:
    alone = batch_body(sample, EVENT)
    beside_an_android_timestamp = batch_body(sample, ANDROID_EVENT)

    checked_alone = check(alone)
    checked_beside = check(beside_an_android_timestamp)

    raw = msgspec.json.encode(sample)
    assert [accepted for accepted in checked_alone.accepted if accepted.raw == raw] == [
        accepted for accepted in checked_beside.accepted if accepted.raw == raw
    ]
    assert errors_of(checked_alone) == errors_of(checked_beside)


def test_special_events_get_every_check_even_when_the_whole_batch_is_well_formed() -> None:
    body = batch_body(EVENT, identify({}), set_attributes({"email": 5}), EVENT)

    checked = check(body)

    assert [rejected.index for rejected in checked.rejected] == [1, 2]
    assert len(checked.accepted) == 2


# Partitions


@pytest.mark.parametrize(
    ("workspace_id", "correlation_value", "partition"),
    [
        (1, CUSTOMER, 3),
        (7, CUSTOMER, 15),
        (1, "ada@example.com", 8),
        (2, "ada@example.com", 1),
        (1, "", 1),
    ],
)
def test_a_customers_partition_never_changes(
    workspace_id: int, correlation_value: str, partition: int
) -> None:
    lane = partition_of(workspace_id, correlation_value)

    assert lane == partition


def test_partitions_are_in_range_and_all_lanes_are_used() -> None:
    values = [f"customer-{number}" for number in range(2000)]

    lanes = {partition_of(WORKSPACE, value) for value in values}

    assert lanes == set(range(PARTITIONS))


def test_the_workspace_is_part_of_the_partition_key() -> None:
    values = [f"customer-{number}" for number in range(50)]

    first = [partition_of(1, value) for value in values]
    second = [partition_of(2, value) for value in values]

    assert first != second


def test_events_of_one_customer_in_a_batch_share_the_customers_partition() -> None:
    other = event_with({"correlationValue": "ada@example.com"})

    checked = check(batch_body(EVENT, other, EVENT, other))

    assert [accepted.partition for accepted in checked.accepted] == [
        partition_of(WORKSPACE, CUSTOMER),
        partition_of(WORKSPACE, "ada@example.com"),
        partition_of(WORKSPACE, CUSTOMER),
        partition_of(WORKSPACE, "ada@example.com"),
    ]


# translate_validation_error: msgspec's words into the wire schema's


@pytest.mark.parametrize(
    ("raw", "translated"),
    [
        (b"{}", ("event", "required field is missing")),
        (b"[]", (None, "each event must be a JSON object, got an array")),
        (b'"x"', (None, "each event must be a JSON object, got a string")),
        (b"true", (None, "each event must be a JSON object, got a boolean")),
        (b"null", (None, "each event must be a JSON object, got null")),
        (b'{"event": ""}', ("event", "must be a non-empty string")),
        (b'{"event": 1}', ("event", "expected a string, got a number")),
        (b'{"event": 1.5}', ("event", "expected a string, got a number")),
        (b'{"event": {}}', ("event", "expected a string, got an object")),
        (
            b'{"event": "a", "correlationKey": "k", "correlationValue": "v"}',
            ("source", "required field is missing"),
        ),
        (b'{"uuid": "nope", "event": "a"}', ("uuid", UUID_HINT)),
        (b'{"uuid": 5}', ("uuid", UUID_HINT)),
        (b'{"payload": []}', ("payload", "expected an object, got an array")),
        (b'{"$fcm": "t"}', ("$fcm", "expected an object, got a string")),
        (b'{"timestamp": false}', ("timestamp", "expected a string, got a boolean")),
        (b'{"payload": {"n": 1e999}}', ("payload", "Number out of range")),
    ],
)
def test_msgspecs_errors_on_an_event_are_translated_into_wire_schema_words(
    raw: bytes, translated: tuple[str | None, str]
) -> None:
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.json.decode(raw, type=WireEvent)

    assert translate_validation_error(str(raised.value)) == translated


@pytest.mark.parametrize(
    ("text", "translated"),
    [
        (
            "Object missing required field `distinct_id` - at `$.payload`",
            ("payload.distinct_id", "required field is missing"),
        ),
        ("Expected `object`", (None, "each event must be a JSON object, got something else")),
        (
            "Expected `object`, got `bytes`",
            (None, "each event must be a JSON object, got something else"),
        ),
        ("Expected `array` - at `$.batch`", ("batch", "expected an array")),
        ("Expected `datetime`, got `int` - at `$.at`", ("at", "expected datetime, got a number")),
        ("Expected `int`, got `weird` - at `$.n`", ("n", "expected a number, got weird")),
        ("Invalid enum value 'x' - at `$.kind`", ("kind", "Invalid enum value 'x'")),
        ("Something new", (None, "Something new")),
        ("Expected `str`, got `int` - at `$[3].userId`", (None, "expected a string, got a number")),
    ],
)
def test_translate_validation_error_handles_each_message_shape(
    text: str, translated: tuple[str | None, str]
) -> None:
    result = translate_validation_error(text)

    assert result == translated


# The seed documents: the examples Laudspeaker's docs give must work as documented


SEEDS = Path(__file__).resolve().parents[1] / "seeds"
NO_SEEDS = f"the seed documents are not at {SEEDS}"
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_POSITION = re.compile(r"at line (\d+), column (\d+)\.$")


@dataclass(frozen=True)
class Example:
    """A JSON example of a seed document, padded so its lines and columns are the document's."""

    path: Path
    first_line: int
    text: str

    @property
    def document(self) -> str:
        return self.path.name

    def __str__(self) -> str:
        return f"{self.document}:{self.first_line}"


def json_examples(path: Path) -> list[Example]:
    """Every top-level {...} in a seed document, found by counting braces outside strings."""
    lines = path.read_text().splitlines()
    examples: list[Example] = []
    depth, start = 0, 0
    for number, line in enumerate(lines, start=1):
        code = _STRING.sub('""', line)
        if depth == 0 and "{" not in code:
            continue
        if depth == 0:
            start = number
        depth += code.count("{") - code.count("}")
        if depth == 0:
            examples.append(Example(path, start, _padded(lines[start - 1 : number])))
    return examples


def _padded(lines: list[str]) -> str:
    """The example's lines with the prose around it (`--data '{`, `}'`) blanked out."""
    head = lines[0].index("{")
    lines = [" " * head + lines[0][head:], *lines[1:]]
    lines[-1] = lines[-1][: lines[-1].rindex("}") + 1]
    return "\n".join(lines)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


EXAMPLES = (
    [example for path in sorted(SEEDS.glob("*.txt")) for example in json_examples(path)]
    if SEEDS.is_dir()
    else []
)
VALID_EXAMPLES = [example for example in EXAMPLES if _is_json(example.text)]
BROKEN_EXAMPLES = [example for example in EXAMPLES if not _is_json(example.text)]


def decode_as_documented(text: str) -> Envelope:
    """A batch for /api/events/batch/, a single event for /api/events/."""
    body = text.encode()
    return decode_envelope(body) if '"batch"' in text else decode_single(body)


def check_whole(envelope: Envelope) -> CheckedBatch:
    return check_batch(
        envelope,
        workspace_id=WORKSPACE,
        schema=CustomerSchema(),
        limits=LIMITS,
        new_id=sequential_ids(),
    )


def events_in(text: str) -> list[Any]:
    document = json.loads(text)
    return list(document["batch"]) if "batch" in document else [document]


@pytest.mark.skipif(not SEEDS.is_dir(), reason=NO_SEEDS)
def test_the_seed_documents_hold_both_valid_and_broken_examples() -> None:
    documents = {example.document for example in EXAMPLES}

    valid, broken = len(VALID_EXAMPLES), len(BROKEN_EXAMPLES)

    assert {"events-batch-api-reference.txt", "events-batch-guide.txt"} <= documents
    assert valid >= 3
    assert broken >= 2


@pytest.mark.skipif(not SEEDS.is_dir(), reason=NO_SEEDS)
@pytest.mark.parametrize("example", VALID_EXAMPLES, ids=str)
def test_each_valid_seed_example_is_accepted_whole(example: Example) -> None:
    expected = events_in(example.text)

    checked = check_whole(decode_as_documented(example.text))

    assert errors_of(checked) == []
    assert [json.loads(accepted.raw) for accepted in checked.accepted] == expected
    assert [accepted.id for accepted in checked.accepted] == expected_ids(expected)


def expected_ids(events: list[Any]) -> list[bytes]:
    """The event's uuid, or else the next id `sequential_ids` makes."""
    numbers = itertools.count(1)
    return [
        UUID(event["uuid"]).bytes if "uuid" in event else generated_id(next(numbers))
        for event in events
    ]


@pytest.mark.skipif(not SEEDS.is_dir(), reason=NO_SEEDS)
@pytest.mark.parametrize("example", BROKEN_EXAMPLES, ids=str)
def test_each_broken_seed_example_is_refused_at_the_line_and_column_of_its_typo(
    example: Example,
) -> None:
    text, typos = example.text, 0

    while not _is_json(text) and typos < 10:
        with pytest.raises(InvalidJSON) as raised:
            decode_as_documented(text)
        text = _fixed_where_reported(example, text, raised.value)
        typos += 1
    checked = check_whole(decode_as_documented(text))

    assert 1 <= typos < 10
    assert errors_of(checked) == []
    assert len(checked.accepted) == len(events_in(text))


@pytest.mark.skipif(not SEEDS.is_dir(), reason=NO_SEEDS)
def test_the_guides_missing_comma_is_reported_at_the_end_of_the_line_that_lacks_it() -> None:
    guide = SEEDS / "events-batch-guide.txt"
    example = next(example for example in json_examples(guide) if example.first_line == 71)

    with pytest.raises(InvalidJSON) as raised:
        decode_as_documented(example.text)

    assert raised.value.message == (
        "The body is not valid JSON: expected ',' or '}' at line 7, column 19."
    )
    assert guide.read_text().splitlines()[71 + 7 - 2] == '"source": "custom"'


def _fixed_where_reported(example: Example, text: str, error: InvalidJSON) -> str:
    """`text` with the typo `error` names fixed, after checking the typo is where it says."""
    position = _POSITION.search(error.message)
    assert position is not None, error.message
    line, column = int(position.group(1)), int(position.group(2))
    assert error.details == {"line": line, "column": column}
    assert line > 1, "the typos of the seeds are inside their examples"
    lines = text.splitlines()
    document_line = example.first_line + line - 1
    where = f"{example.document}:{document_line}:{column}: {error.message}"
    assert example.path.read_text().splitlines()[document_line - 1] == lines[line - 1], where
    before, after = lines[line - 1][: column - 1], lines[line - 1][column - 1 :]
    if "expected ','" in error.message:
        assert before.rstrip() == before and before[-1] in '"0123456789el]}', where
        lines[line - 1] = before + "," + after
    elif "trailing comma" in error.message:
        assert after.startswith(","), where
        lines[line - 1] = before + after[1:]
    else:
        pytest.fail(f"not a typo the seeds make: {where}")
    return "\n".join(lines)
