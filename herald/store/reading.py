"""Reading events back out of record batches: cursors, filters and pages.

A request's events are spread over one record batch per partition (consecutive seqs from the
request's `request_seq`), each event with its place in the request. Readers put them back in
request order, so an event's address is (request_seq, place) and pages follow commit order.
"""

from __future__ import annotations

import itertools
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from herald.core.events import WireEvent, parse_timestamp
from herald.core.numbers import whole_number
from herald.errors import InvalidRequest
from herald.store.base import EventFilter, EventPage, StoredEvent
from herald.store.idindex import split_ids, unpack_positions
from herald.types import WorkspaceId

# A page scans at most this many record batches; a sparse filter then returns a short page
# with a cursor to continue, instead of holding a reader for a whole-log scan.
MAX_SCAN_BATCHES = 20_000
END = 1 << 62

COLUMNS = (
    "seq, request_seq, workspace_id, partition, received_at_us, sent_at_us, ids, positions, events"
)
Row = tuple[int, int, int, int, int, int | None, bytes, bytes, bytes]
Address = tuple[int, int]  # (request_seq, place in the request)

_decode_raws = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_event = msgspec.json.Decoder(WireEvent).decode


def encode_cursor(address: Address) -> str:
    return f"{address[0]}-{address[1]}"


def decode_cursor(cursor: str | None, *, default: Address = (END, END)) -> Address:
    if cursor is None:
        return default
    request_text, _, place_text = cursor.partition("-")
    request_seq, place = whole_number(request_text), whole_number(place_text)
    if request_seq is None or place is None:
        raise InvalidRequest(
            f"cursor {cursor!r} is not one Herald gave out; start again without a cursor.",
            field="cursor",
        )
    return request_seq, place


def event_at(row: Row, position: int) -> StoredEvent:
    """The event at `position` of one record batch row."""
    return next(event for at, event in _events_of(row) if at == position)


def page_events(
    rows: Iterable[Row],
    filters: EventFilter,
    *,
    cursor: Address,
    limit: int,
    newest_first: bool = True,
) -> EventPage:
    """Up to `limit` events past `cursor`, in commit order (or its reverse), filtered.

    `rows` come in seq order (descending when `newest_first`).
    """
    events: list[StoredEvent] = []
    last: Address | None = None
    scanned = 0
    for _, group in itertools.groupby(rows, key=lambda row: row[1]):
        batches = list(group)
        scanned += len(batches)
        for address, event in _in_request_order(batches, newest_first):
            if not (address < cursor if newest_first else address > cursor):
                continue
            last = address
            if _matches(event, filters):
                events.append(event)
                if len(events) == limit:
                    return EventPage(events, encode_cursor(address))
        if scanned >= MAX_SCAN_BATCHES and last is not None:
            return EventPage(events, encode_cursor(last))
    if newest_first:
        return EventPage(events, None)
    return EventPage(events, encode_cursor(last) if last is not None else None)


def _in_request_order(batches: list[Row], newest_first: bool) -> list[tuple[Address, StoredEvent]]:
    merged = [
        ((row[1], place), event)
        for row in batches
        for (_, event), place in zip(_events_of(row), unpack_positions(row[7]), strict=True)
    ]
    merged.sort(key=lambda item: item[0], reverse=newest_first)
    return merged


def _events_of(row: Row) -> Iterator[tuple[int, StoredEvent]]:
    _, request_seq, workspace_id, partition, received_us, sent_us, ids, positions, blob = row
    raws = _decode_raws(blob)
    received_at = datetime.fromtimestamp(received_us / 1e6, UTC)
    sent_at = datetime.fromtimestamp(sent_us / 1e6, UTC) if sent_us is not None else None
    places = unpack_positions(positions)
    for position, (event_id, raw) in enumerate(zip(split_ids(ids), raws, strict=True)):
        yield (
            position,
            StoredEvent(
                cursor=encode_cursor((request_seq, places[position])),
                workspace_id=WorkspaceId(workspace_id),
                uuid=str(uuidlib.UUID(bytes=event_id)),
                raw=bytes(raw),
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
    moment = _event_time(event, stored)
    return (filters.start is None or moment >= filters.start) and (
        filters.end is None or moment < filters.end
    )


def _event_time(event: WireEvent, stored: StoredEvent) -> datetime:
    if event.timestamp is None:
        return stored.received_at
    try:
        return parse_timestamp(event.timestamp)
    except ValueError:  # stored before a stricter parser: fall back to when it arrived
        return stored.received_at


_NO_FILTER = EventFilter()


def wire_fields(stored: StoredEvent) -> dict[str, Any]:
    """The event as sent, with the uuid Herald stored it under (generated when absent)."""
    value: dict[str, Any] = msgspec.json.decode(stored.raw)
    value["uuid"] = stored.uuid
    return value
