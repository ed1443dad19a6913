"""Journey validation (DESIGN §4): every problem names its step and field and says what to do."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import msgspec
import pytest

from herald.core.conditions import Condition, Op
from herald.core.journeys import (
    MAX_STEPS,
    Branch,
    BranchStep,
    Conditions,
    DelayStep,
    EmailStep,
    EntryRule,
    ExitStep,
    Journey,
    JourneyError,
    Step,
    Trigger,
    UpdateStep,
    WaitStep,
    WebhookStep,
    parse_duration,
    parse_time_of_day,
    successors,
    validate,
)

URL = "https://hooks.example.com/herald"
SIGNED_UP = Trigger("signed_up")
LOOP_HINT = "these steps loop without a delay or wait, so a customer would loop forever: "

# The seeds' "identify then trigger_some_message" flow: an $identify, then an event that should
# reach the customer; here it calls the customer's backend, then sends an email.
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
            url=URL,
            headers={"X-Customer": "{{ customer.id }}"},
            body='{"email": "{{ customer.email }}", "value": "{{ event.payload.some_value }}"}',
            secret="s3cret",
            next="send_email",
        ),
        "send_email": EmailStep(
            subject="Hello {{ customer.name | default: 'there' }}",
            body="You sent {{ event.payload.some_value }}.",
        ),
    },
)


def journey_of(
    steps: dict[str, Step],
    *,
    start: str = "a",
    name: str = "welcome",
    trigger: Trigger = SIGNED_UP,
    timezone: str = "UTC",
) -> Journey:
    return Journey(name=name, trigger=trigger, start=start, steps=steps, timezone=timezone)


def only(step: Step) -> Journey:
    return journey_of({"a": step})


def problems(journey: Journey) -> list[JourneyError]:
    return validate(journey, check_template=lambda source: None)


def reject_oops(source: str) -> str | None:
    return "unexpected 'oops'" if "oops" in source else None


# A valid journey


def test_the_seed_journey_webhook_then_email_is_valid() -> None:
    assert problems(SEED_JOURNEY) == []


def test_a_journey_using_every_kind_of_step_is_valid() -> None:
    journey = journey_of(
        {
            "hello": WebhookStep(url=URL, method="PUT", timeout_s=60, next="remember"),
            "remember": UpdateStep(set={"welcomed": True, "plan": None}, next="pause"),
            "pause": DelayStep(duration="1d", next="morning"),
            "morning": DelayStep(until="09:00", timezone="customer", next="await_purchase"),
            "await_purchase": WaitStep(
                event="purchase",
                timeout="1w",
                conditions=Conditions(any=[Condition("payload.total", Op.GT, 10)]),
                next="which",
                timeout_next="nudge",
            ),
            "which": BranchStep(
                branches=[
                    Branch(Conditions(all=[Condition("customer.plan", Op.EQ, "pro")]), "thanks"),
                    Branch(Conditions(all=[Condition("payload.coupon", Op.EXISTS)]), "done"),
                ],
                default="thanks",
            ),
            "thanks": EmailStep(subject="Thanks", body="Thank you", html="<p>Thank you</p>"),
            "nudge": EmailStep(subject="Still there?", body="...", next="done"),
            "done": ExitStep(),
        },
        start="hello",
        timezone="Europe/Paris",
    )

    assert problems(journey) == []


def test_a_journey_defaults_to_entering_once_in_utc() -> None:
    assert (SEED_JOURNEY.entry, SEED_JOURNEY.timezone) == (EntryRule.ONCE, "UTC")


# References between steps


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (WebhookStep(url=URL, next="gone"), "next"),
        (EmailStep(subject="s", body="b", next="gone"), "next"),
        (DelayStep(duration="1h", next="gone"), "next"),
        (UpdateStep(set={"vip": True}, next="gone"), "next"),
        (WaitStep(event="purchase", timeout="1h", next="gone"), "next"),
        (WaitStep(event="purchase", timeout="1h", timeout_next="gone"), "timeout_next"),
        (BranchStep(branches=[Branch(Conditions(), "gone")]), "branches[0].next"),
        (
            BranchStep(branches=[Branch(Conditions(), "end"), Branch(Conditions(), "gone")]),
            "branches[1].next",
        ),
        (BranchStep(branches=[Branch(Conditions(), "end")], default="gone"), "default"),
    ],
)
def test_a_reference_to_a_missing_step_names_the_field_and_lists_the_steps(
    step: Step, field: str
) -> None:
    journey = journey_of({"a": step, "end": ExitStep()})

    errors = problems(journey)

    assert errors == [
        JourneyError("'gone' is not a step of this journey (steps: a, end)", "a", field)
    ]


@pytest.mark.parametrize(
    "step",
    [
        WebhookStep(url=URL, next="end"),
        EmailStep(subject="s", body="b", next="end"),
        DelayStep(duration="1h", next="end"),
        UpdateStep(set={"vip": True}, next="end"),
        WaitStep(event="purchase", timeout="1h", next="end", timeout_next="end"),
        BranchStep(branches=[Branch(Conditions(), "end")], default="end"),
    ],
)
def test_a_reference_to_an_existing_step_is_valid(step: Step) -> None:
    assert problems(journey_of({"a": step, "end": ExitStep()})) == []


@pytest.mark.parametrize("start", ["gone", "", "A"])
def test_start_must_name_a_step(start: str) -> None:
    journey = journey_of({"a": ExitStep()}, start=start)

    errors = problems(journey)

    assert errors == [
        JourneyError(f"start names {start!r}, which is not a step (steps: a)", field="start")
    ]


def test_a_step_no_step_leads_to_is_reported_as_unreachable() -> None:
    journey = journey_of(
        {"a": EmailStep(subject="s", body="b"), "orphan": ExitStep(), "orphan_2": ExitStep()}
    )

    errors = problems(journey)

    assert errors == [
        JourneyError("no step leads to 'orphan' from start 'a': remove it or link it", "orphan"),
        JourneyError(
            "no step leads to 'orphan_2' from start 'a': remove it or link it", "orphan_2"
        ),
    ]


@pytest.mark.parametrize(
    "steps",
    [
        {"a": EmailStep(subject="s", body="b", next="b"), "b": ExitStep()},
        {
            "a": BranchStep([Branch(Conditions(), "b")], default="c"),
            "b": ExitStep(),
            "c": ExitStep(),
        },
        {"a": WaitStep(event="e", timeout="1h", timeout_next="b"), "b": ExitStep()},
    ],
)
def test_a_step_reached_through_any_field_is_reachable(steps: dict[str, Step]) -> None:
    assert problems(journey_of(steps)) == []


# Loops


@pytest.mark.parametrize(
    ("steps", "cycle"),
    [
        ({"a": UpdateStep(set={"n": 1}, next="a")}, "a -> a"),
        (
            {"a": WebhookStep(url=URL, next="b"), "b": EmailStep(subject="s", body="b", next="a")},
            "a -> b -> a",
        ),
        (
            {
                "a": EmailStep(subject="s", body="b", next="b"),
                "b": BranchStep([Branch(Conditions(), "c")], default="a"),
                "c": ExitStep(),
            },
            "a -> b -> a",
        ),
        (
            {
                "a": EmailStep(subject="s", body="b", next="b"),
                "b": BranchStep([Branch(Conditions(), "c"), Branch(Conditions(), "a")]),
                "c": ExitStep(),
            },
            "a -> b -> a",
        ),
        (
            # the delay is on one way round; the branch's default skips it
            {
                "a": DelayStep(duration="1h", next="b"),
                "b": UpdateStep(set={"n": 1}, next="c"),
                "c": BranchStep([Branch(Conditions(), "a")], default="b"),
            },
            "b -> c -> b",
        ),
    ],
)
def test_a_loop_without_a_delay_or_wait_is_reported_on_its_first_step(
    steps: dict[str, Step], cycle: str
) -> None:
    journey = journey_of(steps)

    errors = problems(journey)

    assert errors == [JourneyError(LOOP_HINT + cycle, cycle.split(" -> ")[0])]


@pytest.mark.parametrize(
    "steps",
    [
        {"a": DelayStep(duration="1d", next="a")},
        {"a": DelayStep(until="09:00", next="b"), "b": EmailStep(subject="s", body="b", next="a")},
        {"a": WaitStep(event="e", timeout="1h", next="b", timeout_next="a"), "b": ExitStep()},
        {
            "a": WebhookStep(url=URL, next="b"),
            "b": WaitStep(event="e", timeout="1h", next="a", timeout_next="c"),
            "c": ExitStep(),
        },
        {
            "a": BranchStep([Branch(Conditions(), "b")], default="c"),
            "b": DelayStep(duration="1h", next="a"),
            "c": WaitStep(event="e", timeout="1d", timeout_next="a"),
        },
    ],
)
def test_a_loop_through_a_delay_or_wait_is_valid(steps: dict[str, Step]) -> None:
    assert problems(journey_of(steps)) == []


# Templates


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (WebhookStep(url="https://example.com/{{ oops"), "url"),
        (WebhookStep(url=URL, headers={"X-Token": "{{ oops"}), "headers.X-Token"),
        (WebhookStep(url=URL, body="{{ oops"), "body"),
        (EmailStep(subject="s", body="b", to="{{ oops"), "to"),
        (EmailStep(subject="{{ oops", body="b"), "subject"),
        (EmailStep(subject="s", body="{{ oops"), "body"),
        (EmailStep(subject="s", body="b", html="{{ oops"), "html"),
    ],
)
def test_a_template_that_does_not_parse_is_reported_with_the_checkers_reason(
    step: Step, field: str
) -> None:
    errors = validate(only(step), check_template=reject_oops)

    assert errors == [JourneyError("the template does not parse: unexpected 'oops'", "a", field)]


@pytest.mark.parametrize(
    "step",
    [
        WebhookStep(url=URL, method="POST", secret="oops", headers={"oops": "fine"}),
        UpdateStep(set={"note": "{{ oops"}),
        WaitStep(event="oops", timeout="1h"),
    ],
)
def test_fields_that_are_not_templates_are_not_checked_as_templates(step: Step) -> None:
    assert validate(only(step), check_template=reject_oops) == []


def test_every_template_of_webhooks_and_emails_is_checked() -> None:
    checked: list[str] = []

    def check(source: str) -> str | None:
        checked.append(source)
        return None

    errors = validate(SEED_JOURNEY, check_template=check)

    assert errors == []
    assert sorted(checked) == sorted(
        [
            URL,
            "{{ customer.id }}",
            '{"email": "{{ customer.email }}", "value": "{{ event.payload.some_value }}"}',
            "{{ customer.email }}",
            "Hello {{ customer.name | default: 'there' }}",
            "You sent {{ event.payload.some_value }}.",
        ]
    )


# Webhook steps


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "hooks.example.com/herald", "", "javascript:alert(1)"]
)
def test_a_webhook_url_must_start_with_http_or_https(url: str) -> None:
    errors = problems(only(WebhookStep(url=url)))

    assert errors == [
        JourneyError(f"url must start with http:// or https://, got {url!r}", "a", "url")
    ]


def test_a_long_bad_webhook_url_is_shortened_in_the_message() -> None:
    url = "ftp://" + "x" * 200

    errors = problems(only(WebhookStep(url=url)))

    assert errors == [
        JourneyError(f"url must start with http:// or https://, got {url[:60]!r}", "a", "url")
    ]


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/hook", URL, "HTTPS://EXAMPLE.COM", "https://{{ customer.site }}"]
)
def test_an_http_or_https_webhook_url_is_valid(url: str) -> None:
    assert problems(only(WebhookStep(url=url))) == []


@pytest.mark.parametrize("method", ["FETCH", "", "POST "])
def test_a_webhook_method_must_be_an_http_method(method: str) -> None:
    errors = problems(only(WebhookStep(url=URL, method=method)))

    assert [(error.step, error.field) for error in errors] == [("a", "method")]
    assert repr(method) in errors[0].message


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "post", "Patch"])
def test_a_webhook_method_of_any_case_is_valid(method: str) -> None:
    assert problems(only(WebhookStep(url=URL, method=method))) == []


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, 60.001, 3600.0, float("nan"), float("inf")])
def test_a_webhook_timeout_must_be_more_than_zero_and_at_most_a_minute(timeout_s: float) -> None:
    errors = problems(only(WebhookStep(url=URL, timeout_s=timeout_s)))

    assert errors == [
        JourneyError(
            f"timeout_s must be more than 0 and at most 60, got {timeout_s:g}", "a", "timeout_s"
        )
    ]


@pytest.mark.parametrize("timeout_s", [0.001, 1.0, 10.0, 60.0])
def test_a_webhook_timeout_up_to_a_minute_is_valid(timeout_s: float) -> None:
    assert problems(only(WebhookStep(url=URL, timeout_s=timeout_s))) == []


@pytest.mark.parametrize(
    ("journey", "words"),
    [
        pytest.param(only(WebhookStep(url=URL, method="HEAD")), "GET, POST", id="method"),
        pytest.param(only(WebhookStep(url=URL, timeout_s=90)), "got 90", id="timeout_s"),
        pytest.param(journey_of({"a": ExitStep()}, start="gone"), "steps: a", id="start"),
    ],
)
def test_a_message_names_the_offending_value_and_the_choices(journey: Journey, words: str) -> None:
    errors = problems(journey)

    assert len(errors) == 1
    assert words in errors[0].message


# Delay steps


@pytest.mark.parametrize(
    "step",
    [
        DelayStep(),
        DelayStep(duration="1h", until="09:00"),
        DelayStep(timezone="Europe/Paris"),
    ],
)
def test_a_delay_needs_exactly_one_of_duration_and_until(step: DelayStep) -> None:
    errors = problems(only(step))

    assert errors == [
        JourneyError("give either duration (like 2h) or until (like 09:00)", "a", "duration")
    ]


@pytest.mark.parametrize("duration", ["2x", "", "2H", "-1s", "1.5", "h", "1d2h", ".5h", "1 day"])
def test_a_delay_duration_must_be_a_number_and_a_unit(duration: str) -> None:
    errors = problems(only(DelayStep(duration=duration)))

    assert errors == [
        JourneyError(
            f"{duration!r} is not a duration: use a number and a unit, like 90s, 15m, 2h, 1d or 1w",
            "a",
            "duration",
        )
    ]


@pytest.mark.parametrize("duration", ["90s", "15m", "2h", "1d", "1w", "1.5h", " 2 h ", "0s"])
def test_a_delay_of_a_number_and_a_unit_is_valid(duration: str) -> None:
    assert problems(only(DelayStep(duration=duration))) == []


@pytest.mark.parametrize("until", ["9:00", "24:00", "09:60", "noon", "09:00:00", ""])
def test_a_delay_until_must_be_a_time_of_day(until: str) -> None:
    errors = problems(only(DelayStep(until=until)))

    assert errors == [
        JourneyError(f"until must be a time of day like 09:00, got {until!r}", "a", "until")
    ]


@pytest.mark.parametrize("until", ["00:00", "09:00", "23:59"])
def test_a_delay_until_a_time_of_day_is_valid(until: str) -> None:
    assert problems(only(DelayStep(until=until))) == []


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "+02:00", "../etc/passwd", "Customer"])
def test_a_delay_time_zone_must_be_an_iana_name_or_customer(timezone: str) -> None:
    errors = problems(only(DelayStep(until="09:00", timezone=timezone)))

    assert errors == [
        JourneyError(
            f"{timezone!r} is not a time zone name like Europe/Paris or UTC", "a", "timezone"
        )
    ]


@pytest.mark.parametrize("timezone", ["Europe/Paris", "UTC", "America/New_York", "customer", None])
def test_a_delay_in_an_iana_zone_or_the_customers_is_valid(timezone: str | None) -> None:
    assert problems(only(DelayStep(until="09:00", timezone=timezone))) == []


@pytest.mark.parametrize(
    "timezone",
    [
        pytest.param("America", id="directory"),
        pytest.param("Europe", id="another-directory"),
        pytest.param("x" * 300, id="too-long"),
    ],
)
def test_a_time_zone_naming_a_folder_or_too_long_is_reported_not_raised(timezone: str) -> None:
    journey = journey_of({"a": DelayStep(until="09:00", timezone=timezone)}, timezone=timezone)

    errors = problems(journey)

    message = f"{timezone!r} is not a time zone name like Europe/Paris or UTC"
    assert errors == [
        JourneyError(message, field="timezone"),
        JourneyError(message, "a", "timezone"),
    ]


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (DelayStep(duration="99999999999w"), "duration"),
        (WaitStep(event="e", timeout="1000000000000000000000000s"), "timeout"),
    ],
)
def test_a_duration_too_long_to_represent_is_reported_not_raised(step: Step, field: str) -> None:
    errors = problems(only(step))

    assert [(error.step, error.field) for error in errors] == [("a", field)]


# Wait steps


@pytest.mark.parametrize("timeout", ["soon", "", "30", "1y"])
def test_a_wait_timeout_must_be_a_duration(timeout: str) -> None:
    errors = problems(only(WaitStep(event="purchase", timeout=timeout)))

    assert errors == [
        JourneyError(
            f"{timeout!r} is not a duration: use a number and a unit, like 90s, 15m, 2h, 1d or 1w",
            "a",
            "timeout",
        )
    ]


@pytest.mark.parametrize("timeout", ["30m", "3d", "0.5w"])
def test_a_wait_with_a_duration_timeout_is_valid(timeout: str) -> None:
    assert problems(only(WaitStep(event="purchase", timeout=timeout))) == []


def test_a_wait_needs_an_event_name() -> None:
    errors = problems(only(WaitStep(event="", timeout="1h")))

    assert [(error.step, error.field) for error in errors] == [("a", "event")]


# Branch steps


def test_a_branch_step_needs_at_least_one_branch() -> None:
    journey = journey_of({"a": BranchStep(branches=[], default="b"), "b": ExitStep()})

    errors = problems(journey)

    assert errors == [JourneyError("a branch step needs at least one branch", "a", "branches")]


def test_a_branch_step_with_one_branch_and_no_default_is_valid() -> None:
    journey = journey_of({"a": BranchStep(branches=[Branch(Conditions(), "b")]), "b": ExitStep()})

    assert problems(journey) == []


# Conditions


def in_trigger(conditions: Conditions) -> Journey:
    return journey_of({"a": ExitStep()}, trigger=Trigger("signed_up", conditions=conditions))


def in_wait(conditions: Conditions) -> Journey:
    return only(WaitStep(event="purchase", timeout="1h", conditions=conditions))


def in_branch(conditions: Conditions) -> Journey:
    return journey_of(
        {"a": BranchStep([Branch(Conditions(), "b"), Branch(conditions, "b")]), "b": ExitStep()}
    )


PLACES = [
    pytest.param(in_trigger, None, "trigger.conditions", id="trigger"),
    pytest.param(in_wait, "a", "conditions", id="wait"),
    pytest.param(in_branch, "a", "branches[1].when", id="branch"),
]


@pytest.mark.parametrize(("place", "step", "prefix"), PLACES)
@pytest.mark.parametrize("field", ["plan", "", "payloads.plan", "Customer.plan", "event.name"])
def test_a_condition_field_must_start_with_payload_or_customer(
    place: Callable[[Conditions], Journey], step: str | None, prefix: str, field: str
) -> None:
    journey = place(Conditions(any=[Condition(field, Op.EXISTS)]))

    errors = problems(journey)

    assert errors == [
        JourneyError(
            "field must start with payload. (the event's payload) or customer. "
            f"(an attribute), got {field!r}",
            step,
            f"{prefix}.any[0].field",
        )
    ]


@pytest.mark.parametrize(("place", "step", "prefix"), PLACES)
@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        (Condition("payload.plan", Op.EQ), "eq needs a value"),
        (Condition("customer.plan", Op.IN, "pro"), "in needs a list of values"),
        (Condition("customer.age", Op.GT, [1]), "gt needs a number or a string to compare with"),
    ],
)
def test_an_unusable_condition_is_reported_with_its_problem(
    place: Callable[[Conditions], Journey],
    step: str | None,
    prefix: str,
    condition: Condition,
    problem: str,
) -> None:
    journey = place(Conditions(all=[Condition("customer.plan", Op.EXISTS), condition]))

    errors = problems(journey)

    assert errors == [JourneyError(problem, step, f"{prefix}.all[1]")]


@pytest.mark.parametrize(("place", "step", "prefix"), PLACES)
@pytest.mark.parametrize(
    "condition",
    [
        Condition("payload.plan.name", Op.EQ, "pro"),
        Condition("customer.plan", Op.IN, ["pro", "team"]),
        Condition("customer.age", Op.GTE, 18),
        Condition("payload.coupon", Op.NOT_EXISTS),
    ],
)
def test_a_usable_condition_on_payload_or_customer_is_valid(
    place: Callable[[Conditions], Journey], step: str | None, prefix: str, condition: Condition
) -> None:
    journey = place(Conditions(all=[condition], any=[condition]))

    assert problems(journey) == []


@pytest.mark.parametrize("field", ["payload.", "customer."])
def test_a_condition_field_must_name_something_after_the_prefix(field: str) -> None:
    errors = problems(in_trigger(Conditions(all=[Condition(field, Op.EXISTS)])))

    assert [(error.step, error.field) for error in errors] == [
        (None, "trigger.conditions.all[0].field")
    ]


# The journey itself


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_a_journey_needs_a_name(name: str) -> None:
    errors = problems(journey_of({"a": ExitStep()}, name=name))

    assert errors == [JourneyError("name must not be empty", field="name")]


def test_a_journey_needs_a_trigger_event() -> None:
    errors = problems(journey_of({"a": ExitStep()}, trigger=Trigger("")))

    assert errors == [JourneyError("the trigger needs an event name", field="trigger.event")]


@pytest.mark.parametrize("event", ["signed_up", "$identify", "trigger_some_message"])
def test_a_named_journey_with_a_trigger_event_is_valid(event: str) -> None:
    assert problems(journey_of({"a": ExitStep()}, name="w", trigger=Trigger(event))) == []


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "customer"])
def test_a_journey_time_zone_must_be_an_iana_name(timezone: str) -> None:
    errors = problems(journey_of({"a": ExitStep()}, timezone=timezone))

    assert errors == [
        JourneyError(
            f"{timezone!r} is not a time zone name like Europe/Paris or UTC", field="timezone"
        )
    ]


def chain(length: int) -> dict[str, Step]:
    steps: dict[str, Step] = {
        f"s{index}": UpdateStep(set={"n": index}, next=f"s{index + 1}") for index in range(length)
    }
    steps[f"s{length - 1}"] = ExitStep()
    return steps


def test_a_journey_has_at_most_max_steps() -> None:
    journey = journey_of(chain(MAX_STEPS + 1), start="s0")

    errors = problems(journey)

    assert errors == [JourneyError(f"at most 200 steps, got {MAX_STEPS + 1}", field="steps")]


def test_a_journey_of_max_steps_is_valid() -> None:
    assert problems(journey_of(chain(MAX_STEPS), start="s0")) == []


# Several problems


def test_every_problem_is_reported_at_once() -> None:
    journey = Journey(
        name="",
        trigger=Trigger("", conditions=Conditions(all=[Condition("plan", Op.EQ, "pro")])),
        start="hello",
        timezone="Mars/Olympus",
        steps={
            "hello": WebhookStep(url="ftp://x", method="FETCH", timeout_s=0, next="wait"),
            "wait": DelayStep(duration="soon", next="gone"),
            "bye": EmailStep(subject="{{ oops", body="b"),
        },
    )

    errors = validate(journey, check_template=reject_oops)

    assert [(error.step, error.field) for error in errors] == [
        (None, "name"),
        (None, "trigger.event"),
        (None, "trigger.conditions.all[0].field"),
        (None, "timezone"),
        ("hello", "url"),
        ("hello", "method"),
        ("hello", "timeout_s"),
        ("wait", "next"),
        ("wait", "duration"),
        ("bye", "subject"),
    ]


def test_an_unreachable_step_and_a_loop_are_reported_together() -> None:
    journey = journey_of(
        {
            "a": UpdateStep(set={"n": 1}, next="b"),
            "b": UpdateStep(set={"n": 2}, next="a"),
            "orphan": ExitStep(),
        }
    )

    errors = problems(journey)

    assert errors == [
        JourneyError("no step leads to 'orphan' from start 'a': remove it or link it", "orphan"),
        JourneyError(LOOP_HINT + "a -> b -> a", "a"),
    ]


def test_graph_problems_wait_until_the_steps_themselves_are_valid() -> None:
    # A broken reference also makes its target look unreachable: graph problems come once the
    # steps are fixed, so that one mistake is not reported twice.
    journey = journey_of(
        {
            "a": WebhookStep(url="ftp://x", next="b"),
            "b": UpdateStep(set={"n": 1}, next="b"),
            "orphan": ExitStep(),
        }
    )

    errors = problems(journey)

    assert [(error.step, error.field) for error in errors] == [("a", "url")]
    fixed = journey_of(
        {
            "a": WebhookStep(url=URL, next="b"),
            "b": UpdateStep(set={"n": 1}, next="b"),
            "orphan": ExitStep(),
        }
    )
    assert [(error.step, error.field) for error in problems(fixed)] == [
        ("orphan", None),
        ("b", None),
    ]


def test_every_loop_without_a_pause_is_reported() -> None:
    journey = journey_of(
        {
            "a": BranchStep([Branch(Conditions(), "b")], default="c"),
            "b": UpdateStep(set={"n": 1}, next="b"),
            "c": UpdateStep(set={"n": 2}, next="c"),
        }
    )

    errors = problems(journey)

    assert errors == [
        JourneyError(LOOP_HINT + "b -> b", "b"),
        JourneyError(LOOP_HINT + "c -> c", "c"),
    ]


def test_a_journey_error_encodes_without_the_parts_it_lacks() -> None:
    assert msgspec.json.encode(JourneyError("name must not be empty", field="name")) == (
        b'{"message":"name must not be empty","field":"name"}'
    )


# Parsing and successors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1.5h", timedelta(minutes=90)),
        ("0.25d", timedelta(hours=6)),
        (" 2 h ", timedelta(hours=2)),
        ("0s", timedelta(0)),
        ("2H", None),
        ("2", None),
        ("h", None),
        ("-1s", None),
        ("1e3s", None),
        ("1h30m", None),
        ("", None),
    ],
)
def test_parse_duration_reads_a_number_and_a_unit(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00", (0, 0)),
        ("09:30", (9, 30)),
        ("23:59", (23, 59)),
        ("9:30", None),
        ("24:00", None),
        ("12:60", None),
        ("12:5", None),
        (" 09:30", None),
        ("09h30", None),
    ],
)
def test_parse_time_of_day_reads_hours_and_minutes(
    text: str, expected: tuple[int, int] | None
) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (WebhookStep(url=URL, next="b"), [("next", "b")]),
        (WebhookStep(url=URL), []),
        (EmailStep(subject="s", body="b", next="b"), [("next", "b")]),
        (DelayStep(duration="1h", next="b"), [("next", "b")]),
        (UpdateStep(set={}, next="b"), [("next", "b")]),
        (UpdateStep(set={}), []),
        (WaitStep(event="e", timeout="1h"), []),
        (WaitStep(event="e", timeout="1h", next="b"), [("next", "b")]),
        (WaitStep(event="e", timeout="1h", timeout_next="c"), [("timeout_next", "c")]),
        (
            WaitStep(event="e", timeout="1h", next="b", timeout_next="c"),
            [("next", "b"), ("timeout_next", "c")],
        ),
        (
            BranchStep([Branch(Conditions(), "b"), Branch(Conditions(), "c")], default="d"),
            [("branches[0].next", "b"), ("branches[1].next", "c"), ("default", "d")],
        ),
        (BranchStep([Branch(Conditions(), "b")]), [("branches[0].next", "b")]),
        (ExitStep(), []),
    ],
)
def test_successors_name_the_field_of_every_step_a_step_leads_to(
    step: Step, expected: list[tuple[str, str]]
) -> None:
    assert list(successors(step)) == expected
