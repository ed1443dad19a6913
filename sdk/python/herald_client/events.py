"""Herald's wire events, built at the call site: checked, encoded, stamped with a uuid and a time.

Everything that can be wrong with a caller's input is found here, while the caller is still on the
stack: a wrong type raises TypeError and an unusable value ValueError, each naming the argument.
The event leaves this module as the exact JSON Herald will receive (so a retry resends the same
bytes, with the same uuid, and Herald reports it as a duplicate instead of storing it twice).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from typing import Any, NamedTuple

IDENTIFY = "$identify"
SET = "$set"
DEFAULT_SOURCE = "custom"

_EVENT_JSON = (
    '{"uuid":"%s","event":%s,"source":%s,"correlationKey":%s,"correlationValue":%s,'
    '"timestamp":"%s","payload":%s}'
)
_quote = json.encoder.encode_basestring  # the C version in CPython: a JSON string literal
# RFC 4122 variant bits in the 17th hex digit: 10xx, so one of 8, 9, a, b.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_COUNTER_MASK = (1 << 48) - 1


class QueuedEvent(NamedTuple):
    """One event on its way to Herald: its uuid, name and customer, and its JSON as sent."""

    uuid: str
    event: str
    correlation_value: str
    data: bytes  # the event's JSON, UTF-8, exactly as it goes into the batch


class UuidSequence:
    """Unique ids in UUID version-4 form: 74 random bits drawn once, then a 48-bit counter.

    The counter makes them unique within a client, the random part across clients and
    processes. Why not os.urandom per id: it costs a system call that releases the GIL, and the
    caller then waits for its turn while the sender thread is busy. One client's ids also sort
    in creation order, which keeps the writes to Herald's dedupe index close together.
    """

    def __init__(self) -> None:
        digits = os.urandom(10).hex()
        self._prefix = (
            f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{_VARIANT[digits[16]]}{digits[17:20]}-"
        )
        self._counter = itertools.count()  # next() on it is atomic: safe from any thread

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & _COUNTER_MASK:012x}"


def _json_default(value: object) -> str:
    """Values json cannot encode by itself but that have one obvious JSON form."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r:.60} is not JSON-serialisable")


def _json_encoder() -> Callable[[object], str]:
    """Compact JSON, no NaN or infinity. The C encoder is built once here, which halves the cost
    of JSONEncoder.encode (that builds it on every call); elsewhere (PyPy) the plain encoder.
    No circular-reference bookkeeping: it would be shared by threads; a cycle still ends in
    RecursionError."""
    if c_make_encoder is None:
        return json.JSONEncoder(
            ensure_ascii=False,
            allow_nan=False,
            check_circular=False,
            separators=(",", ":"),
            default=_json_default,
        ).encode
    chunks = c_make_encoder(None, _json_default, _quote, None, ":", ",", False, False, False)
    return lambda value: "".join(chunks(value, 0))


_encode = _json_encoder()


class EventFactory:
    """Builds checked, encoded events; one per client (it caches the current second's text)."""

    def __init__(self, *, max_event_bytes: int, source: str = DEFAULT_SOURCE) -> None:
        self._max_event_bytes = max_event_bytes
        self._source = _quote(require_text(source, "source"))
        self._uuids = UuidSequence()
        self._second: tuple[int, str] = (-1, "")  # one tuple: threads never see half an update

    def track(
        self,
        correlation_value: str,
        event: str,
        payload: Mapping[str, Any] | None,
        correlation_key: str,
        timestamp: dt.datetime | None,
    ) -> QueuedEvent:
        """An ordinary event, `event` by the customer (`correlation_key`, `correlation_value`)."""
        require_text(event, "event")
        return self._build(correlation_value, event, payload, correlation_key, timestamp)

    def identify(
        self,
        correlation_value: str,
        distinct_id: str | int,
        correlation_key: str,
        timestamp: dt.datetime | None,
    ) -> QueuedEvent:
        """`$identify`: the customer `correlation_value` has the primary key `distinct_id`."""
        is_number = isinstance(distinct_id, int) and not isinstance(distinct_id, bool)
        if not is_number:
            require_text(distinct_id, "distinct_id")
        payload = {"distinct_id": distinct_id}
        return self._build(correlation_value, IDENTIFY, payload, correlation_key, timestamp)

    def set(
        self,
        correlation_value: str,
        traits: Mapping[str, Any],
        correlation_key: str,
        timestamp: dt.datetime | None,
    ) -> QueuedEvent:
        """`$set`: the customer's attributes become `traits` (a None value removes one)."""
        if not isinstance(traits, Mapping):
            raise TypeError(f"traits must be a dict of attributes, got {type(traits).__name__}")
        if not traits:
            raise ValueError("traits is empty: pass at least one attribute to set")
        return self._build(correlation_value, SET, traits, correlation_key, timestamp)

    def _build(
        self,
        correlation_value: str,
        event: str,
        payload: Mapping[str, Any] | None,
        correlation_key: str,
        timestamp: dt.datetime | None,
    ) -> QueuedEvent:
        require_text(correlation_value, "correlation_value")
        require_text(correlation_key, "correlation_key")
        event_id = self._uuids.next()
        text = _EVENT_JSON % (
            event_id,
            _quote(event),
            self._source,
            _quote(correlation_key),
            _quote(correlation_value),
            self._now_text() if timestamp is None else format_timestamp(timestamp),
            "{}" if payload is None else encode_payload(payload),
        )
        data = text.encode()
        if len(data) > self._max_event_bytes:
            raise ValueError(
                f"the {event!r} event is {len(data):,} bytes as JSON; Herald takes at most "
                f"{self._max_event_bytes:,} bytes per event: send a smaller payload"
            )
        return QueuedEvent(event_id, event, correlation_value, data)

    def _now_text(self) -> str:
        """Now, as Herald's seeds write it (`2024-03-15T02:31:05.295Z`); the date part is cached."""
        now = time.time()
        second = int(now)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}.{int((now - second) * 1000):03d}Z"


def require_text(value: object, name: str) -> str:
    """`value` if it is a non-empty string; otherwise a TypeError or ValueError naming `name`."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a non-empty string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is an empty string; Herald needs a value")
    return value


def encode_payload(payload: Mapping[str, Any]) -> str:
    """`payload` as a JSON object; datetimes, dates and UUIDs become ISO-8601 / canonical text."""
    if type(payload) is not dict:
        if not isinstance(payload, Mapping):
            raise TypeError(f"payload must be a dict (a JSON object), got {type(payload).__name__}")
        payload = dict(payload)
    try:
        return _encode(payload)
    except TypeError as exc:
        raise TypeError(f"payload cannot be sent as JSON: {exc}") from None
    except ValueError as exc:  # NaN or infinity
        raise ValueError(f"payload cannot be sent as JSON: {exc}") from None
    except RecursionError:
        raise ValueError(
            "payload cannot be sent as JSON: it contains itself, or nests too deeply"
        ) from None


def format_timestamp(moment: dt.datetime) -> str:
    """A timezone-aware datetime as UTC ISO-8601 with milliseconds and `Z`."""
    if not isinstance(moment, dt.datetime):
        raise TypeError(f"timestamp must be a datetime, got {type(moment).__name__}")
    if moment.utcoffset() is None:
        raise ValueError(
            f"timestamp {moment.isoformat()} has no timezone; pass an aware datetime, "
            "e.g. datetime.now(timezone.utc)"
        )
    utc = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"
