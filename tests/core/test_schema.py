"""A customer schema: which values fit a declared attribute, and how a misfit is told."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from herald.core.schema import (
    AttributeType,
    CustomerSchema,
    check_value,
    described_type,
    json_type_name,
)


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        (AttributeType.STRING, "Ada"),
        (AttributeType.STRING, ""),
        (AttributeType.NUMBER, 36),
        (AttributeType.NUMBER, -0.5),
        (AttributeType.BOOLEAN, False),
        (AttributeType.DATETIME, "2024-03-15T02:31:05Z"),
        (AttributeType.DATETIME, "2024-03-15T02:31:05.295+02:00"),
        (AttributeType.DATETIME, "2024-03-15"),
        (AttributeType.EMAIL, "ada@example.com"),
        (AttributeType.EMAIL, "ada.lovelace+news@mail.example.co.uk"),
        (AttributeType.LIST, []),
        (AttributeType.LIST, ["beta", 1]),
        (AttributeType.OBJECT, {}),
        (AttributeType.OBJECT, {"city": "London"}),
    ],
)
def test_a_value_of_the_declared_type_fits(declared: AttributeType, value: Any) -> None:
    problem = check_value(declared, value)

    assert problem is None


@pytest.mark.parametrize(
    ("declared", "value", "problem"),
    [
        (AttributeType.STRING, 5, "expected a string, got a number 5"),
        (AttributeType.STRING, ["Ada"], 'expected a string, got an array ["Ada"]'),
        (AttributeType.NUMBER, "36", 'expected a number, got a string "36"'),
        (AttributeType.NUMBER, True, "expected a number, got a boolean true"),
        (AttributeType.BOOLEAN, 1, "expected a boolean, got a number 1"),
        (AttributeType.BOOLEAN, "true", 'expected a boolean, got a string "true"'),
        (AttributeType.LIST, {"a": 1}, 'expected an array, got an object {"a":1}'),
        (AttributeType.OBJECT, [], "expected an object, got an array []"),
        (
            AttributeType.EMAIL,
            "ada",
            "expected an email address like 'ada@example.com', got a string \"ada\"",
        ),
        (
            AttributeType.EMAIL,
            "ada@example",
            "expected an email address like 'ada@example.com', got a string \"ada@example\"",
        ),
        (
            AttributeType.EMAIL,
            "ada lovelace@example.com",
            "expected an email address like 'ada@example.com', "
            'got a string "ada lovelace@example.com"',
        ),
        (
            AttributeType.EMAIL,
            "a@b@example.com",
            "expected an email address like 'ada@example.com', got a string \"a@b@example.com\"",
        ),
        (
            AttributeType.EMAIL,
            5,
            "expected an email address like 'ada@example.com', got a number 5",
        ),
        (
            AttributeType.DATETIME,
            "last week",
            "expected an ISO-8601 datetime like '2024-03-15T02:31:05Z', got a string \"last week\"",
        ),
        (
            AttributeType.DATETIME,
            1710469865,
            "expected an ISO-8601 datetime like '2024-03-15T02:31:05Z', got a number 1710469865",
        ),
    ],
)
def test_a_value_of_another_type_is_refused_showing_the_type_wanted_and_the_value(
    declared: AttributeType, value: Any, problem: str
) -> None:
    found = check_value(declared, value)

    assert found == problem


def test_a_long_refused_value_is_shortened_in_the_message() -> None:
    value = "x" * 100

    problem = check_value(AttributeType.NUMBER, value)

    assert problem == 'expected a number, got a string "' + "x" * 36 + "..."


def test_the_default_schema_identifies_customers_by_email() -> None:
    schema = CustomerSchema()

    assert schema.primary_key == "email"
    assert schema.attributes == {"email": AttributeType.EMAIL}


def test_default_schemas_do_not_share_their_attributes() -> None:
    first, second = CustomerSchema(), CustomerSchema()

    first.attributes["age"] = AttributeType.NUMBER

    assert second.attributes == {"email": AttributeType.EMAIL}


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("age", 36, None),
        ("age", None, None),
        ("nickname", ["anything"], None),
        ("age", "36", 'expected a number, got a string "36"'),
    ],
)
def test_schema_check_refuses_only_a_declared_attribute_of_another_type(
    name: str, value: Any, problem: str | None
) -> None:
    schema = CustomerSchema(attributes={"age": AttributeType.NUMBER})

    found = schema.check(name, value)

    assert found == problem


def test_a_schema_round_trips_through_json_with_types_by_name() -> None:
    text = b'{"primary_key":"user_id","attributes":{"user_id":"string","vip":"boolean"}}'

    schema = msgspec.json.decode(text, type=CustomerSchema)

    assert schema == CustomerSchema(
        primary_key="user_id",
        attributes={"user_id": AttributeType.STRING, "vip": AttributeType.BOOLEAN},
    )
    assert msgspec.json.encode(schema) == text


def test_a_schema_with_an_unknown_attribute_type_is_refused() -> None:
    text = b'{"primary_key": null, "attributes": {"age": "integer"}}'

    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.json.decode(text, type=CustomerSchema)

    assert "Invalid enum value 'integer'" in str(raised.value)


@pytest.mark.parametrize(
    ("value", "name", "described"),
    [
        ("text", "string", "a string"),
        (1, "number", "a number"),
        (1.5, "number", "a number"),
        (True, "boolean", "a boolean"),
        ([], "array", "an array"),
        ({}, "object", "an object"),
        (None, "null", "null"),
    ],
)
def test_json_values_are_named_as_json_users_say_it(value: Any, name: str, described: str) -> None:
    type_name, with_article = json_type_name(value), described_type(value)

    assert (type_name, with_article) == (name, described)
