"""Apply logged events to customers: look up the candidates, let core decide, write the decision."""

from __future__ import annotations

from typing import Any

import msgspec

from herald.core.events import IDENTIFY, SET
from herald.core.identity import ANONYMOUS_KEY, Customer, Found, Outcome, decide
from herald.core.schema import CustomerSchema
from herald.store.ledger import Ledger, key_text

MESSAGE_SOURCE = "message"  # status events about a message Herald sent: $delivered, $opened, ...


class LoggedEvent(msgspec.Struct, rename="camel", frozen=True):
    """The fields of a logged event that processing reads (ingestion validated them all).

    The payload stays raw JSON: only the events whose payload matters to identity decode it.
    """

    event: str
    correlation_key: str
    correlation_value: str
    source: str = ""
    payload: msgspec.Raw = msgspec.Raw(b"{}")
    fcm: dict[str, Any] | None = msgspec.field(default=None, name="$fcm")

    def fields(self) -> dict[str, Any]:
        return _decode_payload(self.payload)


decode_events = msgspec.json.Decoder(list[LoggedEvent]).decode
_decode_payload = msgspec.json.Decoder(dict[str, Any]).decode
IDENTITY_EVENTS = frozenset((IDENTIFY, SET))
_ATTRIBUTED = Outcome.ATTRIBUTED.value


def lookup_keys(
    workspace_id: int, event: LoggedEvent, schema: CustomerSchema
) -> list[tuple[int, str, str]]:
    """The customer keys processing `event` will look up (to load them in bulk first)."""
    keys = [(workspace_id, event.correlation_key, event.correlation_value)]
    if event.event == IDENTIFY and schema.primary_key is not None:
        text = key_text(event.fields().get("distinct_id"))
        if text is not None:
            keys.append((workspace_id, schema.primary_key, text))
    return keys


def apply_event(
    ledger: Ledger,
    *,
    workspace_id: int,
    schema: CustomerSchema,
    event: LoggedEvent,
    event_id: int,
) -> int:
    """Attribute one event to its customer, apply its identity effects and record the outcome.

    Returns the customer the event now belongs to.
    """
    resolved_id = ledger.resolve(
        workspace_id, event.correlation_key, event.correlation_value, schema
    )
    if resolved_id is not None and event.event not in IDENTITY_EVENTS and not event.fcm:
        # decide()'s commonest answer, taken without building its inputs: an ordinary event of
        # a known customer is attributed to it and changes nothing else.
        ledger.record(event_id, workspace_id, resolved_id, _ATTRIBUTED, None)
        _record_message_status(ledger, event, event_id, workspace_id, resolved_id)
        return resolved_id
    payload = event.fields()
    found = Found(
        resolved=ledger.customer(resolved_id, schema) if resolved_id is not None else None,
        key_owner=_key_owner(ledger, workspace_id, event, payload, schema),
    )
    decision = decide(
        event=event.event,
        correlation_key=event.correlation_key,
        correlation_value=event.correlation_value,
        payload=payload,
        schema=schema,
        found=found,
        new_id=lambda: str(ledger.new_id()),
        push_tokens=event.fcm,
    )
    customer_id = int(decision.customer_id)
    if decision.create:
        ledger.create(workspace_id, customer_id)
    if decision.merge_from is not None:
        ledger.merge(int(decision.merge_from), customer_id)
    if decision.identifier is not None:
        ledger.add_identifier(customer_id, decision.identifier)
    if decision.attributes:
        ledger.set_attributes(customer_id, decision.attributes)
    ledger.record(event_id, workspace_id, customer_id, decision.outcome.value, decision.conflict)
    _record_message_status(ledger, event, event_id, workspace_id, customer_id)
    return customer_id


def _record_message_status(
    ledger: Ledger, event: LoggedEvent, event_id: int, workspace_id: int, customer_id: int
) -> None:
    if event.source != MESSAGE_SOURCE or not event.event.startswith("$"):
        return
    payload = event.fields()
    message_id = payload.get("messageId", payload.get("message_id"))
    if isinstance(message_id, str) and message_id:
        ledger.record_message_status(
            event_id, workspace_id, message_id, event.event[1:], customer_id
        )


def _key_owner(
    ledger: Ledger,
    workspace_id: int,
    event: LoggedEvent,
    payload: dict[str, Any],
    schema: CustomerSchema,
) -> Customer | None:
    if event.event != IDENTIFY or schema.primary_key is None:
        return None
    owner_id = ledger.resolve(workspace_id, schema.primary_key, payload.get("distinct_id"), schema)
    return ledger.customer(owner_id, schema) if owner_id is not None else None


__all__ = ["ANONYMOUS_KEY", "LoggedEvent", "apply_event", "decode_events", "lookup_keys"]
