"""Conditions over attributes: customer search now, journey triggers and branches later.

A condition names a field, an operator and (for most operators) a value; `matches` tells whether a
mapping of attributes satisfies it. Comparisons never raise: a value of another type simply does not
match (`age > 30` is false for a customer whose age is the string "thirty").
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import msgspec


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"
    CONTAINS = "contains"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"


UNARY = (Op.EXISTS, Op.NOT_EXISTS)


class Condition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`field op value`, e.g. {"field": "plan", "op": "eq", "value": "pro"}."""

    field: str
    op: Op
    value: Any = None

    def problem(self) -> str | None:
        """Why this condition cannot be evaluated as written; None when it can."""
        if not self.field:
            return "field must name an attribute"
        if self.op in UNARY:
            return None
        if self.value is None:
            return f"{self.op.value} needs a value"
        if self.op is Op.IN and not isinstance(self.value, list):
            return "in needs a list of values"
        if self.op in (Op.GT, Op.GTE, Op.LT, Op.LTE) and not _comparable(self.value):
            return f"{self.op.value} needs a number or a string to compare with"
        return None


def matches(condition: Condition, values: Mapping[str, Any]) -> bool:
    """Whether `values` (attributes, or an event's payload) satisfy `condition`.

    A dotted field (`payload.plan.name`) walks into nested objects.
    """
    present, actual = _lookup(values, condition.field)
    expected = condition.value
    match condition.op:
        case Op.EXISTS:
            return present and actual is not None
        case Op.NOT_EXISTS:
            return not present or actual is None
        case Op.EQ:
            return present and _same(actual, expected)
        case Op.NE:
            return not (present and _same(actual, expected))
        case Op.CONTAINS:
            return _contains(actual, expected)
        case Op.IN:
            return present and any(_same(actual, option) for option in expected)
    return _compare(condition.op, actual, expected)


def matches_all(conditions: list[Condition], values: Mapping[str, Any]) -> bool:
    return all(matches(condition, values) for condition in conditions)


def matches_any(conditions: list[Condition], values: Mapping[str, Any]) -> bool:
    return any(matches(condition, values) for condition in conditions)


def _lookup(values: Mapping[str, Any], field: str) -> tuple[bool, Any]:
    """(present, value) of `field` in `values`; a dotted field walks into nested objects.

    At every level a key that itself contains dots is tried whole first (`customer.address.city`
    finds the attribute `address.city`), then split at the dots, longest key first.
    """
    if field in values:
        return True, values[field]
    parts = field.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        inner = values.get(".".join(parts[:cut]))
        if isinstance(inner, Mapping):
            present, found = _lookup(inner, ".".join(parts[cut:]))
            if present:
                return True, found
    return False, None


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return bool(actual == expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return expected in actual
    if isinstance(actual, list):
        return any(_same(item, expected) for item in actual)
    return False


def _comparable(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _compare(op: Op, actual: Any, expected: Any) -> bool:
    if not (_comparable(actual) and _comparable(expected)):
        return False
    if isinstance(actual, str) != isinstance(expected, str):
        return False
    match op:
        case Op.GT:
            return bool(actual > expected)
        case Op.GTE:
            return bool(actual >= expected)
        case Op.LT:
            return bool(actual < expected)
    return bool(actual <= expected)
