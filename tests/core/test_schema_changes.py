"""Editing a customer schema: declaring attributes and choosing the primary key."""

from __future__ import annotations

import pytest

from herald.core.schema import AttributeType, CustomerSchema
from herald.errors import InvalidRequest


def test_declaring_an_attribute_adds_it_and_keeps_the_rest() -> None:
    schema = CustomerSchema().with_attribute("plan", AttributeType.STRING)

    assert schema.attributes == {"email": AttributeType.EMAIL, "plan": AttributeType.STRING}
    assert schema.primary_key == "email"


def test_declaring_an_attribute_again_changes_its_type() -> None:
    schema = CustomerSchema().with_attribute("age", AttributeType.STRING)

    retyped = schema.with_attribute("age", AttributeType.NUMBER)

    assert retyped.attributes["age"] is AttributeType.NUMBER


@pytest.mark.parametrize("name", ["", "_id", "$set", "9lives", "two words", "x" * 65])
def test_an_unusable_attribute_name_is_refused_naming_the_rule(name: str) -> None:
    with pytest.raises(InvalidRequest, match="letters, digits or '_'") as raised:
        CustomerSchema().with_attribute(name, AttributeType.STRING)

    assert raised.value.details["field"] == "name"


def test_the_primary_key_cannot_be_retyped_to_a_type_a_key_cannot_have() -> None:
    with pytest.raises(InvalidRequest, match="set another primary key first"):
        CustomerSchema().with_attribute("email", AttributeType.LIST)


def test_the_primary_key_can_move_to_a_declared_string_attribute() -> None:
    schema = CustomerSchema().with_attribute("user_id", AttributeType.STRING)

    moved = schema.with_primary_key("user_id")

    assert moved.primary_key == "user_id"
    assert moved.check("user_id", 5) is not None


def test_the_primary_key_cannot_be_an_undeclared_attribute() -> None:
    with pytest.raises(InvalidRequest, match="not a declared attribute"):
        CustomerSchema().with_primary_key("user_id")


def test_the_primary_key_cannot_be_a_list_attribute() -> None:
    schema = CustomerSchema().with_attribute("tags", AttributeType.LIST)

    with pytest.raises(InvalidRequest, match="declared as list"):
        schema.with_primary_key("tags")
