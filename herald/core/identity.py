"""Which customer an event belongs to, and what it changes about customers (DESIGN §3).

Pure decisions: the processor looks up the candidates (`Found`), `decide` says what to do, and
the processor applies the `Decision` to the store. No I/O, no ids made here: new customers are
named by the caller's `new_id`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from herald.core.events import IDENTIFY, SET
from herald.core.schema import CustomerSchema

ANONYMOUS_KEY = "_id"  # correlationKey naming Herald's own customer ids, anonymous ones included


@dataclass(frozen=True)
class Customer:
    """What the decision needs to know of an existing customer."""

    id: str
    primary_key: Any | None = None  # the value of the schema's primary-key attribute, if any

    @property
    def anonymous(self) -> bool:
        return self.primary_key is None


@dataclass(frozen=True)
class Found:
    """The candidates the processor looked up for one event."""

    resolved: Customer | None  # by (correlationKey, correlationValue)
    key_owner: Customer | None = (
        None  # for $identify: the customer whose primary key is distinct_id
    )


class Outcome(StrEnum):
    """What the processor did with an event, recorded on it."""

    ATTRIBUTED = "attributed"
    CREATED = "created"
    IDENTIFIED = "identified"
    MERGED = "merged"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Decision:
    """The effects of one event on customers, in the order to apply them."""

    customer_id: str  # who the event belongs to once applied
    outcome: Outcome
    create: bool = False  # make `customer_id` first
    identifier: str | None = None  # an `_id` to attach to `customer_id`
    attributes: Mapping[str, Any] = field(default_factory=dict)  # to set on `customer_id`
    merge_from: str | None = None  # fold this (anonymous) customer into `customer_id`
    conflict: str | None = None  # why an identify was not applied


def decide(
    *,
    event: str,
    correlation_key: str,
    correlation_value: str,
    payload: Mapping[str, Any],
    schema: CustomerSchema,
    found: Found,
    new_id: Callable[[], str],
    push_tokens: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide what an event does to customers, from the candidates the processor found.

    `push_tokens` (an event's `$fcm` object) are kept as attributes of the event's customer.
    """
    decision = _decide(event, correlation_key, correlation_value, payload, schema, found, new_id)
    tokens = {
        name: value
        for name, value in (push_tokens or {}).items()
        if isinstance(value, str) and value and name != schema.primary_key
    }
    if tokens:
        return _with(decision, attributes={**decision.attributes, **tokens})
    return decision


def _decide(
    event: str,
    correlation_key: str,
    correlation_value: str,
    payload: Mapping[str, Any],
    schema: CustomerSchema,
    found: Found,
    new_id: Callable[[], str],
) -> Decision:
    base = _attribution(correlation_key, correlation_value, schema, found.resolved, new_id)
    if event == IDENTIFY:
        return _identify(base, payload.get("distinct_id"), schema, found)
    if event == SET:
        settable = {name: value for name, value in payload.items() if name != schema.primary_key}
        return _with(base, attributes={**base.attributes, **settable})
    return base


def _attribution(
    correlation_key: str,
    correlation_value: str,
    schema: CustomerSchema,
    resolved: Customer | None,
    new_id: Callable[[], str],
) -> Decision:
    if resolved is not None:
        return Decision(resolved.id, Outcome.ATTRIBUTED)
    if correlation_key == ANONYMOUS_KEY:
        return Decision(new_id(), Outcome.CREATED, create=True, identifier=correlation_value)
    return Decision(
        new_id(), Outcome.CREATED, create=True, attributes={correlation_key: correlation_value}
    )


def _identify(base: Decision, distinct_id: Any, schema: CustomerSchema, found: Found) -> Decision:
    assert schema.primary_key is not None, "ingestion refuses $identify without a primary key"
    key = schema.primary_key
    owner = found.key_owner
    current = found.resolved
    if owner is None:
        if current is not None and not current.anonymous and current.primary_key != distinct_id:
            return _with(
                base,
                outcome=Outcome.CONFLICT,
                conflict=f"already identified as {current.primary_key!r}; not renamed",
            )
        identified = {**base.attributes, key: distinct_id}
        return _with(base, outcome=Outcome.IDENTIFIED, attributes=identified)
    if owner.id == base.customer_id:
        return base
    if current is None or current.anonymous:
        return Decision(
            owner.id,
            Outcome.MERGED,
            identifier=base.identifier,
            attributes={name: value for name, value in base.attributes.items() if name != key},
            merge_from=None if base.create else base.customer_id,
        )
    return _with(
        base,
        outcome=Outcome.CONFLICT,
        conflict=(
            f"identified as {current.primary_key!r}, and {distinct_id!r} is another customer; "
            "two identified customers are never merged"
        ),
    )


def _with(base: Decision, **changes: Any) -> Decision:
    return dataclasses.replace(base, **changes)
