"""A workspace's customer schema: declared attribute types and the primary key."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from herald.errors import InvalidRequest


class AttributeType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    EMAIL = "email"
    LIST = "list"
    OBJECT = "object"


KEY_TYPES = (AttributeType.STRING, AttributeType.EMAIL, AttributeType.NUMBER)
MAX_KEY_CHARS = 512  # a key is an id, not a text: longer values cannot identify a customer
ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

# Deliberately loose: one "@" with text on both sides and a dot in the domain.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class CustomerSchema(msgspec.Struct, frozen=True):
    """Declared customer attributes; `primary_key` names the attribute `$identify` sets."""

    primary_key: str | None = "email"
    attributes: dict[str, AttributeType] = msgspec.field(
        default_factory=lambda: {"email": AttributeType.EMAIL}
    )

    def check(self, name: str, value: Any) -> str | None:
        """Why `value` cannot be attribute `name`; None when it fits (or is undeclared)."""
        declared = self.attributes.get(name)
        if declared is None or value is None:
            return None
        return check_value(declared, value)

    def with_attribute(self, name: str, declared: AttributeType) -> CustomerSchema:
        """This schema with attribute `name` declared as `declared` (added or retyped)."""
        if not ATTRIBUTE_NAME.fullmatch(name):
            raise InvalidRequest(
                f"Attribute name {name[:80]!r} is not usable: use 1 to 64 letters, digits or '_', "
                "starting with a letter ('_id' and '$' names are Herald's own).",
                field="name",
            )
        if name == self.primary_key and declared not in KEY_TYPES:
            raise InvalidRequest(
                f"{name!r} is the primary key, so it must stay one of "
                f"{', '.join(KEY_TYPES)}; set another primary key first.",
                field="type",
            )
        return CustomerSchema(self.primary_key, {**self.attributes, name: declared})

    def with_primary_key(self, name: str) -> CustomerSchema:
        """This schema with `name` (a declared string, email or number attribute) as primary key."""
        declared = self.attributes.get(name)
        if declared is None:
            raise InvalidRequest(
                f"{name!r} is not a declared attribute; declare it first "
                f"(`herald schema add-attribute`), as one of {', '.join(KEY_TYPES)}.",
                field="name",
            )
        if declared not in KEY_TYPES:
            raise InvalidRequest(
                f"{name!r} is declared as {declared.value}; a primary key must be one of "
                f"{', '.join(KEY_TYPES)}.",
                field="name",
            )
        return CustomerSchema(name, self.attributes)


def check_value(declared: AttributeType, value: Any) -> str | None:
    """Return why `value` is not of type `declared`, or None when it is."""
    match declared:
        case AttributeType.STRING if isinstance(value, str):
            return None
        case AttributeType.NUMBER if isinstance(value, int | float) and not isinstance(value, bool):
            return None
        case AttributeType.BOOLEAN if isinstance(value, bool):
            return None
        case AttributeType.LIST if isinstance(value, list):
            return None
        case AttributeType.OBJECT if isinstance(value, dict):
            return None
        case AttributeType.EMAIL if isinstance(value, str) and _EMAIL.match(value):
            return None
        case AttributeType.DATETIME if isinstance(value, str) and _is_iso_datetime(value):
            return None
    return f"expected {_describe(declared)}, got {described_type(value)} {_preview(value)}"


def json_type_name(value: Any) -> str:
    """Name a decoded JSON value's type the way JSON users say it."""
    match value:
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
    return "null"


def described_type(value: Any) -> str:
    """'a string', 'an array', 'null': a value's JSON type with its article, for messages."""
    name = json_type_name(value)
    return name if name == "null" else ("an " if name[0] in "aeiou" else "a ") + name


def _describe(declared: AttributeType) -> str:
    return {
        AttributeType.EMAIL: "an email address like 'ada@example.com'",
        AttributeType.DATETIME: "an ISO-8601 datetime like '2024-03-15T02:31:05Z'",
        AttributeType.LIST: "an array",
        AttributeType.OBJECT: "an object",
    }.get(declared, f"a {declared.value}")


def _preview(value: Any) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _is_iso_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
