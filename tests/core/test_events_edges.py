"""Edges of the wire schema: bytes that are not UTF-8, the ends of the calendar, uuid spellings."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from herald.core.events import (
    check_batch,
    check_event,
    decode_envelope,
    decode_single,
    parse_timestamp,
)
from herald.core.schema import CustomerSchema
from herald.errors import InvalidJSON
from tests.core.test_events import EVENT, LIMITS, WORKSPACE, check, errors_of, sequential_ids

LATIN1_E = b"\xe9"  # "é" in Latin-1: not UTF-8 on its own


def raw_event(**fields: str) -> bytes:
    """An event as JSON text, with `fields` spliced in verbatim (so they can hold bad bytes)."""
    body = msgspec.json.encode(EVENT)[:-1]
    for name, text in fields.items():
        body += b',"' + name.encode() + b'":' + text.encode("latin-1")
    return body + b"}"


def test_an_event_with_bytes_that_are_not_utf8_is_rejected_alone() -> None:
    bad = raw_event(payload='{"name":"Ren' + LATIN1_E.decode("latin-1") + '"}')
    body = b'{"batch":[' + msgspec.json.encode(EVENT) + b"," + bad + b"]}"

    checked = check(body)

    assert len(checked.accepted) == 1
    assert [index for index, _, _ in errors_of(checked)] == [1]
    assert "not UTF-8" in errors_of(checked)[0][2]


def test_a_bad_byte_in_an_event_keeps_the_uuid_it_was_sent_with_in_the_error() -> None:
    bad = raw_event(
        uuid='"F451DF0A-D713-4076-AE20-41AB1641BC98"',
        payload='{"name":"' + LATIN1_E.decode("latin-1") + '"}',
    )

    _, errors = check_event(bad, index=0, schema=CustomerSchema())

    assert [error.uuid for error in errors] == ["F451DF0A-D713-4076-AE20-41AB1641BC98"]


def test_a_bad_byte_in_the_uuid_itself_leaves_the_error_without_a_uuid() -> None:
    bad = raw_event(
        payload='{"a":"' + LATIN1_E.decode("latin-1") + '"}',
        uuid='"' + LATIN1_E.decode("latin-1") + '"',
    )

    _, errors = check_event(bad, index=0, schema=CustomerSchema())

    assert len(errors) == 1
    assert errors[0].uuid is None


def test_a_sent_at_with_bytes_that_are_not_utf8_makes_the_body_unusable() -> None:
    body = b'{"batch":[' + msgspec.json.encode(EVENT) + b'],"sent_at":"' + LATIN1_E + b'"}'

    with pytest.raises(InvalidJSON, match="not UTF-8"):
        decode_envelope(body)


def test_a_single_event_with_bytes_that_are_not_utf8_is_unusable() -> None:
    with pytest.raises(InvalidJSON, match="not UTF-8"):
        decode_single(raw_event(payload='{"a":"' + LATIN1_E.decode("latin-1") + '"}'))


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_outside_the_utc_calendar_is_rejected_naming_the_field(text: str) -> None:
    checked = check(msgspec.json.encode({"batch": [{**EVENT, "timestamp": text}]}))

    assert checked.accepted == []
    assert [
        (field, "outside years 1-9999" in message) for _, field, message in errors_of(checked)
    ] == [("timestamp", True)]


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59Z"])
def test_a_timestamp_at_the_edge_of_the_calendar_in_utc_is_accepted(text: str) -> None:
    checked = check(msgspec.json.encode({"batch": [{**EVENT, "timestamp": text}]}))

    assert len(checked.accepted) == 1


def test_parsing_keeps_the_offset_the_timestamp_was_sent_with() -> None:
    parsed = parse_timestamp("2024-03-15T02:31:05+02:00")

    assert parsed.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    "spelling",
    [
        "F451DF0A-D713-4076-AE20-41AB1641BC98",
        "f451df0a-d713-4076-ae20-41ab1641bc98",
        "F451DF0AD7134076AE2041AB1641BC98",
    ],
)
def test_every_uuid_spelling_herald_accepts_gives_the_same_id(spelling: str) -> None:
    checked = check(msgspec.json.encode({"batch": [{**EVENT, "uuid": spelling}]}))

    assert [event.id.hex() for event in checked.accepted] == ["f451df0ad7134076ae2041ab1641bc98"]


@pytest.mark.parametrize(
    "spelling",
    [
        "F451DF0A-D713-4076-AE20-41AB1641BC9Z",  # not hex
        "F451DF0AD7134076AE2041AB1641BC9 ",  # a space where a digit belongs
        "F451-DF0AD713-4076-AE20-41AB1641BC98",  # hyphens in the wrong places
        "F451DF0A-D713-4076-AE20-41AB1641BC98-0",
    ],
)
def test_a_uuid_that_only_looks_like_one_is_rejected_naming_the_field(spelling: str) -> None:
    checked = check(msgspec.json.encode({"batch": [{**EVENT, "uuid": spelling}]}))

    assert checked.accepted == []
    assert [field for _, field, _ in errors_of(checked)] == ["uuid"]


def test_an_event_needing_the_full_check_does_not_change_its_neighbours_ids() -> None:
    body = msgspec.json.encode(
        {"batch": [EVENT, {**EVENT, "uuid": "F451DF0AD7134076AE2041AB1641BC98"}, EVENT]}
    )

    checked = check_batch(
        decode_envelope(body),
        workspace_id=WORKSPACE,
        schema=CustomerSchema(),
        limits=LIMITS,
        new_id=sequential_ids(),
    )

    assert [event.id for event in checked.accepted] == [
        (1).to_bytes(16, "big"),
        bytes.fromhex("F451DF0AD7134076AE2041AB1641BC98"),
        (2).to_bytes(16, "big"),
    ]


def test_a_body_starting_with_a_utf8_byte_order_mark_is_read_as_json() -> None:
    body = b"\xef\xbb\xbf" + msgspec.json.encode({"batch": [EVENT]})

    checked = check(body)

    assert len(checked.accepted) == 1


def test_a_single_event_starting_with_a_byte_order_mark_is_read_as_json() -> None:
    envelope = decode_single(b"\xef\xbb\xbf" + msgspec.json.encode(EVENT))

    assert bytes(envelope.batch[0]) == msgspec.json.encode(EVENT)


def test_fields_outside_the_schema_are_accepted_with_a_warning_naming_each() -> None:
    segment_style = {**EVENT, "properties": {"plan": "pro"}, "userId": "u1"}
    body = msgspec.json.encode({"batch": [EVENT, segment_style]})

    checked = check(body)

    assert len(checked.accepted) == 2
    assert [(w.index, w.field) for w in checked.warnings] == [(1, "properties"), (1, "userId")]
    assert all("payload" in warning.message for warning in checked.warnings)


def test_events_inside_the_schema_get_no_warning() -> None:
    body = msgspec.json.encode({"batch": [EVENT, {**EVENT, "event": "$set", "payload": {}}]})

    checked = check(body)

    assert checked.warnings == []


def test_an_event_with_a_field_name_that_is_not_utf8_is_rejected_alone() -> None:
    bad = msgspec.json.encode(EVENT)[:-1] + b',"\x80extra":1}'
    body = b'{"batch":[' + msgspec.json.encode(EVENT) + b"," + bad + b"]}"

    checked = check(body)

    assert len(checked.accepted) == 1
    assert [(index, "not UTF-8" in message) for index, _, message in errors_of(checked)] == [
        (1, True)
    ]
