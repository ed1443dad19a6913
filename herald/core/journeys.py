"""Journey definitions: the document users write, and its validation (DESIGN §4).

A journey is an event trigger, an entry rule, and named steps linked by `next`:

    name: welcome
    trigger: {event: signed_up, conditions: {all: [{field: customer.plan, op: eq, value: pro}]}}
    entry: once
    start: hello
    steps:
      hello: {type: webhook, url: "https://example.com/hook", next: wait,
              body: '{"email": "{{ customer.email }}"}'}
      wait:  {type: delay, duration: 1d, next: bye}
      bye:   {type: email, subject: "Bye {{ customer.name }}", body: "..."}

Validation names the step and the field of every problem. Templates are checked by a function
the caller passes (`check_template`): the template language lives outside the core.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from herald.core.conditions import Condition

StepName = str
TemplateCheck = Callable[[str], str | None]  # why a template does not parse, or None

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
CUSTOMER_TIMEZONE = "customer"  # a delay's timezone taken from the customer's `timezone` attribute
MAX_STEPS = 200
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_WEBHOOK_TIMEOUT_S = 60.0  # a delivery worker waits at most this long for one receiver


class JourneyStatus(StrEnum):
    LIVE = "live"  # new customers enter
    PAUSED = "paused"  # nobody enters; customers inside go on
    ARCHIVED = "archived"  # nobody enters; hidden from the default listing


class EntryRule(StrEnum):
    ONCE = "once"  # a customer enters at most once, ever
    EVERY_TIME = "every_time"  # every matching event starts a new enrollment
    NOT_WHILE_INSIDE = "not_while_inside"  # again only after the previous enrollment ended


class Conditions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """All of `all` and at least one of `any` (when given). Fields are `payload.<path>` (the
    event's payload) or `customer.<attribute>`."""

    all: list[Condition] = []
    any: list[Condition] = []


class Trigger(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    event: str
    source: str | None = None
    conditions: Conditions = Conditions()


class WebhookStep(
    msgspec.Struct,
    frozen=True,
    tag="webhook",
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    url: str
    method: str = "POST"
    headers: dict[str, str] = {}
    body: str | None = None
    secret: str | None = None  # signs the body: HMAC-SHA256 in the Herald-Signature header
    timeout_s: float = 10.0
    next: StepName | None = None


class EmailStep(
    msgspec.Struct,
    frozen=True,
    tag="email",
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    subject: str
    body: str
    to: str = "{{ customer.email }}"
    html: str | None = None
    next: StepName | None = None


class DelayStep(
    msgspec.Struct,
    frozen=True,
    tag="delay",
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    duration: str | None = None  # "90s", "15m", "2h", "1d", "1w"
    until: str | None = None  # "09:00": the next time it is that time of day
    timezone: str | None = None  # an IANA name, or "customer"; default: the journey's
    next: StepName | None = None


class WaitStep(
    msgspec.Struct,
    frozen=True,
    tag="wait_for_event",
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    event: str
    timeout: str
    conditions: Conditions = Conditions()
    next: StepName | None = None  # when the event comes in time
    timeout_next: StepName | None = None  # when it does not


class Branch(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    when: Conditions
    next: StepName


class BranchStep(
    msgspec.Struct,
    frozen=True,
    tag="branch",
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    branches: list[Branch]
    default: StepName | None = None


class UpdateStep(
    msgspec.Struct,
    frozen=True,
    tag="update_attributes",
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    set: dict[str, Any]
    next: StepName | None = None


class ExitStep(
    msgspec.Struct,
    frozen=True,
    tag="exit",
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    pass


Step = WebhookStep | EmailStep | DelayStep | WaitStep | BranchStep | UpdateStep | ExitStep
PAUSING = (DelayStep, WaitStep)  # steps that wait: a cycle must contain one
STEP_TYPES = ("webhook", "email", "delay", "wait_for_event", "branch", "update_attributes", "exit")


class Journey(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    trigger: Trigger
    start: StepName
    steps: dict[StepName, Step]
    entry: EntryRule = EntryRule.ONCE
    timezone: str = "UTC"


class JourneyError(msgspec.Struct, frozen=True, omit_defaults=True):
    """One problem of a journey document: where (step, field) and what to do."""

    message: str
    step: StepName | None = None
    field: str | None = None


def parse_duration(text: str) -> timedelta | None:
    """'90s', '15m', '2h', '1d', '1w' (decimals allowed) as a timedelta; None when malformed."""
    match = _DURATION.match(text)
    if match is None:
        return None
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:  # more days than a timedelta holds: not a duration anyone means
        return None


def parse_time_of_day(text: str) -> tuple[int, int] | None:
    """'09:30' as (9, 30); None when malformed."""
    match = _TIME_OF_DAY.match(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def successors(step: Step) -> Iterator[tuple[str, StepName]]:
    """(field, step name) of every step `step` can lead to."""
    match step:
        case WaitStep(next=next_step, timeout_next=timeout_next):
            if next_step is not None:
                yield "next", next_step
            if timeout_next is not None:
                yield "timeout_next", timeout_next
        case BranchStep(branches=branches, default=default):
            for index, branch in enumerate(branches):
                yield f"branches[{index}].next", branch.next
            if default is not None:
                yield "default", default
        case ExitStep():
            return
        case _:
            if step.next is not None:
                yield "next", step.next


def validate(journey: Journey, *, check_template: TemplateCheck) -> list[JourneyError]:
    """Every problem of `journey`, each naming its step and field; [] when it can run."""
    errors: list[JourneyError] = []
    if not journey.name.strip():
        errors.append(JourneyError("name must not be empty", field="name"))
    if not journey.trigger.event:
        errors.append(JourneyError("the trigger needs an event name", field="trigger.event"))
    errors.extend(_condition_errors(journey.trigger.conditions, None, "trigger.conditions"))
    if _zone_problem(journey.timezone):
        errors.append(JourneyError(_zone_problem(journey.timezone) or "", field="timezone"))
    if len(journey.steps) > MAX_STEPS:
        errors.append(
            JourneyError(f"at most {MAX_STEPS} steps, got {len(journey.steps)}", field="steps")
        )
    if journey.start not in journey.steps:
        errors.append(
            JourneyError(
                f"start names {journey.start!r}, which is not a step "
                f"(steps: {', '.join(sorted(journey.steps))})",
                field="start",
            )
        )
    for name, step in journey.steps.items():
        errors.extend(_step_errors(name, step, journey, check_template))
    if not errors:  # a broken reference would also make its target look unreachable: one at a time
        errors.extend(_graph_errors(journey))
    return errors


def _step_errors(
    name: StepName, step: Step, journey: Journey, check_template: TemplateCheck
) -> Iterator[JourneyError]:
    for field, target in successors(step):
        if target not in journey.steps:
            yield JourneyError(
                f"{target!r} is not a step of this journey "
                f"(steps: {', '.join(sorted(journey.steps))})",
                step=name,
                field=field,
            )
    for field, template in _templates(step):
        if (problem := check_template(template)) is not None:
            yield JourneyError(f"the template does not parse: {problem}", step=name, field=field)
    yield from _own_errors(name, step)


def _own_errors(name: StepName, step: Step) -> Iterator[JourneyError]:
    match step:
        case WebhookStep():
            yield from _webhook_errors(name, step)
        case DelayStep(duration=duration, until=until, timezone=timezone):
            yield from _delay_errors(name, duration, until, timezone)
        case WaitStep(event=awaited, timeout=timeout, conditions=conditions):
            if not awaited.strip():
                yield JourneyError("the event to wait for needs a name", name, "event")
            if parse_duration(timeout) is None:
                yield JourneyError(_duration_hint(timeout), name, "timeout")
            yield from _condition_errors(conditions, name, "conditions")
        case BranchStep(branches=branches):
            if not branches:
                yield JourneyError("a branch step needs at least one branch", name, "branches")
            for index, branch in enumerate(branches):
                yield from _condition_errors(branch.when, name, f"branches[{index}].when")


def _webhook_errors(name: StepName, step: WebhookStep) -> Iterator[JourneyError]:
    if not step.url.lower().startswith(("http://", "https://")):
        yield JourneyError(
            f"url must start with http:// or https://, got {step.url[:60]!r}", name, "url"
        )
    if step.method.upper() not in WEBHOOK_METHODS:
        yield JourneyError(
            f"method {step.method!r} cannot carry a message; "
            f"use one of {', '.join(WEBHOOK_METHODS)}",
            name,
            "method",
        )
    if not 0 < step.timeout_s <= MAX_WEBHOOK_TIMEOUT_S:
        yield JourneyError(
            f"timeout_s must be more than 0 and at most {MAX_WEBHOOK_TIMEOUT_S:g}, "
            f"got {step.timeout_s:g}",
            name,
            "timeout_s",
        )


def _delay_errors(
    name: StepName, duration: str | None, until: str | None, timezone: str | None
) -> Iterator[JourneyError]:
    if (duration is None) == (until is None):
        yield JourneyError("give either duration (like 2h) or until (like 09:00)", name, "duration")
    if duration is not None and parse_duration(duration) is None:
        yield JourneyError(_duration_hint(duration), name, "duration")
    if until is not None and parse_time_of_day(until) is None:
        yield JourneyError(f"until must be a time of day like 09:00, got {until!r}", name, "until")
    if timezone is not None and timezone != CUSTOMER_TIMEZONE and _zone_problem(timezone):
        yield JourneyError(_zone_problem(timezone) or "", name, "timezone")


def _graph_errors(journey: Journey) -> Iterator[JourneyError]:
    reachable = _reachable(journey)
    for name in journey.steps:
        if name not in reachable:
            yield JourneyError(
                f"no step leads to {name!r} from start {journey.start!r}: remove it or link it",
                step=name,
            )
    for loop in _loops_without_pause(journey):
        yield JourneyError(
            "these steps loop without a delay or wait, so a customer would loop forever: "
            + " -> ".join([*loop, loop[0]]),
            step=loop[0],
        )


def _links(journey: Journey, name: StepName) -> list[StepName]:
    """The steps `name` leads to (references to missing steps are reported elsewhere)."""
    return [target for _, target in successors(journey.steps[name]) if target in journey.steps]


def _reachable(journey: Journey) -> set[StepName]:
    seen: set[StepName] = set()
    pending = [journey.start]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(_links(journey, name))
    return seen


def _loops_without_pause(journey: Journey) -> list[list[StepName]]:
    """Each group of steps that can loop among themselves without a delay or wait.

    The strongly connected components (Tarjan) of the graph of the steps that do not wait.
    """
    instant = [name for name, step in journey.steps.items() if not isinstance(step, PAUSING)]
    links = {name: [t for t in _links(journey, name) if t in instant] for name in instant}
    index: dict[StepName, int] = {}
    low: dict[StepName, int] = {}
    stack: list[StepName] = []
    loops: list[list[StepName]] = []

    def connect(name: StepName) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in links[name]:
            if target not in index:
                connect(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            group = []
            while (member := stack.pop()) != name:
                group.append(member)
            group.append(name)
            if len(group) > 1 or name in links[name]:
                loops.append(sorted(group))

    for name in sorted(instant):
        if name not in index:
            connect(name)
    return sorted(loops)


def _templates(step: Step) -> Iterator[tuple[str, str]]:
    match step:
        case WebhookStep(url=url, headers=headers, body=body):
            yield "url", url
            yield from ((f"headers.{key}", value) for key, value in headers.items())
            if body is not None:
                yield "body", body
        case EmailStep(to=to, subject=subject, body=body, html=html):
            yield from (("to", to), ("subject", subject), ("body", body))
            if html is not None:
                yield "html", html


def _condition_errors(
    conditions: Conditions, step: StepName | None, field: str
) -> Iterator[JourneyError]:
    for group in ("all", "any"):
        for index, condition in enumerate(getattr(conditions, group)):
            where = f"{field}.{group}[{index}]"
            prefix, _, rest = condition.field.partition(".")
            if prefix not in ("payload", "customer") or not rest:
                yield JourneyError(
                    "field must start with payload. (the event's payload) or customer. "
                    f"(an attribute), got {condition.field!r}",
                    step,
                    f"{where}.field",
                )
            elif (problem := condition.problem()) is not None:
                yield JourneyError(problem, step, where)


def _zone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder: OSError
        return f"{name!r} is not a time zone name like Europe/Paris or UTC"
    return None


def _duration_hint(text: str) -> str:
    return f"{text!r} is not a duration: use a number and a unit, like 90s, 15m, 2h, 1d or 1w"
