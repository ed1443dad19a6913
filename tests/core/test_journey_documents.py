"""Journey documents as users write them (JSON over the API, YAML with the CLI), and what a
document that does not decode says about where it is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable

import msgspec
import pytest
import yaml

from herald import journey_documents
from herald.core.conditions import Condition, Op
from herald.core.journeys import (
    Branch,
    BranchStep,
    Conditions,
    DelayStep,
    EmailStep,
    EntryRule,
    ExitStep,
    Journey,
    Trigger,
    UpdateStep,
    WaitStep,
    WebhookStep,
    validate,
)
from herald.errors import InvalidJourney

Decode = Callable[[str], Journey]


def from_json(text: str) -> Journey:
    return msgspec.json.decode(text, type=Journey)


def from_yaml(text: str) -> Journey:
    return msgspec.convert(yaml.safe_load(text), Journey)


DECODERS = [pytest.param(from_json, id="json"), pytest.param(from_yaml, id="yaml")]

# The example of herald/core/journeys.py's docstring, as a user would write it.
WELCOME_YAML = """
name: welcome
trigger: {event: signed_up, conditions: {all: [{field: customer.plan, op: eq, value: pro}]}}
entry: once
start: hello
steps:
  hello: {type: webhook, url: "https://example.com/hook", next: wait,
          body: '{"email": "{{ customer.email }}"}'}
  wait:  {type: delay, duration: 1d, next: bye}
  bye:   {type: email, subject: "Bye {{ customer.name }}", body: "..."}
"""

SEED_JSON = """
{
  "name": "identify then trigger_some_message",
  "trigger": {
    "event": "trigger_some_message",
    "source": "custom",
    "conditions": {"all": [{"field": "payload.some_value", "op": "eq", "value": "the_value"}]}
  },
  "entry": "not_while_inside",
  "timezone": "Europe/London",
  "start": "notify_backend",
  "steps": {
    "notify_backend": {
      "type": "webhook",
      "url": "https://hooks.example.com/herald",
      "method": "PUT",
      "headers": {"X-Customer": "{{ customer.id }}"},
      "body": "{\\"value\\": \\"{{ event.payload.some_value }}\\"}",
      "secret": "s3cret",
      "timeout_s": 5,
      "next": "send_email"
    },
    "send_email": {
      "type": "email",
      "subject": "Hello {{ customer.name | default: 'there' }}",
      "body": "You sent {{ event.payload.some_value }}."
    }
  }
}
"""

EVERY_STEP_YAML = """
name: every step
trigger: {event: signed_up}
entry: every_time
start: remember
steps:
  remember: {type: update_attributes, set: {welcomed: true, visits: 1}, next: morning}
  morning: {type: delay, until: "09:00", timezone: customer, next: await}
  await:
    type: wait_for_event
    event: purchase
    timeout: 3d
    conditions: {any: [{field: payload.total, op: gte, value: 10}]}
    next: which
    timeout_next: done
  which:
    type: branch
    branches:
      - when: {all: [{field: customer.plan, op: in, value: [pro, team]}]}
        next: done
    default: done
  done: {type: exit}
"""


def test_the_docstring_example_decodes_from_yaml_and_is_valid() -> None:
    journey = from_yaml(WELCOME_YAML)

    assert journey == Journey(
        name="welcome",
        trigger=Trigger(
            "signed_up", conditions=Conditions(all=[Condition("customer.plan", Op.EQ, "pro")])
        ),
        start="hello",
        steps={
            "hello": WebhookStep(
                url="https://example.com/hook",
                body='{"email": "{{ customer.email }}"}',
                next="wait",
            ),
            "wait": DelayStep(duration="1d", next="bye"),
            "bye": EmailStep(subject="Bye {{ customer.name }}", body="..."),
        },
        entry=EntryRule.ONCE,
    )
    assert validate(journey, check_template=lambda source: None) == []


@pytest.mark.parametrize("decode", DECODERS)
def test_the_seed_journey_decodes_from_json_or_yaml_and_is_valid(decode: Decode) -> None:
    journey = decode(SEED_JSON)

    assert journey.entry is EntryRule.NOT_WHILE_INSIDE
    assert journey.trigger == Trigger(
        "trigger_some_message",
        source="custom",
        conditions=Conditions(all=[Condition("payload.some_value", Op.EQ, "the_value")]),
    )
    assert journey.steps["notify_backend"] == WebhookStep(
        url="https://hooks.example.com/herald",
        method="PUT",
        headers={"X-Customer": "{{ customer.id }}"},
        body='{"value": "{{ event.payload.some_value }}"}',
        secret="s3cret",
        timeout_s=5.0,
        next="send_email",
    )
    assert validate(journey, check_template=lambda source: None) == []


def test_every_step_type_decodes_by_its_type_tag() -> None:
    journey = from_yaml(EVERY_STEP_YAML)

    assert journey.entry is EntryRule.EVERY_TIME
    assert journey.steps == {
        "remember": UpdateStep(set={"welcomed": True, "visits": 1}, next="morning"),
        "morning": DelayStep(until="09:00", timezone="customer", next="await"),
        "await": WaitStep(
            event="purchase",
            timeout="3d",
            conditions=Conditions(any=[Condition("payload.total", Op.GTE, 10)]),
            next="which",
            timeout_next="done",
        ),
        "which": BranchStep(
            branches=[
                Branch(Conditions(all=[Condition("customer.plan", Op.IN, ["pro", "team"])]), "done")
            ],
            default="done",
        ),
        "done": ExitStep(),
    }
    assert validate(journey, check_template=lambda source: None) == []


def test_a_journey_encodes_to_json_that_decodes_to_the_same_journey() -> None:
    journey = from_yaml(EVERY_STEP_YAML)

    assert from_json(msgspec.json.encode(journey).decode()) == journey


def document(step: str = '{"type": "exit"}', **top: str) -> str:
    """A JSON journey whose only step `a` is `step`; `top` replaces top-level fields (raw JSON)."""
    fields = {
        "name": '"welcome"',
        "trigger": '{"event": "signed_up"}',
        "start": '"a"',
        "steps": '{"a": ' + step + "}",
        **top,
    }
    return "{" + ", ".join(f'"{key}": {value}' for key, value in fields.items()) + "}"


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            document('{"type": "webhook", "url": 1}'),
            "Expected `str`, got `int` - at `$.steps[...].url`",
            id="url-int",
        ),
        pytest.param(
            document('{"type": "webhook", "url": "https://x", "timeout_s": "10"}'),
            "Expected `float`, got `str` - at `$.steps[...].timeout_s`",
            id="timeout_s-string",
        ),
        pytest.param(
            document('{"type": "webhook", "url": "https://x", "headers": {"X-N": 1}}'),
            "Expected `str`, got `int` - at `$.steps[...].headers[...]`",
            id="header-int",
        ),
        pytest.param(
            document('{"type": "delay", "duration": 90}'),
            "Expected `str | null`, got `int` - at `$.steps[...].duration`",
            id="duration-int",
        ),
        pytest.param(
            document('{"type": "branch", "branches": {"next": "a"}}'),
            "Expected `array`, got `object` - at `$.steps[...].branches`",
            id="branches-object",
        ),
        pytest.param(
            document('{"type": "update_attributes", "set": ["vip"]}'),
            "Expected `object`, got `array` - at `$.steps[...].set`",
            id="set-array",
        ),
        pytest.param(
            document(trigger='"signed_up"'),
            "Expected `object`, got `str` - at `$.trigger`",
            id="trigger-string",
        ),
        pytest.param(
            document(steps='[{"type": "exit"}]'),
            "Expected `object`, got `array` - at `$.steps`",
            id="steps-array",
        ),
        pytest.param(document(name="null"), "Expected `str`, got `null` - at `$.name`", id="name"),
        pytest.param(
            document(trigger='{"event": "e", "conditions": {"all": {"field": "payload.x"}}}'),
            "Expected `array`, got `object` - at `$.trigger.conditions.all`",
            id="conditions-object",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_reported_with_where_it_is(
    decode: Decode, text: str, error: str
) -> None:
    with pytest.raises(msgspec.ValidationError) as raised:
        decode(text)

    assert str(raised.value) == error


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            document(version="2"), "Object contains unknown field `version`", id="journey"
        ),
        pytest.param(
            document(trigger='{"event": "e", "filter": {}}'),
            "Object contains unknown field `filter` - at `$.trigger`",
            id="trigger",
        ),
        pytest.param(
            document('{"type": "webhook", "url": "https://x", "retries": 3}'),
            "Object contains unknown field `retries` - at `$.steps[...]`",
            id="webhook",
        ),
        pytest.param(
            document('{"type": "exit", "next": "b"}'),
            "Object contains unknown field `next` - at `$.steps[...]`",
            id="exit-has-no-next",
        ),
        pytest.param(
            document('{"type": "delay", "duration": "1h", "timeout": "2h"}'),
            "Object contains unknown field `timeout` - at `$.steps[...]`",
            id="delay",
        ),
        pytest.param(
            document(trigger='{"event": "e", "conditions": {"none": []}}'),
            "Object contains unknown field `none` - at `$.trigger.conditions`",
            id="conditions",
        ),
        pytest.param(
            document('{"type": "branch", "branches": [{"when": {}, "next": "a", "else": "a"}]}'),
            "Object contains unknown field `else` - at `$.steps[...].branches[0]`",
            id="branch",
        ),
        pytest.param(
            document(
                trigger='{"event": "e", "conditions": '
                '{"all": [{"field": "payload.x", "op": "eq", "values": 1}]}}'
            ),
            "Object contains unknown field `values` - at `$.trigger.conditions.all[0]`",
            id="condition",
        ),
    ],
)
def test_an_unknown_field_is_reported_with_where_it_is(
    decode: Decode, text: str, error: str
) -> None:
    with pytest.raises(msgspec.ValidationError) as raised:
        decode(text)

    assert str(raised.value) == error


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            document('{"type": "sms", "to": "x"}'),
            "Invalid value 'sms' - at `$.steps[...].type`",
            id="unknown-type",
        ),
        pytest.param(
            document('{"type": "wait", "event": "e", "timeout": "1h"}'),
            "Invalid value 'wait' - at `$.steps[...].type`",
            id="wait-is-wait_for_event",
        ),
        pytest.param(
            document('{"url": "https://x"}'),
            "Object missing required field `type` - at `$.steps[...]`",
            id="no-type",
        ),
        pytest.param(
            document('{"type": "email", "subject": "s"}'),
            "Object missing required field `body` - at `$.steps[...]`",
            id="email-without-body",
        ),
        pytest.param(
            document(entry='"sometimes"'),
            "Invalid enum value 'sometimes' - at `$.entry`",
            id="entry",
        ),
        pytest.param(
            document(
                trigger='{"event": "e", "conditions": {"all": [{"field": "x", "op": "like"}]}}'
            ),
            "Invalid enum value 'like' - at `$.trigger.conditions.all[0].op`",
            id="op",
        ),
    ],
)
def test_an_unknown_step_type_or_choice_is_reported_with_where_it_is(
    decode: Decode, text: str, error: str
) -> None:
    with pytest.raises(msgspec.ValidationError) as raised:
        decode(text)

    assert str(raised.value) == error


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize("missing", ["name", "trigger", "start", "steps"])
def test_a_journey_without_a_required_field_names_it(decode: Decode, missing: str) -> None:
    fields = {
        "name": "welcome",
        "trigger": {"event": "signed_up"},
        "start": "a",
        "steps": {"a": {"type": "exit"}},
    }
    del fields[missing]

    with pytest.raises(msgspec.ValidationError) as raised:
        decode(msgspec.json.encode(fields).decode())

    assert str(raised.value) == f"Object missing required field `{missing}`"


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda text: journey_documents.from_value(json.loads(text)), id="json"),
        pytest.param(journey_documents.from_yaml, id="yaml"),
    ],
)
@pytest.mark.parametrize(
    "step",
    [
        pytest.param('{"type": "sms"}', id="unknown-type"),
        pytest.param('{"type": "webhook", "url": "https://x", "retries": 3}', id="unknown-field"),
        pytest.param('{"type": "webhook", "url": 1}', id="wrong-type"),
    ],
)
def test_a_problem_inside_a_step_names_the_step(load: Decode, step: str) -> None:
    # msgspec alone says `$.steps[...]`; Herald's loader names the step.
    text = document(steps='{"hello": {"type": "exit"}, "say_goodbye": ' + step + "}")

    with pytest.raises(InvalidJourney) as raised:
        load(text)

    assert [problem.step for problem in raised.value.details["problems"]] == ["say_goodbye"]
    assert "step 'say_goodbye'" in str(raised.value)


def test_an_unquoted_yaml_time_of_day_from_10_00_on_is_a_number_and_is_reported() -> None:
    # YAML 1.1 (PyYAML) reads 10:00 as the base-60 integer 600; 09:00 stays a string.
    text = WELCOME_YAML.replace("duration: 1d", "until: 10:00")

    with pytest.raises(msgspec.ValidationError) as raised:
        from_yaml(text)

    assert str(raised.value) == "Expected `str | null`, got `int` - at `$.steps[...].until`"


@pytest.mark.parametrize("until", ["09:00", '"10:00"', "'23:30'"])
def test_a_yaml_time_of_day_decodes_quoted_or_with_a_leading_zero(until: str) -> None:
    journey = from_yaml(WELCOME_YAML.replace("duration: 1d", f"until: {until}"))

    assert journey.steps["wait"] == DelayStep(until=until.strip("\"'"), next="bye")


@pytest.mark.parametrize("decode", DECODERS)
def test_a_document_that_is_not_an_object_does_not_decode(decode: Decode) -> None:
    with pytest.raises(msgspec.ValidationError, match="Expected `object`, got `array`"):
        decode('["welcome"]')
