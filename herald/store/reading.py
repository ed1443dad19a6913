"""Reading events back out of record batches: cursors, filters and pages."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from herald.core.events import WireEvent, parse_timestamp
from herald.errors import InvalidRequest
from herald.store.base import EventFilter, EventPage, StoredEvent
from herald.store.idindex import split_ids
from herald.types import WorkspaceId

# A page scans at most this many record batches; a sparse filter then returns a short page
# with a cursor to continue, instead of holding a reader for a whole-log scan.
MAX_SCAN_BATCHES = 20_000
_END = 1 << 62

_decode_raws = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_event = msgspec.json.Decoder(WireEvent).decode

Row = tuple[int, int, int, int, int | None, bytes, bytes]


def encode_cursor(seq: int, position: int) -> str:
    return f"{seq}-{position}"


def decode_cursor(
    cursor: str | None, *, default: tuple[int, int] = (_END, _END)
) -> tuple[int, int]:
    if cursor is None:
        return default
    seq, _, position = cursor.partition("-")
    if not (seq.isdigit() and position.isdigit()):
        raise InvalidRequest(
            f"cursor {cursor!r} is not one Herald gave out; start again without a cursor.",
            field="cursor",
        )
    return int(seq), int(position)


def event_at(row: Row, position: int) -> StoredEvent:
    """The event at `position` of one record batch row."""
    return next(e for p, e in _events_of(row, newest_first=False) if p == position)


def page_events(
    rows: Iterable[Row],
    filters: EventFilter,
    *,
    before: tuple[int, int],
    limit: int,
    newest_first: bool = True,
) -> EventPage:
    """Collect up to `limit` events past the cursor position, in the rows' order, filtered."""
    events: list[StoredEvent] = []
    last: tuple[int, int] | None = None
    for scanned, row in enumerate(rows, start=1):
        for position, event in _events_of(row, newest_first=newest_first):
            if not _beyond((row[0], position), before, newest_first):
                continue
            last = (row[0], position)
            if _matches(event, filters):
                events.append(event)
                if len(events) == limit:
                    return EventPage(events, encode_cursor(*last))
        if scanned >= MAX_SCAN_BATCHES and last is not None:
            return EventPage(events, encode_cursor(*last))
    return EventPage(events, None if newest_first else (events[-1].cursor if events else None))


def _beyond(at: tuple[int, int], cursor: tuple[int, int], newest_first: bool) -> bool:
    return at < cursor if newest_first else at > cursor


def _events_of(row: Row, *, newest_first: bool) -> Iterator[tuple[int, StoredEvent]]:
    seq, workspace_id, partition, received_us, sent_us, ids, blob = row
    raws = _decode_raws(blob)
    event_ids = list(split_ids(ids))
    received_at = datetime.fromtimestamp(received_us / 1e6, UTC)
    sent_at = datetime.fromtimestamp(sent_us / 1e6, UTC) if sent_us is not None else None
    positions = range(len(raws) - 1, -1, -1) if newest_first else range(len(raws))
    for position in positions:
        yield (
            position,
            StoredEvent(
                cursor=encode_cursor(seq, position),
                workspace_id=WorkspaceId(workspace_id),
                uuid=str(uuidlib.UUID(bytes=event_ids[position])),
                raw=bytes(raws[position]),
                received_at=received_at,
                sent_at=sent_at,
                partition=partition,
            ),
        )


def _matches(stored: StoredEvent, filters: EventFilter) -> bool:
    if filters == _NO_FILTER:
        return True
    event = _decode_event(stored.raw)
    if (
        filters.correlation_value is not None
        and event.correlation_value != filters.correlation_value
    ):
        return False
    if filters.event is not None and event.event != filters.event:
        return False
    if filters.start is None and filters.end is None:
        return True
    moment = parse_timestamp(event.timestamp) if event.timestamp else stored.received_at
    return (filters.start is None or moment >= filters.start) and (
        filters.end is None or moment < filters.end
    )


_NO_FILTER = EventFilter()


def wire_fields(stored: StoredEvent) -> dict[str, Any]:
    """The event as sent, with the uuid Herald stored it under (generated when absent)."""
    value: dict[str, Any] = msgspec.json.decode(stored.raw)
    value["uuid"] = stored.uuid
    return value
