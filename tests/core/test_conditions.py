"""Conditions over attributes: what each operator matches, and which conditions are unusable."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from herald.core.conditions import Condition, Op, matches, matches_all, matches_any

ADA: dict[str, Any] = {
    "plan": "pro",
    "age": 36,
    "score": 9.5,
    "vip": True,
    "one": 1,
    "tags": ["beta", 1, True],
    "city": "London",
    "nickname": None,
    "profile": {"tier": 2},
}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        # eq: same value, with booleans never equal to numbers
        ("plan", Op.EQ, "pro", True),
        ("plan", Op.EQ, "Pro", False),
        ("age", Op.EQ, 36, True),
        ("age", Op.EQ, 36.0, True),
        ("age", Op.EQ, "36", False),
        ("vip", Op.EQ, True, True),
        ("vip", Op.EQ, 1, False),
        ("one", Op.EQ, True, False),
        ("one", Op.EQ, 1, True),
        ("tags", Op.EQ, ["beta", 1, True], True),
        ("profile", Op.EQ, {"tier": 2}, True),
        ("missing", Op.EQ, "pro", False),
        # ne: anything but eq, a missing attribute included
        ("plan", Op.NE, "pro", False),
        ("plan", Op.NE, "free", True),
        ("vip", Op.NE, 1, True),
        ("missing", Op.NE, "pro", True),
        # exists / not_exists: null counts as absent
        ("plan", Op.EXISTS, None, True),
        ("nickname", Op.EXISTS, None, False),
        ("missing", Op.EXISTS, None, False),
        ("plan", Op.NOT_EXISTS, None, False),
        ("nickname", Op.NOT_EXISTS, None, True),
        ("missing", Op.NOT_EXISTS, None, True),
        # contains: a substring of a string, an item of a list
        ("city", Op.CONTAINS, "ond", True),
        ("city", Op.CONTAINS, "paris", False),
        ("tags", Op.CONTAINS, "beta", True),
        ("tags", Op.CONTAINS, 1, True),
        ("tags", Op.CONTAINS, True, True),
        ("tags", Op.CONTAINS, "alpha", False),
        ("city", Op.CONTAINS, 1, False),
        ("age", Op.CONTAINS, 3, False),
        ("profile", Op.CONTAINS, "tier", False),
        ("missing", Op.CONTAINS, "x", False),
        # in: equal to one of the options
        ("plan", Op.IN, ["free", "pro"], True),
        ("plan", Op.IN, ["free"], False),
        ("plan", Op.IN, [], False),
        ("vip", Op.IN, [1], False),
        ("vip", Op.IN, [True], True),
        ("age", Op.IN, [36.0], True),
        ("missing", Op.IN, [None], False),
        # gt / gte / lt / lte: numbers with numbers, strings with strings
        ("age", Op.GT, 35, True),
        ("age", Op.GT, 36, False),
        ("age", Op.GTE, 36, True),
        ("age", Op.GTE, 36.5, False),
        ("age", Op.LT, 37, True),
        ("age", Op.LT, 36, False),
        ("age", Op.LTE, 36, True),
        ("age", Op.LTE, 35.9, False),
        ("score", Op.GT, 9, True),
        ("city", Op.GT, "Berlin", True),
        ("city", Op.LT, "Berlin", False),
        ("city", Op.GTE, "London", True),
        ("city", Op.LTE, "London", True),
    ],
)
def test_an_operator_matches_as_documented(field: str, op: Op, value: Any, expected: bool) -> None:
    assert matches(Condition(field, op, value), ADA) is expected


@pytest.mark.parametrize("op", [Op.GT, Op.GTE, Op.LT, Op.LTE])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("city", 5),  # a string attribute against a number
        ("age", "30"),  # a number attribute against a string
        ("vip", 0),  # booleans are not ordered
        ("one", False),
        ("tags", 1),  # nor are lists, objects, null, or absence
        ("profile", 1),
        ("nickname", 1),
        ("missing", 1),
    ],
)
def test_an_ordering_between_different_types_matches_nothing(
    op: Op, field: str, value: Any
) -> None:
    assert matches(Condition(field, op, value), ADA) is False


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        (Condition("", Op.EXISTS), "field must name an attribute"),
        (Condition("", Op.EQ, 1), "field must name an attribute"),
        (Condition("plan", Op.EQ), "eq needs a value"),
        (Condition("plan", Op.NE), "ne needs a value"),
        (Condition("plan", Op.CONTAINS), "contains needs a value"),
        (Condition("plan", Op.IN), "in needs a value"),
        (Condition("plan", Op.IN, "pro"), "in needs a list of values"),
        (Condition("plan", Op.IN, {"pro": 1}), "in needs a list of values"),
        (Condition("age", Op.GT, True), "gt needs a number or a string to compare with"),
        (Condition("age", Op.GTE, [1]), "gte needs a number or a string to compare with"),
        (Condition("age", Op.LT, {"n": 1}), "lt needs a number or a string to compare with"),
        (Condition("age", Op.LTE), "lte needs a value"),
    ],
)
def test_an_unusable_condition_says_why(condition: Condition, problem: str) -> None:
    assert condition.problem() == problem


@pytest.mark.parametrize(
    "condition",
    [
        Condition("plan", Op.EXISTS),
        Condition("plan", Op.NOT_EXISTS),
        Condition("plan", Op.EXISTS, "ignored"),
        Condition("plan", Op.EQ, "pro"),
        Condition("plan", Op.EQ, False),
        Condition("plan", Op.EQ, 0),
        Condition("plan", Op.NE, ""),
        Condition("tags", Op.CONTAINS, "beta"),
        Condition("plan", Op.IN, []),
        Condition("age", Op.GT, 30),
        Condition("age", Op.GTE, 30.5),
        Condition("city", Op.LT, "M"),
        Condition("city", Op.LTE, ""),
    ],
)
def test_a_usable_condition_has_no_problem(condition: Condition) -> None:
    assert condition.problem() is None


@pytest.mark.parametrize(
    ("conditions", "every", "some"),
    [
        ([], True, False),
        ([Condition("plan", Op.EQ, "pro")], True, True),
        ([Condition("plan", Op.EQ, "pro"), Condition("age", Op.GT, 30)], True, True),
        ([Condition("plan", Op.EQ, "pro"), Condition("age", Op.GT, 40)], False, True),
        ([Condition("plan", Op.EQ, "free"), Condition("age", Op.GT, 40)], False, False),
    ],
)
def test_matches_all_needs_every_condition_and_matches_any_one(
    conditions: list[Condition], every: bool, some: bool
) -> None:
    assert matches_all(conditions, ADA) is every
    assert matches_any(conditions, ADA) is some


def test_a_condition_decodes_from_json_with_the_value_optional() -> None:
    decoded = msgspec.json.decode(
        b'[{"field": "plan", "op": "eq", "value": "pro"}, {"field": "plan", "op": "exists"}]',
        type=list[Condition],
    )

    assert decoded == [Condition("plan", Op.EQ, "pro"), Condition("plan", Op.EXISTS)]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"field": "plan", "op": "like", "value": 1}', "Invalid enum value 'like'"),
        (b'{"field": "plan", "op": "eq", "value": 1, "values": 2}', "unknown field `values`"),
        (b'{"op": "eq", "value": 1}', "missing required field `field`"),
        (b'{"field": 1, "op": "eq", "value": 1}', "Expected `str`"),
    ],
)
def test_a_malformed_condition_does_not_decode(raw: bytes, words: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=words):
        msgspec.json.decode(raw, type=Condition)


def test_conditions_read_any_mapping_and_leave_it_unchanged() -> None:
    values = {"plan": "pro"}

    found = matches(Condition("plan", Op.EQ, "pro"), values)

    assert found is True
    assert values == {"plan": "pro"}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        # a dotted field walks into nested objects
        ("payload.plan.name", Op.EQ, "pro", True),
        ("payload.plan.name", Op.EQ, "free", False),
        ("payload.plan.seats", Op.GT, 4, True),
        ("payload.plan.seats", Op.LTE, 4, False),
        ("payload.plan.addons", Op.CONTAINS, "sso", True),
        ("payload.plan.name", Op.IN, ["team", "pro"], True),
        (
            "payload.plan",
            Op.EQ,
            {"name": "pro", "seats": 5, "addons": ["sso"], "trial": None},
            True,
        ),
        ("customer.address.geo.country", Op.EQ, "GB", True),
        ("payload.plan.name", Op.EXISTS, None, True),
        ("payload.plan.trial", Op.EXISTS, None, False),
        ("payload.plan.trial", Op.NOT_EXISTS, None, True),
        ("payload.plan.name", Op.NE, "free", True),
        # a missing step of the path: absent, whatever is below
        ("payload.plan.price", Op.EXISTS, None, False),
        ("payload.plan.price", Op.NOT_EXISTS, None, True),
        ("payload.plan.price", Op.NE, 10, True),
        ("payload.billing.currency", Op.EQ, "GBP", False),
        ("orders.plan.name", Op.EQ, "pro", False),
        # walking through something that is not an object: absent
        ("payload.plan.name.first", Op.EXISTS, None, False),
        ("payload.plan.seats.count", Op.EXISTS, None, False),
        ("payload.plan.trial.days", Op.EXISTS, None, False),
        ("payload.plan.addons.0", Op.EQ, "sso", False),  # lists are not indexed
        # empty parts name no key
        ("payload..plan", Op.EXISTS, None, False),
        ("payload.plan.", Op.EXISTS, None, False),
    ],
)
def test_a_dotted_field_walks_into_nested_objects(
    field: str, op: Op, value: Any, expected: bool
) -> None:
    values = {
        "payload": {"plan": {"name": "pro", "seats": 5, "addons": ["sso"], "trial": None}},
        "customer": {"address": {"geo": {"country": "GB"}}},
    }

    assert matches(Condition(field, op, value), values) is expected


@pytest.mark.parametrize(
    ("values", "op", "value", "expected"),
    [
        ({"a.b": 1, "a": {"b": 2}}, Op.EQ, 1, True),
        ({"a.b": 1, "a": {"b": 2}}, Op.EQ, 2, False),
        ({"a.b": None, "a": {"b": 2}}, Op.EXISTS, None, False),
        ({"a.b": 1}, Op.EQ, 1, True),
        ({"a": {"b": 2}}, Op.EQ, 2, True),
        ({"a.c": 1, "a": {"c": 2}}, Op.EXISTS, None, False),
    ],
)
def test_an_exact_key_with_a_dot_wins_over_walking_the_path(
    values: dict[str, Any], op: Op, value: Any, expected: bool
) -> None:
    assert matches(Condition("a.b", op, value), values) is expected


def test_a_dotted_field_leaves_the_nested_values_unchanged() -> None:
    values = {"payload": {"plan": {"name": "pro"}}}

    found = matches(Condition("payload.plan.name", Op.EQ, "pro"), values)

    assert found is True
    assert values == {"payload": {"plan": {"name": "pro"}}}


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("customer.address.city", {"customer": {"address.city": "Paris"}}),
        ("customer.address.city.name", {"customer": {"address": {"city.name": "Paris"}}}),
    ],
)
def test_a_key_with_a_dot_below_the_top_level_matches(field: str, values: dict[str, Any]) -> None:
    assert matches(Condition(field, Op.EQ, "Paris"), values) is True
