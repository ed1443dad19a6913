"""herald.journey_documents: a document's problems come by step and field, all at once."""

from __future__ import annotations

from typing import Any

import pytest

from herald.core.journeys import JourneyError
from herald.errors import InvalidJourney
from herald.journey_documents import from_value, from_yaml


def document(**steps: Any) -> dict[str, Any]:
    return {"name": "x", "trigger": {"event": "e"}, "start": "a", "steps": steps}


def problems_of(value: Any) -> list[JourneyError]:
    with pytest.raises(InvalidJourney) as raised:
        from_value(value)
    found: list[JourneyError] = raised.value.details["problems"]
    return found


def test_decode_problems_inside_steps_name_each_step() -> None:
    value = document(a={"type": "webhook", "url": 1}, b={"type": "exit", "retries": 3})

    assert problems_of(value) == [
        JourneyError("expected a string, got a number", step="a", field="url"),
        JourneyError("Object contains unknown field `retries`", step="b"),
    ]


def test_an_unknown_step_type_lists_the_types() -> None:
    [problem] = problems_of(document(a={"type": "sms"}))

    assert (problem.step, problem.field) == ("a", "type")
    assert (
        "webhook, email, delay, wait_for_event, branch, update_attributes, exit" in problem.message
    )


def test_yaml_syntax_errors_give_line_and_column() -> None:
    with pytest.raises(InvalidJourney) as raised:
        from_yaml("name: x\n  trigger: [\n")

    assert "line 2, column" in raised.value.message


def test_a_document_that_is_not_a_mapping_says_what_it_should_be() -> None:
    with pytest.raises(InvalidJourney) as raised:
        from_yaml("- just\n- a list\n")

    assert "mapping (name, trigger, start, steps)" in raised.value.message
