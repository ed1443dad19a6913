"""The journey engine (DESIGN §4, §5): entering, advancing, delays, waits, branches, triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from herald.core.engine import (
    MAX_STEPS_PER_RUN,
    Arrival,
    Context,
    Enrollment,
    Outcome,
    SendMessage,
    SetAttributes,
    Status,
    advance,
    enter,
    next_time_of_day,
    trigger_matches,
)
from herald.core.journeys import Journey, validate

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a Monday, far from any DST change
ADA: dict[str, Any] = {"email": "ada@example.com", "plan": "free", "country": "FR"}
SIGNED_UP = Context(
    customer=ADA,
    event={"name": "signed_up", "source": "web", "payload": {"plan": "pro", "seats": 3}},
)
WEBHOOK: dict[str, Any] = {"type": "webhook", "url": "https://example.com/hook"}
EMAIL: dict[str, Any] = {"type": "email", "subject": "Hello", "body": "Hi {{ customer.email }}"}


def journey(
    steps: dict[str, dict[str, Any]],
    *,
    start: str | None = None,
    timezone: str = "UTC",
    trigger: dict[str, Any] | None = None,
) -> Journey:
    """A valid journey starting at `start` (default: the first step)."""
    built = msgspec.convert(
        {
            "name": "test",
            "trigger": trigger or {"event": "signed_up"},
            "start": start or next(iter(steps)),
            "steps": steps,
            "timezone": timezone,
        },
        Journey,
    )
    assert validate(built, check_template=lambda template: None) == []
    return built


def condition(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def enroll(definition: Journey, context: Context = SIGNED_UP, *, now: datetime = NOW) -> Outcome:
    return enter(
        definition,
        enrollment_id="enr-1",
        customer_id="cus-1",
        version=3,
        context=context,
        now=now,
    )


def waiting(
    step: str, due_at: datetime, steps_taken: int, awaiting: str | None = None
) -> Enrollment:
    return Enrollment(
        "enr-1", "cus-1", 3, Status.WAITING, step, due_at, awaiting, steps_taken=steps_taken
    )


def ended(status: Status, steps_taken: int) -> Enrollment:
    return Enrollment("enr-1", "cus-1", 3, status, steps_taken=steps_taken)


# enter: instant steps run until the first delay or wait


def test_enter_sends_messages_numbered_by_step_count_until_the_first_delay() -> None:
    definition = journey(
        {
            "hook": {**WEBHOOK, "next": "mail"},
            "mail": {**EMAIL, "next": "pause"},
            "pause": {"type": "delay", "duration": "2h", "next": "later"},
            "later": WEBHOOK,
        }
    )

    outcome = enroll(definition)

    assert outcome.actions == [
        SendMessage("hook", 1, "webhook"),
        SendMessage("mail", 2, "email"),
    ]
    assert outcome.enrollment == waiting("pause", NOW + timedelta(hours=2), steps_taken=3)
    assert outcome.path == ["hook", "mail", "pause"]


def test_enter_at_a_first_step_that_waits_sends_nothing_yet() -> None:
    definition = journey(
        {
            "pause": {"type": "delay", "duration": "1d", "next": "hook"},
            "hook": WEBHOOK,
        }
    )

    outcome = enroll(definition)

    assert outcome.actions == []
    assert outcome.enrollment == waiting("pause", NOW + timedelta(days=1), steps_taken=1)
    assert outcome.path == ["pause"]


def test_enter_stops_at_a_wait_for_event_until_its_timeout() -> None:
    definition = journey(
        {
            "hook": {**WEBHOOK, "next": "wait"},
            "wait": {"type": "wait_for_event", "event": "purchased", "timeout": "3d"},
        }
    )

    outcome = enroll(definition)

    assert outcome.actions == [SendMessage("hook", 1, "webhook")]
    assert outcome.enrollment == waiting(
        "wait", NOW + timedelta(days=3), steps_taken=2, awaiting="purchased"
    )


def test_update_attributes_gives_set_attributes_and_later_branches_see_them() -> None:
    definition = journey(
        {
            "upgrade": {"type": "update_attributes", "set": {"plan": "pro"}, "next": "route"},
            "route": {
                "type": "branch",
                "branches": [
                    {"when": {"all": [condition("customer.plan", "eq", "pro")]}, "next": "pro"}
                ],
                "default": "free",
            },
            "pro": {**EMAIL, "subject": "Welcome to Pro"},
            "free": EMAIL,
        }
    )
    customer = dict(ADA)

    outcome = enroll(definition, Context(customer, SIGNED_UP.event))

    assert outcome.actions == [SetAttributes({"plan": "pro"}), SendMessage("pro", 3, "email")]
    assert outcome.path == ["upgrade", "route", "pro"]
    assert outcome.enrollment == ended(Status.COMPLETED, steps_taken=3)
    assert customer == ADA  # the caller applies SetAttributes; the engine never mutates its input


def test_exit_step_ends_the_enrollment_as_exited() -> None:
    definition = journey(
        {
            "hook": {**WEBHOOK, "next": "stop"},
            "stop": {"type": "exit"},
        }
    )

    outcome = enroll(definition)

    assert outcome.actions == [SendMessage("hook", 1, "webhook")]
    assert outcome.enrollment == ended(Status.EXITED, steps_taken=2)
    assert outcome.path == ["hook", "stop"]


@pytest.mark.parametrize(
    "last",
    [
        WEBHOOK,
        EMAIL,
        {"type": "update_attributes", "set": {"seen": True}},
        {"type": "branch", "branches": [{"when": {}, "next": "hook"}]},
    ],
    ids=["webhook", "email", "update_attributes", "branch_to_a_last_step"],
)
def test_running_off_the_end_completes_the_enrollment(last: dict[str, Any]) -> None:
    steps = {"last": last} if last["type"] != "branch" else {"last": last, "hook": WEBHOOK}
    definition = journey(steps, start="last")

    outcome = enroll(definition)

    assert outcome.enrollment.status is Status.COMPLETED
    assert outcome.enrollment.step is None
    assert outcome.enrollment.due_at is None
    assert outcome.enrollment.steps_taken == len(outcome.path)


def test_seed_scenario_trigger_some_message_sends_a_webhook_then_an_email() -> None:
    definition = journey(
        {
            "notify": {**WEBHOOK, "body": '{"value": "{{ payload.some_value }}"}', "next": "mail"},
            "mail": EMAIL,
        },
        trigger={"event": "trigger_some_message", "source": "custom"},
    )
    context = Context(
        customer={"_id": "FBBBCB26-B75E-4342-B40B-568BF879F7C5", "email": "example@youremail.com"},
        event={
            "name": "trigger_some_message",
            "source": "custom",
            "payload": {"some_value": "the_value"},
        },
    )

    matched = trigger_matches(
        definition, name="trigger_some_message", source="custom", context=context
    )
    outcome = enroll(definition, context)

    assert matched
    assert outcome.actions == [
        SendMessage("notify", 1, "webhook"),
        SendMessage("mail", 2, "email"),
    ]
    assert outcome.enrollment == ended(Status.COMPLETED, steps_taken=2)


# delay by duration


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1.5h", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_delay_by_duration_is_due_after_that_duration(duration: str, expected: timedelta) -> None:
    definition = journey({"pause": {"type": "delay", "duration": duration}})

    outcome = enroll(definition)

    assert outcome.enrollment.due_at == NOW + expected


DELAYED = journey(
    {
        "hook": {**WEBHOOK, "next": "pause"},
        "pause": {"type": "delay", "duration": "1h", "next": "after"},
        "after": EMAIL,
    }
)
DELAYED_DUE_AT = NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("now", "arrival"),
    [
        (NOW, None),
        (DELAYED_DUE_AT - timedelta(seconds=1), None),
        (DELAYED_DUE_AT - timedelta(microseconds=1), None),
        (NOW + timedelta(minutes=30), Arrival("purchased", {"total": 10})),
    ],
    ids=["right_away", "a_second_early", "a_microsecond_early", "an_event_meanwhile"],
)
def test_advance_before_the_delay_is_due_changes_nothing(
    now: datetime, arrival: Arrival | None
) -> None:
    paused = enroll(DELAYED).enrollment

    outcome = advance(DELAYED, paused, context=SIGNED_UP, now=now, arrival=arrival)

    assert outcome == Outcome(paused)


@pytest.mark.parametrize(
    "now",
    [DELAYED_DUE_AT, DELAYED_DUE_AT + timedelta(seconds=1), DELAYED_DUE_AT + timedelta(days=3)],
    ids=["at_due", "a_second_late", "days_late"],
)
def test_advance_once_the_delay_is_due_moves_on(now: datetime) -> None:
    paused = enroll(DELAYED).enrollment

    outcome = advance(DELAYED, paused, context=SIGNED_UP, now=now)

    assert outcome.actions == [SendMessage("after", 3, "email")]
    assert outcome.path == ["after"]
    assert outcome.enrollment == ended(Status.COMPLETED, steps_taken=3)


# delay until a time of day


def at(zone: str, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A wall-clock time in `zone`, as the UTC moment the engine returns."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize(
    ("zone", "now", "until", "expected"),
    [
        # before the time today: today
        ("UTC", at("UTC", 2026, 5, 4, 8, 0), "09:00", at("UTC", 2026, 5, 4, 9, 0)),
        ("Europe/Paris", at("Europe/Paris", 2026, 5, 4, 8, 59), "09:00",
         at("Europe/Paris", 2026, 5, 4, 9, 0)),
        # exactly at the time or after it: tomorrow
        ("Europe/Paris", at("Europe/Paris", 2026, 5, 4, 9, 0), "09:00",
         at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ("Europe/Paris", at("Europe/Paris", 2026, 5, 4, 21, 0), "09:00",
         at("Europe/Paris", 2026, 5, 5, 9, 0)),
        # "today" is the zone's date, not UTC's: 23:30 UTC is already tomorrow in Tokyo
        ("Asia/Tokyo", at("UTC", 2026, 5, 4, 23, 30), "09:00", at("Asia/Tokyo", 2026, 5, 5, 9, 0)),
        ("America/Los_Angeles", at("UTC", 2026, 5, 5, 1, 0), "20:00",
         at("America/Los_Angeles", 2026, 5, 4, 20, 0)),
        # midnight and the last minute of the day
        ("UTC", at("UTC", 2026, 5, 4, 12, 0), "00:00", at("UTC", 2026, 5, 5, 0, 0)),
        ("UTC", at("UTC", 2026, 5, 4, 12, 0), "23:59", at("UTC", 2026, 5, 4, 23, 59)),
        # across DST changes: the wall clock, not 24 hours later
        ("Europe/Paris", at("Europe/Paris", 2026, 3, 28, 10, 0), "09:00",
         datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),  # 09:00 CEST, 23 h later
        ("Europe/Paris", at("Europe/Paris", 2026, 10, 24, 10, 0), "09:00",
         datetime(2026, 10, 25, 8, 0, tzinfo=UTC)),  # 09:00 CET, 23 h later
        ("America/New_York", at("America/New_York", 2026, 3, 7, 10, 0), "09:00",
         datetime(2026, 3, 8, 13, 0, tzinfo=UTC)),  # 09:00 EDT
        ("America/New_York", at("America/New_York", 2026, 10, 31, 10, 0), "09:00",
         datetime(2026, 11, 1, 14, 0, tzinfo=UTC)),  # 09:00 EST
        # on the DST day itself, after the change
        ("Europe/Paris", at("Europe/Paris", 2026, 3, 29, 4, 0), "09:00",
         datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        ("America/New_York", at("America/New_York", 2026, 11, 1, 3, 0), "09:00",
         datetime(2026, 11, 1, 14, 0, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_delay_until_a_time_of_day_in_the_journeys_zone(
    zone: str, now: datetime, until: str, expected: datetime
) -> None:
    definition = journey({"pause": {"type": "delay", "until": until}}, timezone=zone)

    outcome = enroll(definition, now=now)

    assert outcome.enrollment.due_at == expected
    assert expected.astimezone(ZoneInfo(zone)).strftime("%H:%M") == until


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 never shows.
        ("Europe/Paris", datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
         datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # 03:30 CEST that day
        ("Europe/Paris", datetime(2026, 3, 29, 1, 15, tzinfo=UTC),  # 03:15 CEST, just after
         datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("Europe/Paris", datetime(2026, 3, 29, 1, 45, tzinfo=UTC),
         datetime(2026, 3, 30, 0, 30, tzinfo=UTC)),  # 02:30 CEST the next day
        # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT.
        ("America/New_York", datetime(2026, 3, 8, 6, 45, tzinfo=UTC),
         datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),  # 03:30 EDT that day
        ("America/New_York", datetime(2026, 3, 8, 7, 45, tzinfo=UTC),
         datetime(2026, 3, 9, 6, 30, tzinfo=UTC)),  # 02:30 EDT the next day
    ],
)  # fmt: skip
def test_delay_until_a_time_that_does_not_exist_that_day_gives_a_later_moment(
    zone: str, now: datetime, expected: datetime
) -> None:
    definition = journey({"pause": {"type": "delay", "until": "02:30"}}, timezone=zone)

    due_at = enroll(definition, now=now).enrollment.due_at

    assert due_at == expected
    assert due_at is not None and due_at > now
    assert due_at - now < timedelta(days=1)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 shows twice.
        (datetime(2026, 10, 24, 23, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # Between the two 02:30s the engine does not take the second one (01:30 UTC) but the next
        # day's: a daily loop through this delay fires once that day, not twice. (The docstring of
        # next_time_of_day, "the first moment after now", would say 01:30 UTC.)
        (datetime(2026, 10, 25, 0, 45, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)),
        (datetime(2026, 10, 25, 1, 45, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)),
    ],
)
def test_delay_until_a_time_shown_twice_takes_its_first_occurrence(
    now: datetime, expected: datetime
) -> None:
    definition = journey({"pause": {"type": "delay", "until": "02:30"}}, timezone="Europe/Paris")

    outcome = enroll(definition, now=now)

    assert outcome.enrollment.due_at == expected


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        ({"timezone": "America/New_York"}, at("America/New_York", 2026, 5, 4, 9, 0)),
        ({"timezone": "Asia/Tokyo"}, at("Asia/Tokyo", 2026, 5, 5, 9, 0)),  # 21:00 there already
        ({}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": None}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": ""}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": "Mars/Olympus_Mons"}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": "europe/paris"}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": "../../etc/passwd"}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": "/etc/localtime"}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": "zone.tab"}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": "UTC\x00"}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
        ({"timezone": 2}, at("Europe/Paris", 2026, 5, 5, 9, 0)),
    ],
    ids=[
        "new_york",
        "tokyo_tomorrow",
        "missing",
        "null",
        "empty",
        "unknown",
        "wrong_case",
        "path_traversal",
        "absolute_path",
        "not_a_zone_file",
        "null_byte",
        "a_number",
    ],
)
def test_delay_until_a_time_in_the_customers_zone_falls_back_to_the_journeys(
    customer: dict[str, Any], expected: datetime
) -> None:
    definition = journey(
        {"pause": {"type": "delay", "until": "09:00", "timezone": "customer"}},
        timezone="Europe/Paris",
    )
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # 14:00 in Paris, 08:00 in New York

    outcome = enroll(definition, Context(customer, SIGNED_UP.event), now=now)

    assert outcome.enrollment.due_at == expected


@pytest.mark.parametrize("folder", ["Europe", "America"])
def test_delay_in_the_customers_zone_named_like_a_tz_folder_falls_back(folder: str) -> None:
    definition = journey(
        {"pause": {"type": "delay", "until": "09:00", "timezone": "customer"}},
        timezone="Europe/Paris",
    )

    outcome = enroll(definition, Context({"timezone": folder}, SIGNED_UP.event))

    assert outcome.enrollment.due_at == at("Europe/Paris", 2026, 5, 5, 9, 0)


def test_delay_in_the_customers_zone_reads_a_timezone_set_earlier_in_the_run() -> None:
    definition = journey(
        {
            "locate": {
                "type": "update_attributes",
                "set": {"timezone": "America/New_York"},
                "next": "pause",
            },
            "pause": {"type": "delay", "until": "09:00", "timezone": "customer"},
        }
    )

    outcome = enroll(definition, Context({"timezone": "Asia/Tokyo"}, SIGNED_UP.event))

    assert outcome.enrollment.due_at == at("America/New_York", 2026, 5, 4, 9, 0)


def test_delay_with_its_own_zone_ignores_the_journeys_and_the_customers() -> None:
    definition = journey(
        {"pause": {"type": "delay", "until": "09:00", "timezone": "Asia/Tokyo"}},
        timezone="Europe/Paris",
    )
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo

    outcome = enroll(
        definition, Context({"timezone": "America/New_York"}, SIGNED_UP.event), now=now
    )

    assert outcome.enrollment.due_at == at("Asia/Tokyo", 2026, 5, 5, 9, 0)


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "UTC"])
@pytest.mark.parametrize(("hour", "minute"), [(0, 0), (2, 30), (9, 0), (23, 59)])
def test_next_time_of_day_is_always_in_the_next_25_hours_and_shows_that_time(
    zone: str, hour: int, minute: int
) -> None:
    # Every 7 h 13 min for a year from NOW: both DST changes of 2026 and the spring one of 2027.
    moments = [NOW + timedelta(minutes=minutes) for minutes in range(0, 366 * 24 * 60, 433)]

    for now in moments:
        due_at = next_time_of_day(now, hour, minute, ZoneInfo(zone))

        assert now < due_at <= now + timedelta(hours=25), now
        local = due_at.astimezone(ZoneInfo(zone))
        assert local.minute == minute, now
        assert local.hour in (hour, hour + 1), now  # hour + 1 only when `hour` is skipped
        assert local.hour == hour or (hour, minute) == (2, 30), now


# wait for an event


WAITING_FOR_PURCHASE = journey(
    {
        "wait": {
            "type": "wait_for_event",
            "event": "purchased",
            "timeout": "1d",
            "conditions": {
                "all": [
                    condition("payload.total", "gte", 50),
                    condition("customer.country", "eq", "FR"),
                ]
            },
            "next": "thanks",
            "timeout_next": "nudge",
        },
        "thanks": {**EMAIL, "subject": "Thanks"},
        "nudge": {**WEBHOOK, "next": "stop"},
        "stop": {"type": "exit"},
    }
)
TIMEOUT_AT = NOW + timedelta(days=1)
BIG_PURCHASE = Arrival("purchased", {"total": 80, "currency": "EUR"})


def test_wait_for_event_takes_next_when_the_awaited_event_matches() -> None:
    paused = enroll(WAITING_FOR_PURCHASE).enrollment

    outcome = advance(
        WAITING_FOR_PURCHASE,
        paused,
        context=SIGNED_UP,
        now=NOW + timedelta(hours=3),
        arrival=BIG_PURCHASE,
    )

    assert outcome.actions == [SendMessage("thanks", 2, "email")]
    assert outcome.path == ["thanks"]
    assert outcome.enrollment == ended(Status.COMPLETED, steps_taken=2)


@pytest.mark.parametrize(
    "arrival",
    [
        None,
        Arrival("page_viewed", {"total": 80}),
        Arrival("Purchased", {"total": 80}),
        Arrival("signed_up", {"total": 80}),
    ],
    ids=["nothing", "another_event", "wrong_case", "the_trigger_event_again"],
)
def test_wait_for_event_ignores_unrelated_events_and_keeps_its_timer(
    arrival: Arrival | None,
) -> None:
    paused = enroll(WAITING_FOR_PURCHASE).enrollment

    early = advance(
        WAITING_FOR_PURCHASE,
        paused,
        context=SIGNED_UP,
        now=TIMEOUT_AT - timedelta(seconds=1),
        arrival=arrival,
    )
    timed_out = advance(WAITING_FOR_PURCHASE, early.enrollment, context=SIGNED_UP, now=TIMEOUT_AT)

    assert early == Outcome(paused)
    assert early.enrollment.due_at == TIMEOUT_AT
    assert timed_out.path == ["nudge", "stop"]


@pytest.mark.parametrize(
    ("customer", "arrival"),
    [
        (ADA, Arrival("purchased", {"total": 20})),
        (ADA, Arrival("purchased", {"total": "80"})),
        (ADA, Arrival("purchased", {})),
        (ADA, Arrival("purchased", {"order": {"total": 80}})),
        ({**ADA, "country": "DE"}, BIG_PURCHASE),
        ({"email": "ada@example.com"}, BIG_PURCHASE),
    ],
    ids=[
        "payload_too_small",
        "payload_of_another_type",
        "payload_missing",
        "payload_elsewhere",
        "customer_elsewhere",
        "customer_attribute_missing",
    ],
)
def test_wait_for_event_ignores_the_awaited_event_when_its_conditions_fail(
    customer: dict[str, Any], arrival: Arrival
) -> None:
    context = Context(customer, SIGNED_UP.event)
    paused = enroll(WAITING_FOR_PURCHASE, context).enrollment

    outcome = advance(
        WAITING_FOR_PURCHASE, paused, context=context, now=NOW + timedelta(hours=1), arrival=arrival
    )

    assert outcome == Outcome(paused)


def test_wait_for_event_conditions_read_the_awaited_events_payload_not_the_triggers() -> None:
    definition = journey(
        {
            "wait": {
                "type": "wait_for_event",
                "event": "upgraded",
                "timeout": "1d",
                "conditions": {"all": [condition("payload.plan", "eq", "team")]},
                "next": "thanks",
            },
            "thanks": EMAIL,
        }
    )
    paused = enroll(definition).enrollment  # the trigger's payload says plan: pro

    later = NOW + timedelta(hours=1)
    to_pro = advance(
        definition,
        paused,
        context=SIGNED_UP,
        now=later,
        arrival=Arrival("upgraded", {"plan": "pro"}),
    )
    to_team = advance(
        definition,
        paused,
        context=SIGNED_UP,
        now=later,
        arrival=Arrival("upgraded", {"plan": "team"}),
    )

    assert to_pro == Outcome(paused)
    assert to_team.actions == [SendMessage("thanks", 2, "email")]


def test_wait_for_event_with_any_conditions_needs_one_of_them() -> None:
    definition = journey(
        {
            "wait": {
                "type": "wait_for_event",
                "event": "purchased",
                "timeout": "1d",
                "conditions": {
                    "any": [
                        condition("payload.currency", "eq", "EUR"),
                        condition("payload.currency", "eq", "GBP"),
                    ]
                },
                "next": "thanks",
            },
            "thanks": EMAIL,
        }
    )
    paused = enroll(definition).enrollment
    later = NOW + timedelta(hours=1)

    in_gbp = advance(
        definition,
        paused,
        context=SIGNED_UP,
        now=later,
        arrival=Arrival("purchased", {"currency": "GBP"}),
    )
    in_usd = advance(
        definition,
        paused,
        context=SIGNED_UP,
        now=later,
        arrival=Arrival("purchased", {"currency": "USD"}),
    )

    assert in_gbp.path == ["thanks"]
    assert in_usd == Outcome(paused)


@pytest.mark.parametrize(
    "arrival",
    [None, Arrival("page_viewed", {}), Arrival("purchased", {"total": 1})],
    ids=["nothing", "another_event", "awaited_event_not_matching"],
)
@pytest.mark.parametrize(
    "now", [TIMEOUT_AT, TIMEOUT_AT + timedelta(hours=5)], ids=["at_timeout", "after_timeout"]
)
def test_wait_for_event_takes_timeout_next_once_timed_out(
    now: datetime, arrival: Arrival | None
) -> None:
    paused = enroll(WAITING_FOR_PURCHASE).enrollment

    outcome = advance(WAITING_FOR_PURCHASE, paused, context=SIGNED_UP, now=now, arrival=arrival)

    assert outcome.actions == [SendMessage("nudge", 2, "webhook")]
    assert outcome.path == ["nudge", "stop"]
    assert outcome.enrollment == ended(Status.EXITED, steps_taken=3)


def test_wait_for_event_timing_out_without_timeout_next_completes() -> None:
    definition = journey(
        {
            "wait": {
                "type": "wait_for_event",
                "event": "purchased",
                "timeout": "2h",
                "next": "thanks",
            },
            "thanks": EMAIL,
        }
    )
    paused = enroll(definition).enrollment

    outcome = advance(definition, paused, context=SIGNED_UP, now=NOW + timedelta(hours=2))

    assert outcome.actions == []
    assert outcome.enrollment == ended(Status.COMPLETED, steps_taken=1)


def test_wait_for_event_awaited_event_exactly_at_the_timeout_times_out() -> None:
    # The wait covers [start, due_at): at due_at the customer has not made it in time.
    paused = enroll(WAITING_FOR_PURCHASE).enrollment

    outcome = advance(
        WAITING_FOR_PURCHASE, paused, context=SIGNED_UP, now=TIMEOUT_AT, arrival=BIG_PURCHASE
    )

    assert outcome == advance(WAITING_FOR_PURCHASE, paused, context=SIGNED_UP, now=TIMEOUT_AT)
    assert SendMessage("thanks", 2, "email") not in outcome.actions


@pytest.mark.parametrize(
    "late", [timedelta(microseconds=1), timedelta(seconds=1), timedelta(days=3)]
)
def test_wait_for_event_awaited_event_after_the_timeout_takes_timeout_next(
    late: timedelta,
) -> None:
    paused = enroll(WAITING_FOR_PURCHASE).enrollment

    outcome = advance(
        WAITING_FOR_PURCHASE,
        paused,
        context=SIGNED_UP,
        now=TIMEOUT_AT + late,
        arrival=BIG_PURCHASE,
    )

    assert outcome.path == ["nudge", "stop"]


# branch


ROUTED = journey(
    {
        "route": {
            "type": "branch",
            "branches": [
                {
                    "when": {"all": [condition("customer.plan", "eq", "enterprise")]},
                    "next": "sales",
                },
                {"when": {"all": [condition("payload.seats", "gte", 10)]}, "next": "team"},
                {
                    "when": {"any": [condition("customer.plan", "in", ["pro", "enterprise"])]},
                    "next": "pro",
                },
            ],
            "default": "free",
        },
        "sales": {**WEBHOOK, "url": "https://example.com/sales"},
        "team": {**EMAIL, "subject": "team"},
        "pro": {**EMAIL, "subject": "pro"},
        "free": {**EMAIL, "subject": "free"},
    }
)


@pytest.mark.parametrize(
    ("plan", "seats", "expected"),
    [
        ("enterprise", 50, "sales"),  # matches all three: the first wins
        ("pro", 50, "team"),  # matches the last two
        ("pro", 3, "pro"),
        ("free", 10, "team"),
        ("free", 3, "free"),
        (None, None, "free"),
    ],
)
def test_branch_takes_the_first_matching_branch_else_the_default(
    plan: str | None, seats: int | None, expected: str
) -> None:
    customer = {} if plan is None else {"plan": plan}
    payload = {} if seats is None else {"seats": seats}
    context = Context(customer, {"name": "signed_up", "source": "web", "payload": payload})

    outcome = enroll(ROUTED, context)

    assert outcome.path == ["route", expected]
    assert [action.step for action in outcome.actions if isinstance(action, SendMessage)] == [
        expected
    ]


def test_branch_without_a_match_nor_a_default_completes() -> None:
    definition = journey(
        {
            "route": {
                "type": "branch",
                "branches": [
                    {"when": {"all": [condition("customer.plan", "eq", "pro")]}, "next": "pro"}
                ],
            },
            "pro": EMAIL,
        }
    )

    outcome = enroll(definition)  # Ada is on the free plan

    assert outcome.actions == []
    assert outcome.path == ["route"]
    assert outcome.enrollment == ended(Status.COMPLETED, steps_taken=1)


PRO = condition("customer.plan", "eq", "pro")
FREE = condition("customer.plan", "eq", "free")
FR = condition("customer.country", "eq", "FR")
DE = condition("customer.country", "eq", "DE")
MANY_SEATS = condition("payload.seats", "gte", 3)


@pytest.mark.parametrize(
    ("when", "matched"),
    [
        ({}, True),  # no conditions: always
        ({"all": [FREE, FR, MANY_SEATS]}, True),
        ({"all": [FREE, DE]}, False),  # all: every one must hold
        ({"any": [PRO, FR]}, True),  # any: one is enough
        ({"any": [PRO, DE]}, False),
        ({"all": [FREE], "any": [PRO, FR]}, True),  # both groups must hold
        ({"all": [FREE], "any": [PRO, DE]}, False),
        ({"all": [PRO], "any": [FREE, FR]}, False),
        ({"all": [], "any": []}, True),
    ],
)
def test_branch_conditions_need_all_of_all_and_one_of_any(
    when: dict[str, Any], matched: bool
) -> None:
    definition = journey(
        {
            "route": {
                "type": "branch",
                "branches": [{"when": when, "next": "yes"}],
                "default": "no",
            },
            "yes": EMAIL,
            "no": EMAIL,
        }
    )

    outcome = enroll(definition)  # Ada: free plan, FR; the trigger's payload: 3 seats

    assert outcome.path == ["route", "yes" if matched else "no"]


def test_branch_leading_to_exit_ends_the_enrollment_as_exited() -> None:
    definition = journey(
        {
            "route": {
                "type": "branch",
                "branches": [{"when": {"all": [FREE]}, "next": "stop"}],
                "default": "hook",
            },
            "stop": {"type": "exit"},
            "hook": WEBHOOK,
        }
    )

    outcome = enroll(definition)

    assert outcome.actions == []
    assert outcome.enrollment == ended(Status.EXITED, steps_taken=2)


# trigger_matches


def trigger_context(customer: dict[str, Any], payload: dict[str, Any]) -> Context:
    return Context(customer, {"name": "signed_up", "source": "web", "payload": payload})


@pytest.mark.parametrize(
    ("trigger", "name", "source", "context", "matched"),
    [
        ({"event": "signed_up"}, "signed_up", "web", SIGNED_UP, True),
        ({"event": "signed_up"}, "signed_up", "mobile", SIGNED_UP, True),  # no source: any
        ({"event": "signed_up"}, "logged_in", "web", SIGNED_UP, False),
        ({"event": "signed_up"}, "Signed_Up", "web", SIGNED_UP, False),
        ({"event": "signed_up", "source": "web"}, "signed_up", "web", SIGNED_UP, True),
        ({"event": "signed_up", "source": "web"}, "signed_up", "mobile", SIGNED_UP, False),
        ({"event": "signed_up", "source": "web"}, "logged_in", "web", SIGNED_UP, False),
        # conditions on the event's payload
        ({"event": "signed_up", "conditions": {"all": [condition("payload.plan", "eq", "pro")]}},
         "signed_up", "web", trigger_context({}, {"plan": "pro"}), True),
        ({"event": "signed_up", "conditions": {"all": [condition("payload.plan", "eq", "pro")]}},
         "signed_up", "web", trigger_context({"plan": "pro"}, {"plan": "free"}), False),
        ({"event": "signed_up", "conditions": {"all": [condition("payload.plan", "eq", "pro")]}},
         "signed_up", "web", trigger_context({"plan": "pro"}, {}), False),
        ({"event": "signed_up", "conditions": {"all": [condition("payload.cart.items", "gt", 2)]}},
         "signed_up", "web", trigger_context({}, {"cart": {"items": 3}}), True),
        ({"event": "signed_up", "conditions": {"all": [condition("payload.plan", "exists")]}},
         "signed_up", "web", Context({}, {"name": "signed_up"}), False),  # no payload at all
        # conditions on customer attributes
        ({"event": "signed_up", "conditions": {"all": [condition("customer.country", "eq", "FR")]}},
         "signed_up", "web", trigger_context({"country": "FR"}, {"country": "DE"}), True),
        ({"event": "signed_up", "conditions": {"all": [condition("customer.country", "eq", "FR")]}},
         "signed_up", "web", trigger_context({"country": "DE"}, {"country": "FR"}), False),
        ({"event": "signed_up", "conditions": {"all": [condition("customer.vip", "not_exists")]}},
         "signed_up", "web", trigger_context({}, {}), True),
        # both, and any
        ({"event": "signed_up", "source": "web", "conditions": {
            "all": [condition("customer.country", "eq", "FR")],
            "any": [condition("payload.seats", "gte", 10), condition("payload.plan", "eq", "pro")],
        }}, "signed_up", "web", SIGNED_UP, True),
        ({"event": "signed_up", "source": "web", "conditions": {
            "all": [condition("customer.country", "eq", "FR")],
            "any": [condition("payload.seats", "gte", 10), condition("payload.plan", "eq", "team")],
        }}, "signed_up", "web", SIGNED_UP, False),
        # conditions never rescue a wrong name or source
        ({"event": "signed_up", "source": "web", "conditions": {}},
         "signed_up", "api", SIGNED_UP, False),
    ],
)  # fmt: skip
def test_trigger_matches_name_source_and_conditions(
    trigger: dict[str, Any], name: str, source: str, context: Context, matched: bool
) -> None:
    definition = journey({"hook": WEBHOOK}, trigger=trigger)

    assert trigger_matches(definition, name=name, source=source, context=context) is matched


# step numbers and ended enrollments


def test_step_numbers_keep_increasing_across_advances_through_a_loop() -> None:
    definition = journey(
        {
            "remind": {**WEBHOOK, "next": "pause"},
            "pause": {"type": "delay", "duration": "1d", "next": "remind"},
        }
    )
    outcome = enroll(definition)
    sent = list(outcome.actions)

    for day in range(1, 4):
        outcome = advance(
            definition, outcome.enrollment, context=SIGNED_UP, now=NOW + timedelta(days=day)
        )
        sent.extend(outcome.actions)

    assert sent == [SendMessage("remind", number, "webhook") for number in (1, 3, 5, 7)]
    assert (
        len({("enr-1", action.number) for action in sent if isinstance(action, SendMessage)}) == 4
    )
    assert outcome.enrollment == waiting("pause", NOW + timedelta(days=4), steps_taken=8)


def test_step_numbers_continue_after_a_wait_for_event() -> None:
    definition = journey(
        {
            "hello": {**EMAIL, "next": "wait"},
            "wait": {
                "type": "wait_for_event",
                "event": "clicked",
                "timeout": "1d",
                "next": "hook",
                "timeout_next": "hello",
            },
            "hook": WEBHOOK,
        }
    )
    first = enroll(definition)

    timed_out = advance(
        definition, first.enrollment, context=SIGNED_UP, now=NOW + timedelta(days=1)
    )
    clicked = advance(
        definition,
        timed_out.enrollment,
        context=SIGNED_UP,
        now=NOW + timedelta(days=1, hours=1),
        arrival=Arrival("clicked", {}),
    )

    assert first.actions == [SendMessage("hello", 1, "email")]
    assert timed_out.actions == [SendMessage("hello", 3, "email")]
    assert timed_out.enrollment.due_at == NOW + timedelta(days=2)  # a new wait, a new timer
    assert clicked.actions == [SendMessage("hook", 5, "webhook")]


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.EXITED])
@pytest.mark.parametrize(
    "arrival", [None, Arrival("purchased", {"total": 80})], ids=["timer", "event"]
)
def test_advancing_an_ended_enrollment_does_nothing(
    status: Status, arrival: Arrival | None
) -> None:
    finished = ended(status, steps_taken=3)

    outcome = advance(
        WAITING_FOR_PURCHASE,
        finished,
        context=SIGNED_UP,
        now=NOW + timedelta(days=30),
        arrival=arrival,
    )

    assert outcome == Outcome(finished)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.EXITED])
def test_advancing_an_ended_enrollment_that_still_names_a_step_does_nothing(
    status: Status,
) -> None:
    stale = Enrollment("enr-1", "cus-1", 3, status, "wait", NOW, "purchased", steps_taken=3)

    outcome = advance(
        WAITING_FOR_PURCHASE,
        stale,
        context=SIGNED_UP,
        now=NOW + timedelta(days=2),
        arrival=BIG_PURCHASE,
    )

    assert outcome == Outcome(stale)


def test_an_instant_loop_in_unvalidated_data_stops_after_max_steps() -> None:
    looping = msgspec.convert(
        {
            "name": "bad",
            "trigger": {"event": "signed_up"},
            "start": "ping",
            "steps": {"ping": {**WEBHOOK, "next": "pong"}, "pong": {**WEBHOOK, "next": "ping"}},
        },
        Journey,
    )

    outcome = enroll(looping)

    assert len(outcome.path) == MAX_STEPS_PER_RUN
    assert outcome.enrollment.status is not Status.WAITING
