"""Reading journey documents (JSON from the API, YAML or JSON files from the CLI) into Journeys.

Every problem is reported at once where possible: a document that decodes is validated in full
(core/journeys.validate, with the Liquid template check); one that does not decode reports the
place msgspec or the YAML parser stopped at.
"""

from __future__ import annotations

from typing import Any

import msgspec
import yaml

from herald.core.events import translate_validation_error
from herald.core.journeys import STEP_TYPES, Journey, JourneyError, Step, validate
from herald.errors import InvalidJourney
from herald.templates import check_template

NOT_A_MAPPING = "a journey document is a mapping (an object): name, trigger, start, steps"


def from_value(value: Any) -> Journey:
    """A decoded JSON/YAML value as a valid Journey; InvalidJourney lists every problem."""
    if not isinstance(value, dict):
        raise _invalid([JourneyError(NOT_A_MAPPING)])
    if problems := _step_type_problems(value):
        raise _invalid(problems)
    try:
        journey = msgspec.convert(value, Journey)
    except msgspec.ValidationError as exc:
        field, message = translate_validation_error(str(exc))
        raise _invalid(_step_problems(value) or [JourneyError(message, field=field)]) from None
    problems = validate(journey, check_template=check_template)
    if problems:
        raise _invalid(problems)
    return journey


def from_yaml(text: str) -> Journey:
    """A YAML (or JSON: YAML reads it) journey document; syntax errors give line and column."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise _invalid([JourneyError(f"the file is not valid YAML: {problem}{where}")]) from None
    if not isinstance(value, dict):
        raise _invalid(
            [JourneyError("a journey document is a mapping (name, trigger, start, steps)")]
        )
    return from_value(value)


def _step_problems(value: Any) -> list[JourneyError]:
    """Decode problems inside steps, by step (msgspec's path names a step `[...]`)."""
    steps = value.get("steps") if isinstance(value, dict) else None
    problems = []
    for name, step in (steps or {}).items() if isinstance(steps, dict) else ():
        try:
            msgspec.convert(step, Step)
        except msgspec.ValidationError as exc:
            field, message = translate_validation_error(str(exc))
            problems.append(JourneyError(message, step=str(name), field=field))
    return problems


def _step_type_problems(value: Any) -> list[JourneyError]:
    """Unknown step types, by step (msgspec would name neither the step nor the types)."""
    steps = value.get("steps") if isinstance(value, dict) else None
    if not isinstance(steps, dict):
        return []
    return [
        JourneyError(
            f"{step.get('type')!r} is not a step type; use one of {', '.join(STEP_TYPES)}",
            step=str(name),
            field="type",
        )
        for name, step in steps.items()
        if isinstance(step, dict) and step.get("type") not in STEP_TYPES
    ]


def _invalid(problems: list[JourneyError]) -> InvalidJourney:
    first = problems[0]
    where = " ".join(part for part in (first.step and f"step {first.step!r}", first.field) if part)
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidJourney(
        f"The journey cannot run: {where + ': ' if where else ''}{first.message}{more}.",
        problems=problems,
    )
