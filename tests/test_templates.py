"""Message templates (DESIGN §4): Liquid, strict about missing variables, checked when a journey
is validated."""

from __future__ import annotations

from typing import Any

import pytest

from herald.core.conditions import Condition, Op
from herald.core.journeys import (
    Conditions,
    EmailStep,
    Journey,
    JourneyError,
    Trigger,
    WebhookStep,
    validate,
)
from herald.errors import InvalidRequest
from herald.templates import TemplateError, check_template, render

ADA: dict[str, Any] = {
    "customer": {
        "id": "c1",
        "email": "example@youremail.com",
        "name": "Ada",
        "plan": "pro",
        "tags": ["beta", "vip"],
        "nickname": None,
        "address": {"city": "London"},
    },
    "event": {
        "name": "trigger_some_message",
        "source": "custom",
        "payload": {"some_value": "the_value", "total": 12.5},
    },
}

# The seeds' "identify then trigger_some_message" flow: a webhook, then an email.
SEED_JOURNEY = Journey(
    name="identify then trigger_some_message",
    trigger=Trigger(
        event="trigger_some_message",
        source="custom",
        conditions=Conditions(all=[Condition("payload.some_value", Op.EQ, "the_value")]),
    ),
    start="notify_backend",
    steps={
        "notify_backend": WebhookStep(
            url="https://hooks.example.com/herald",
            headers={"X-Customer": "{{ customer.id }}"},
            body='{"email": "{{ customer.email }}", "value": "{{ event.payload.some_value }}"}',
            next="send_email",
        ),
        "send_email": EmailStep(
            subject="Hello {{ customer.name | default: 'there' }}",
            body="{% if customer.plan == 'pro' %}Thanks for going pro. {% endif %}"
            "You sent {{ event.payload.some_value }}.",
        ),
    },
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{ customer.name }}", "Hi Ada"),
        ("{{ event.payload.some_value }}", "the_value"),
        ("{{ event.name }} from {{ event.source }}", "trigger_some_message from custom"),
        ("{{ customer.address.city }}", "London"),
        ("{{ customer.tags | join: ', ' }}", "beta, vip"),
        ("{{ customer.tags.first }}", "beta"),
        ("{{ event.payload.total | times: 2 }}", "25.0"),
        ("{{ customer.name | upcase }}", "ADA"),
        ("{% if customer.plan == 'pro' %}pro{% else %}free{% endif %}", "pro"),
        ("{% for tag in customer.tags %}[{{ tag }}]{% endfor %}", "[beta][vip]"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_render_fills_in_the_customer_and_the_event(source: str, expected: str) -> None:
    assert render(source, ADA) == expected


@pytest.mark.parametrize(
    ("source", "variables", "missing"),
    [
        ("Hi {{ customer.first_name }}", ADA, "customer.first_name is undefined"),
        ("{{ event.payload.coupon }}", ADA, "event.payload.coupon is undefined"),
        ("{{ customer.address.zip }}", ADA, "customer.address.zip is undefined"),
        ("Hi {{ customer.name }}", {}, "'customer' is undefined"),
        ("{{ customer.first_name | upcase }}", ADA, "customer.first_name is undefined"),
        ("{% for tag in customer.labels %}{{ tag }}{% endfor %}", ADA, "customer.labels"),
    ],
)
def test_a_missing_variable_is_an_error_naming_it(
    source: str, variables: dict[str, Any], missing: str
) -> None:
    with pytest.raises(TemplateError) as raised:
        render(source, variables)

    assert str(raised.value).startswith("The template could not render: ")
    assert missing in str(raised.value)


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("Hi {{ customer.first_name | default: 'there' }}", ADA, "Hi there"),
        ("Hi {{ customer.name | default: 'there' }}", ADA, "Hi Ada"),
        ("Hi {{ customer.name | default: 'there' }}", {"customer": {"name": ""}}, "Hi there"),
        ("Hi {{ customer.name | default: 'there' }}", {}, "Hi there"),
        ("{{ event.payload.coupon | default: 'none' | upcase }}", ADA, "NONE"),
    ],
)
def test_the_default_filter_makes_a_missing_or_blank_variable_acceptable(
    source: str, variables: dict[str, Any], expected: str
) -> None:
    assert render(source, variables) == expected


def test_an_if_on_a_missing_attribute_is_an_error_and_an_assign_with_default_tests_it() -> None:
    with pytest.raises(TemplateError, match="customer.vip is undefined"):
        render("{% if customer.vip %}VIP{% endif %}", ADA)

    rendered = render(
        "{% assign vip = customer.vip | default: false %}{% if vip %}VIP{% else %}no{% endif %}",
        ADA,
    )

    assert rendered == "no"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ 1 | divided_by: 0 }}", "divided_by: can't divide by 0"),
        ("{{ customer.name | truncate: 'a' }}", "truncate expected an integer, found str"),
        ("{{ customer.tags[5] }}", "index out of range"),
        ("{{ customer.name | no_such_filter }}", "unknown filter 'no_such_filter'"),
    ],
)
def test_a_failure_while_rendering_is_a_template_error(source: str, problem: str) -> None:
    with pytest.raises(TemplateError) as raised:
        render(source, ADA)

    assert str(raised.value) == f"The template could not render: {problem}."


def test_a_template_error_is_an_invalid_request() -> None:
    assert issubclass(TemplateError, InvalidRequest)


def test_render_leaves_html_and_json_characters_as_they_are() -> None:
    variables = {"customer": {"name": '<b>"Ada" & co</b>'}}

    assert render('{"name": "{{ customer.name }}"}', variables) == '{"name": "<b>"Ada" & co</b>"}'


def test_render_reports_a_template_that_does_not_parse() -> None:
    with pytest.raises(TemplateError) as raised:
        render("Hi {{ customer.name", ADA)

    assert str(raised.value) == "The template could not render: expected '}}', found end of file."


@pytest.mark.parametrize(
    "source",
    [
        "",
        "plain text",
        "Hi {{ customer.name }}",
        "Hi {{ customer.whatever_is_not_known_yet }}",
        "{{ customer.name | default: 'there' | upcase }}",
        "{% if customer.plan == 'pro' %}pro{% elsif customer.plan %}other{% endif %}",
        "{% for tag in customer.tags %}{{ forloop.index }}{{ tag }}{% endfor %}",
        "{% raw %}{{ not a variable {% endraw %}",
        "{% comment %}{{ x {% endcomment %}",
    ],
)
def test_a_template_that_parses_has_no_problem(source: str) -> None:
    assert check_template(source) is None


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("Hi {{ customer.name", "expected '}}', found end of file"),
        ("Hi {{ customer.name }}\n{{ event", "expected '}}', found end of file"),
        ("{% if %}x{% endif %}", "missing expression"),
        ("{% if customer.plan %}pro", "expected tag endif"),
        ("{% endif %}", "unexpected tag 'endif'"),
        ("{% no_such_tag %}", "unexpected tag 'no_such_tag'"),
        ("{{ customer.name | }}", "expected word, found end of expression"),
        ("{% if customer.vip | default: false %}x{% endif %}", "found '|'"),
        ("{{ customer.tags[ }}", "missing or unexpected path segment"),
    ],
)
def test_a_template_that_does_not_parse_says_why_on_one_line(source: str, problem: str) -> None:
    found = check_template(source)

    assert found is not None
    assert problem in found
    assert "\n" not in found


@pytest.mark.parametrize("source", ["{{ customer.name | upcse }}", "{{ x | no_such_filter: 1 }}"])
def test_a_template_with_an_unknown_filter_has_a_problem(source: str) -> None:
    found = check_template(source)

    assert found is not None
    assert "unknown filter" in found


def test_an_unknown_filter_is_located_by_line_and_column() -> None:
    found = check_template("Hello\n  {{ customer.name | upcse }}")

    assert found == "unknown filter 'upcse' at line 2, column 22"


def test_every_standard_filter_is_known() -> None:
    assert check_template("{{ customer.name | upcase | default: 'x' | truncate: 3 }}") is None


def test_the_seed_journey_validates_with_liquid() -> None:
    assert validate(SEED_JOURNEY, check_template=check_template) == []


def test_the_seed_journeys_messages_render_for_the_identified_customer() -> None:
    webhook = SEED_JOURNEY.steps["notify_backend"]
    email = SEED_JOURNEY.steps["send_email"]
    assert isinstance(webhook, WebhookStep) and isinstance(email, EmailStep)
    assert webhook.body is not None

    body = render(webhook.body, ADA)
    subject = render(email.subject, ADA)
    to = render(email.to, ADA)

    assert body == '{"email": "example@youremail.com", "value": "the_value"}'
    assert subject == "Hello Ada"
    assert to == "example@youremail.com"


@pytest.mark.parametrize(
    ("step", "field", "problem"),
    [
        (
            WebhookStep(url="https://hooks.example.com/{{ customer.id", next="send_email"),
            "url",
            "expected '}}', found end of file",
        ),
        (
            WebhookStep(
                url="https://hooks.example.com/herald",
                headers={"X-Customer": "{% if customer.id %}"},
                next="send_email",
            ),
            "headers.X-Customer",
            "expected tag endif",
        ),
        (
            WebhookStep(
                url="https://hooks.example.com/herald",
                body='{"email": "{{ customer.email | }}"}',
                next="send_email",
            ),
            "body",
            "expected word, found end of expression",
        ),
    ],
)
def test_validate_with_liquid_reports_a_broken_webhook_template_by_step_and_field(
    step: WebhookStep, field: str, problem: str
) -> None:
    journey = Journey(
        name=SEED_JOURNEY.name,
        trigger=SEED_JOURNEY.trigger,
        start=SEED_JOURNEY.start,
        steps={**SEED_JOURNEY.steps, "notify_backend": step},
    )

    errors = validate(journey, check_template=check_template)

    assert [(error.step, error.field) for error in errors] == [("notify_backend", field)]
    assert errors[0].message.startswith("the template does not parse: ")
    assert problem in errors[0].message


def test_validate_with_liquid_reports_every_broken_email_template() -> None:
    email = EmailStep(
        to="{{ customer.email",
        subject="Hello {{ customer.name | default: 'there' }",
        body="{% if customer.plan %}pro",
        html="{% no_such_tag %}",
    )
    journey = Journey(
        name=SEED_JOURNEY.name,
        trigger=SEED_JOURNEY.trigger,
        start=SEED_JOURNEY.start,
        steps={**SEED_JOURNEY.steps, "send_email": email},
    )

    errors = validate(journey, check_template=check_template)

    assert errors == [
        JourneyError(f"the template does not parse: {check_template(source)}", "send_email", field)
        for field, source in [
            ("to", "{{ customer.email"),
            ("subject", "Hello {{ customer.name | default: 'there' }"),
            ("body", "{% if customer.plan %}pro"),
            ("html", "{% no_such_tag %}"),
        ]
    ]


def test_validate_leaves_unknown_variables_to_render_time() -> None:
    email = EmailStep(subject="Hi {{ customer.not_an_attribute_yet }}", body="b")
    journey = Journey(
        name="welcome",
        trigger=Trigger("signed_up"),
        start="hello",
        steps={"hello": email},
    )

    assert validate(journey, check_template=check_template) == []
    with pytest.raises(TemplateError, match="customer.not_an_attribute_yet is undefined"):
        render(email.subject, ADA)
