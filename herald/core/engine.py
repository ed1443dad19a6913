"""Moving a customer through a journey: pure decisions, with `now` as a parameter (DESIGN §4).

`enter` starts an enrollment at the journey's start step; `advance` moves a waiting one on when
its delay is due, when the event it waits for arrives, or when that wait times out. Both run the
instant steps (messages, attribute updates, branches, exit) until a step that waits or the end,
and return the new enrollment with the actions the caller performs: messages to put in the outbox
(keyed by enrollment and step number, so running a step again never sends twice) and attribute
changes. Nothing here sends, sleeps or reads a clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from herald.core.conditions import matches_all, matches_any
from herald.core.journeys import (
    CUSTOMER_TIMEZONE,
    BranchStep,
    Conditions,
    DelayStep,
    EmailStep,
    ExitStep,
    Journey,
    StepName,
    UpdateStep,
    WaitStep,
    WebhookStep,
    parse_duration,
    parse_time_of_day,
)

MAX_STEPS_PER_RUN = 1_000  # validation forbids loops without a wait; this guards bad data
TIMEZONE_ATTRIBUTE = "timezone"  # the customer attribute a delay in "customer" time reads


class Status(StrEnum):
    WAITING = "waiting"  # at a delay or wait step, until `due_at` or the awaited event
    COMPLETED = "completed"  # ran off the end of the journey
    EXITED = "exited"  # reached an exit step


@dataclass(frozen=True)
class Enrollment:
    """One customer's way through one version of a journey."""

    id: str
    customer_id: str
    version: int
    status: Status
    step: StepName | None = None  # the step it waits at
    due_at: datetime | None = None  # when the delay ends, or the wait times out
    awaiting: str | None = None  # the event name a wait step waits for
    steps_taken: int = 0  # numbers each step run: the outbox key is (id, step number)


@dataclass(frozen=True)
class Context:
    """What steps see: the customer's attributes and the event that triggered the enrollment."""

    customer: Mapping[str, Any]
    event: Mapping[str, Any]  # {"name", "source", "payload", ...} of the triggering event

    def values(self) -> dict[str, Any]:
        """The mapping conditions read: `customer.<attribute>`, `payload.<path>`."""
        return {"customer": self.customer, "payload": self.event.get("payload", {})}


@dataclass(frozen=True)
class Arrival:
    """An event of the enrolled customer, offered to a waiting enrollment."""

    name: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class SendMessage:
    """Put the message of step `step` in the outbox, keyed (enrollment, number)."""

    step: StepName
    number: int
    kind: str  # "webhook" or "email"


@dataclass(frozen=True)
class SetAttributes:
    changes: Mapping[str, Any]


Action = SendMessage | SetAttributes


@dataclass(frozen=True)
class Outcome:
    enrollment: Enrollment
    actions: list[Action] = field(default_factory=list)
    path: list[StepName] = field(default_factory=list)  # the steps run, in order (for stats)


def enter(
    journey: Journey,
    *,
    enrollment_id: str,
    customer_id: str,
    version: int,
    context: Context,
    now: datetime,
) -> Outcome:
    """A new enrollment, run from the start step to its first wait (or its end)."""
    enrollment = Enrollment(enrollment_id, customer_id, version, Status.WAITING)
    return _run(journey, enrollment, journey.start, context, now)


def advance(
    journey: Journey,
    enrollment: Enrollment,
    *,
    context: Context,
    now: datetime,
    arrival: Arrival | None = None,
) -> Outcome:
    """Move a waiting enrollment on, if its delay is due, its event came, or its wait timed out.

    For an `arrival`, `now` is when that event was received, so that an event processed late
    (after a backlog) still counts as in time if it came before the wait's end. A wait covers
    [start, due_at): an event at due_at or after it is too late.
    """
    if enrollment.status is not Status.WAITING or enrollment.step is None:
        return Outcome(enrollment)
    step = journey.steps[enrollment.step]
    due = enrollment.due_at is not None and now >= enrollment.due_at
    match step:
        case DelayStep(next=next_step) if due:
            return _run(journey, enrollment, next_step, context, now)
        case WaitStep(event=awaited, conditions=conditions, next=next_step) if (
            not due
            and arrival is not None
            and arrival.name == awaited
            and _waited_for(conditions, context, arrival)
        ):
            return _run(journey, enrollment, next_step, context, now)
        case WaitStep(timeout_next=timeout_next) if due:
            return _run(journey, enrollment, timeout_next, context, now)
    return Outcome(enrollment)


def _waited_for(conditions: Conditions, context: Context, arrival: Arrival) -> bool:
    values = {"customer": context.customer, "payload": arrival.payload}
    return _satisfied(conditions, values)


def _satisfied(conditions: Conditions, values: Mapping[str, Any]) -> bool:
    return matches_all(conditions.all, values) and (
        not conditions.any or matches_any(conditions.any, values)
    )


def trigger_matches(journey: Journey, *, name: str, source: str, context: Context) -> bool:
    """Whether an event (`name`, `source`, with `context`) enters customers into `journey`."""
    trigger = journey.trigger
    if trigger.event != name or (trigger.source is not None and trigger.source != source):
        return False
    return _satisfied(trigger.conditions, context.values())


def _run(
    journey: Journey,
    enrollment: Enrollment,
    step_name: StepName | None,
    context: Context,
    now: datetime,
) -> Outcome:
    actions: list[Action] = []
    path: list[StepName] = []
    customer = dict(context.customer)
    taken = enrollment.steps_taken
    while step_name is not None and len(path) < MAX_STEPS_PER_RUN:
        step = journey.steps[step_name]
        path.append(step_name)
        taken += 1
        match step:
            case WebhookStep(next=next_step) | EmailStep(next=next_step):
                kind = "webhook" if isinstance(step, WebhookStep) else "email"
                actions.append(SendMessage(step_name, taken, kind))
                step_name = next_step
            case UpdateStep(set=changes, next=next_step):
                actions.append(SetAttributes(changes))
                customer.update(changes)
                step_name = next_step
            case BranchStep():
                step_name = _branch(step, Context(customer, context.event))
            case DelayStep():
                due_at = _delay_end(step, journey, customer, now)
                waiting = _waiting(enrollment, step_name, due_at, None, taken)
                return Outcome(waiting, actions, path)
            case WaitStep(event=awaited, timeout=timeout):
                due_at = now + (parse_duration(timeout) or timedelta(0))
                waiting = _waiting(enrollment, step_name, due_at, awaited, taken)
                return Outcome(waiting, actions, path)
            case _:
                assert isinstance(step, ExitStep)
                return Outcome(_ended(enrollment, Status.EXITED, taken), actions, path)
    return Outcome(_ended(enrollment, Status.COMPLETED, taken), actions, path)


def _branch(step: BranchStep, context: Context) -> StepName | None:
    values = context.values()
    for branch in step.branches:
        if _satisfied(branch.when, values):
            return branch.next
    return step.default


def _waiting(
    enrollment: Enrollment, step: StepName, due_at: datetime, awaiting: str | None, taken: int
) -> Enrollment:
    return dataclasses.replace(
        enrollment,
        status=Status.WAITING,
        step=step,
        due_at=due_at,
        awaiting=awaiting,
        steps_taken=taken,
    )


def _ended(enrollment: Enrollment, status: Status, taken: int) -> Enrollment:
    return dataclasses.replace(
        enrollment, status=status, step=None, due_at=None, awaiting=None, steps_taken=taken
    )


def _delay_end(
    step: DelayStep, journey: Journey, customer: Mapping[str, Any], now: datetime
) -> datetime:
    if step.duration is not None:
        return now + (parse_duration(step.duration) or timedelta(0))
    hour, minute = parse_time_of_day(step.until or "") or (0, 0)
    zone = _zone(step.timezone or journey.timezone, customer, journey.timezone)
    return next_time_of_day(now, hour, minute, zone)


def next_time_of_day(now: datetime, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """When the clock in `zone` next shows hour:minute after `now` (in UTC), today or tomorrow.

    A time skipped by a DST change (02:30 on the spring-forward night) means the moment an hour
    later; a time shown twice (autumn) means the first of the two, so a daily delay fires once.
    """
    local = now.astimezone(zone)
    today = datetime.combine(local.date(), time(hour, minute), tzinfo=zone).astimezone(UTC)
    if today > now:
        return today
    tomorrow = local.date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(hour, minute), tzinfo=zone).astimezone(UTC)


def _zone(name: str, customer: Mapping[str, Any], fallback: str) -> ZoneInfo:
    if name == CUSTOMER_TIMEZONE:
        name = str(customer.get(TIMEZONE_ATTRIBUTE) or fallback)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder: OSError
        return ZoneInfo(fallback) if name != fallback else ZoneInfo("UTC")
