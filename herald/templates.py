"""Message templates: Liquid (python-liquid), strict about missing variables.

A template sees `customer` (its attributes, plus `id`) and `event` (the triggering event: `name`,
`payload`, ...). A variable that is missing is an error reported on the message, never a silent
blank; `{{ customer.name | default: "there" }}` is how a template says a blank is fine.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from liquid import Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError

from herald.errors import InvalidRequest

_ENVIRONMENT = Environment(undefined=StrictDefaultUndefined, autoescape=False)


class TemplateError(InvalidRequest):
    """Raised when a template cannot render: a missing variable, a bad filter argument."""


def check_template(source: str) -> str | None:
    """Why `source` does not parse as a template, or None when it does."""
    try:
        template = _parse(source)
    except LiquidError as exc:
        return _first_line(exc)
    return _unknown_filter(source, template)


def _unknown_filter(source: str, template: Any) -> str | None:
    """A filter the template uses that Liquid does not have (it would fail every render)."""
    for name, spans in template.analyze().filters.items():
        if name not in _ENVIRONMENT.filters:
            before = source[: spans[0].index]
            line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
            return f"unknown filter {name!r} at line {line}, column {column}"
    return None


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render `source` with `variables`; TemplateError names what is missing."""
    try:
        return str(_parse(source).render(**variables))
    except LiquidError as exc:
        raise TemplateError(f"The template could not render: {_first_line(exc)}.") from None


@functools.lru_cache(maxsize=1_024)
def _parse(source: str) -> Any:
    return _ENVIRONMENT.from_string(source)


def _first_line(exc: LiquidError) -> str:
    return str(exc).splitlines()[0].strip()
