"""The SDK's events, built at the call site: the seeds' wire format, and bad input refused at
once with an error naming the argument (nothing queued, nothing dropped later)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from herald_client import Client, ClientClosed, Config
from herald_client.events import EventFactory, QueuedEvent, UuidSequence, format_timestamp

from tests.sdk.conftest import WRITE_KEY

SEED_CUSTOMER = "FBBBCB26-B75E-4342-B40B-568BF879F7C5"
NOWHERE = "http://127.0.0.1:9"  # nothing is sent in these tests: the clients are closed at once
SEED_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def wire(event: QueuedEvent) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(event.data)
    return decoded


def factory() -> EventFactory:
    return EventFactory(max_event_bytes=65_536)


def test_identify_is_the_seeds_identify_event() -> None:
    event = factory().identify(SEED_CUSTOMER, "example@youremail.com", "_id", None)

    sent = wire(event)

    assert {
        key: sent[key] for key in ("event", "source", "correlationKey", "correlationValue")
    } == {
        "event": "$identify",
        "source": "custom",
        "correlationKey": "_id",
        "correlationValue": SEED_CUSTOMER,
    }
    assert sent["payload"] == {"distinct_id": "example@youremail.com"}
    assert SEED_TIMESTAMP.match(sent["timestamp"])
    assert sent["uuid"] == event.uuid


def test_track_carries_the_payload_and_the_given_timestamp() -> None:
    moment = dt.datetime(2024, 3, 15, 3, 31, 5, 295000, tzinfo=dt.timezone(dt.timedelta(hours=1)))

    sent = wire(factory().track(SEED_CUSTOMER, "purchase", {"cart": True}, "_id", moment))

    assert sent["event"] == "purchase"
    assert sent["payload"] == {"cart": True}
    assert sent["timestamp"] == "2024-03-15T02:31:05.295Z"


def test_set_is_a_set_event_with_the_traits_as_payload() -> None:
    sent = wire(factory().set(SEED_CUSTOMER, {"plan": "pro", "age": 42}, "email", None))

    assert sent["event"] == "$set"
    assert sent["correlationKey"] == "email"
    assert sent["payload"] == {"plan": "pro", "age": 42}


def test_payload_values_with_one_obvious_json_form_are_converted() -> None:
    when = dt.datetime(2024, 3, 15, 2, 31, 5, tzinfo=dt.UTC)
    order = uuid.UUID("F451DF0A-D713-4076-AE20-41AB1641BC98")

    sent = wire(
        factory().track("c", "paid", {"at": when, "day": when.date(), "order": order}, "_id", None)
    )

    assert sent["payload"] == {
        "at": "2024-03-15T02:31:05+00:00",
        "day": "2024-03-15",
        "order": "f451df0a-d713-4076-ae20-41ab1641bc98",
    }


def test_text_is_escaped_and_kept_as_unicode() -> None:
    sent = wire(factory().track('quote " and \\ é', "ünïcode", {"name": "Zoë\n"}, "_id", None))

    assert sent["correlationValue"] == 'quote " and \\ é'
    assert sent["event"] == "ünïcode"
    assert sent["payload"] == {"name": "Zoë\n"}


def test_uuids_are_canonical_version_4_and_unique() -> None:
    first, second = UuidSequence(), UuidSequence()

    ids = [first.next() for _ in range(1000)] + [second.next() for _ in range(1000)]

    assert len(set(ids)) == 2000
    for text in ids[:3] + ids[-3:]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timestamp .* has no timezone"):
        format_timestamp(dt.datetime(2024, 3, 15, 2, 31, 5))


BadCall = Callable[[Client], object]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.track(None, "purchase"), TypeError, "correlation_value must be a non-empty"),
        (lambda c: c.track("", "purchase"), ValueError, "correlation_value is an empty string"),
        (lambda c: c.track("c", ""), ValueError, "event is an empty string"),
        (lambda c: c.track("c", 42), TypeError, "event must be a non-empty string, got int"),
        (lambda c: c.track("c", "e", ["cart"]), TypeError, "payload must be a dict"),
        (lambda c: c.track("c", "e", {"x": object()}), TypeError, "payload cannot be sent as JSON"),
        (lambda c: c.track("c", "e", {"x": {1, 2}}), TypeError, "payload cannot be sent as JSON"),
        (lambda c: c.track("c", "e", {"x": float("nan")}), ValueError, "payload cannot be sent"),
        (
            lambda c: c.track("c", "e", correlation_key=""),
            ValueError,
            "correlation_key is an empty",
        ),
        (lambda c: c.track("c", "e", timestamp="2024-03-15"), TypeError, "timestamp must be a"),
        (lambda c: c.track("c", "e", {"big": "x" * 70_000}), ValueError, "65,536 bytes per event"),
        (lambda c: c.identify("c", None), TypeError, "distinct_id must be a non-empty string"),
        (lambda c: c.identify("c", ""), ValueError, "distinct_id is an empty string"),
        (lambda c: c.identify("c", True), TypeError, "distinct_id must be"),
        (lambda c: c.identify("c", "a@b.co", ["plan"]), TypeError, "traits must be a dict"),
        (lambda c: c.set("c", {}), ValueError, "traits is empty"),
        (lambda c: c.set("c", "plan=pro"), TypeError, "traits must be a dict"),
    ],
)
def test_bad_arguments_raise_at_the_call_naming_the_argument(
    call: BadCall, error: type[Exception], message: str
) -> None:
    with Client(WRITE_KEY, host=NOWHERE) as client:
        with pytest.raises(error, match=message):
            call(client)

        assert client.stats().queued == 0


def test_a_payload_that_contains_itself_is_refused() -> None:
    payload: dict[str, Any] = {}
    payload["self"] = payload

    with Client(WRITE_KEY, host=NOWHERE) as client, pytest.raises(ValueError, match="itself"):
        client.track("c", "loop", payload)


def test_identify_with_bad_traits_queues_nothing() -> None:
    with Client(WRITE_KEY, host=NOWHERE) as client:
        with pytest.raises(TypeError, match="payload cannot be sent as JSON"):
            client.identify("c", "a@b.co", {"when": object()})

        assert client.stats().queued == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"api_key": ""}, "api_key is an empty string"),
        ({"host": "127.0.0.1:8000"}, "is not a Herald URL"),
        ({"host": "ftp://herald"}, "is not a Herald URL"),
        ({"host": "http://herald:port"}, "is not a Herald URL"),
        ({"config": Config(source="")}, "source is an empty string"),
    ],
)
def test_bad_client_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Client(**{"api_key": WRITE_KEY, "host": NOWHERE, **arguments})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"overflow": "drop_newest"}, "overflow must be one of 'block', 'drop_oldest'"),
        ({"max_queue_events": 0}, "max_queue_events must be a whole number of 1 or more"),
        ({"max_batch_bytes": 1.5}, "max_batch_bytes must be a whole number"),
        ({"flush_interval_s": -1}, "flush_interval_s must be a number of seconds"),
        ({"timeout_s": float("inf")}, "timeout_s must be a number of seconds"),
        ({"max_retries": -1}, "max_retries must be 0 or more, or None"),
        ({"gzip_level": 10}, "gzip_level must be 0 to 9"),
    ],
)
def test_bad_config_is_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config(**fields)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"api_key": None}, "api_key must be a non-empty string, got NoneType"),
        ({"host": 8000}, "host must be a URL string, got int"),
        ({"config": {"max_retries": 3}}, "config must be a herald_client.Config, got dict"),
    ],
)
def test_client_arguments_of_the_wrong_type_are_refused(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Client(**{"api_key": WRITE_KEY, "host": NOWHERE, **arguments})


def test_a_closed_client_refuses_events() -> None:
    client = Client(WRITE_KEY, host=NOWHERE)
    client.close()

    with pytest.raises(ClientClosed, match="closed"):
        client.track("c", "purchase")
