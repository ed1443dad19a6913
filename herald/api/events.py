"""Reading events back (admin key): the log, one event, the quarantine, the counters."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from herald.api.errors import json_response
from herald.api.ingest import append_request, read_body
from herald.api.schemas import (
    CountersOut,
    EventList,
    EventOut,
    ProcessingOut,
    QuarantineItem,
    QuarantineList,
    ReplayResult,
)
from herald.api.state import AppState
from herald.core.events import WireEvent, check_batch, decode_single, parse_timestamp
from herald.core.numbers import whole_number
from herald.errors import InvalidEvents, InvalidRequest, NotFound
from herald.store.base import EventFilter, QuarantinedEvent, StoredEvent

PENDING = "pending"  # the processor has not reached the event yet
DEFAULT_PAGE = 100
MAX_PAGE = 1_000
_decode_event = msgspec.json.Decoder(WireEvent).decode


async def list_events(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    params = request.query_params
    known_params(request, EVENT_PARAMS)
    filters = EventFilter(
        correlation_value=params.get("correlationValue"),
        event=params.get("event"),
        start=_time_param(params.get("from"), "from"),
        end=_time_param(params.get("to"), "to"),
    )
    page = await state.store.list_events(
        key.workspace.id, filters, cursor=params.get("cursor"), limit=page_limit(request)
    )
    return json_response(EventList([event_out(e) for e in page.events], page.next_cursor))


async def get_event(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    text = request.path_params["uuid"]
    try:
        event_id = UUID(text).bytes
    except ValueError:
        raise NotFound(f"{text!r} is not a UUID, so no event has it.") from None
    stored = await state.store.get_event(key.workspace.id, event_id)
    done = await state.store.event_processing(key.workspace.id, event_id)
    processing = (
        ProcessingOut(done.outcome, done.customer_id, done.detail)
        if done is not None
        else ProcessingOut(PENDING)
    )
    return json_response(msgspec.structs.replace(event_out(stored), processing=processing))


async def list_quarantine(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    known_params(request, PAGE_PARAMS)
    cursor = request.query_params.get("cursor")
    after_id = whole_number(cursor) if cursor is not None else None
    if cursor is not None and after_id is None:
        raise InvalidRequest(f"cursor {cursor!r} is not one Herald gave out.", field="cursor")
    limit = page_limit(request)
    items = await state.store.list_quarantine(key.workspace.id, after_id=after_id, limit=limit)
    next_cursor = str(items[-1].id) if len(items) == limit else None
    return json_response(QuarantineList([_item(item) for item in items], next_cursor))


async def get_quarantined(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    item = await state.store.get_quarantined(key.workspace.id, request.path_params["id"])
    return json_response(_item(item))


async def delete_quarantined(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    await state.store.delete_quarantined(key.workspace.id, request.path_params["id"])
    return Response(status_code=204)


async def replay_quarantined(request: Request) -> Response:
    """Commit a corrected version of a quarantined event (the body), or the original if empty."""
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    workspace = key.workspace
    item = await state.store.get_quarantined(workspace.id, request.path_params["id"])
    body = await read_body(request, state.settings.max_event_bytes) or item.raw
    envelope = decode_single(body)
    if msgspec.json.decode(body).keys() == {"batch"}:
        raise InvalidRequest(
            'Replay takes the corrected event itself as the body, not {"batch": [...]}.'
        )
    checked = check_batch(
        envelope,
        workspace_id=workspace.id,
        schema=workspace.schema,
        limits=state.limits,
        new_id=lambda: _uuid_of(item),
    )
    if checked.rejected:
        raise InvalidEvents(
            "The corrected event is still invalid; nothing was stored.",
            errors=checked.rejected[0].errors,
        )
    result = await state.store.append(append_request(workspace.id, checked))
    await state.store.mark_replayed(workspace.id, item.id)
    state.metrics.count_events(result.accepted, result.duplicates, 0)
    event_uuid = UUID(bytes=checked.accepted[0].id)
    return json_response(ReplayResult(item.id, str(event_uuid), result.duplicates > 0), 201)


async def stats(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    counters = await state.store.counters(key.workspace.id)
    return json_response(
        CountersOut(
            key.workspace.name,
            counters.accepted,
            counters.duplicates,
            counters.rejected,
            counters.quarantined,
        )
    )


def event_out(stored: StoredEvent) -> EventOut:
    event = _decode_event(stored.raw)
    return EventOut(
        uuid=stored.uuid,
        event=event.event,
        correlationKey=event.correlation_key,
        correlationValue=event.correlation_value,
        source=event.source,
        payload=event.payload,
        receivedAt=stored.received_at,
        cursor=stored.cursor,
        timestamp=event.timestamp,
        sentAt=stored.sent_at,
        context=event.context,
        fcm=event.fcm,
    )


def _item(item: QuarantinedEvent) -> QuarantineItem:
    return QuarantineItem(
        id=item.id,
        index=item.index,
        uuid=item.uuid,
        raw=item.raw.decode("utf-8", errors="replace"),
        errors=item.errors,
        received_at=item.received_at,
        replayed_at=item.replayed_at,
    )


def _uuid_of(item: QuarantinedEvent) -> bytes:
    """A replayed event without a uuid gets one derived from its quarantine entry: replaying
    the same entry twice is then a duplicate, not a second event."""
    if item.uuid is not None:
        try:
            return UUID(item.uuid).bytes
        except ValueError:
            pass
    return UUID(int=(0x51 << 120) | item.id, version=4).bytes


EVENT_PARAMS = ("correlationValue", "event", "from", "to", "cursor", "limit")
PAGE_PARAMS = ("cursor", "limit")


def known_params(request: Request, known: tuple[str, ...]) -> None:
    """A misspelt filter must not silently return everything."""
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        raise InvalidRequest(
            f"Unknown query parameter {unknown[0]!r}; this route takes {', '.join(known)}.",
            field=unknown[0],
        )


def page_limit(request: Request) -> int:
    text = request.query_params.get("limit", str(DEFAULT_PAGE))
    number = whole_number(text)
    if number is None or not 1 <= number <= MAX_PAGE:
        raise InvalidRequest(
            f"limit must be a whole number from 1 to {MAX_PAGE}, got {text!r}.", field="limit"
        )
    return number


def _time_param(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        raise InvalidRequest(
            f"{name} must be an ISO-8601 time such as 2024-03-15T02:31:05Z, got {text!r}.",
            field=name,
        ) from None
