"""The wire schema of `POST /api/events/batch/` and the checks every event passes to be stored.

A batch is decoded in two steps so that one bad event never hides the others: the envelope with
each event left as raw JSON, then each event on its own. Valid events are stored as the raw JSON
the client sent (the processor decodes them again with the same schema), with a 16-byte id and a
partition.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from herald.core.schema import MAX_KEY_CHARS, CustomerSchema, described_type
from herald.errors import InvalidJSON, InvalidRequest, PayloadTooLarge

PARTITIONS = (
    16  # processing lanes: an event's lane is hash(workspace, correlationValue) % PARTITIONS
)
IDENTIFY = "$identify"
SET = "$set"

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
# A correlation value names a customer: bounded like a key.
KeyStr = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_CHARS)]


class _EventFields(msgspec.Struct, rename="camel", frozen=True):
    """The fields every reading of an event shares."""

    event: NonEmptyStr
    correlation_key: NonEmptyStr
    correlation_value: KeyStr
    source: NonEmptyStr
    payload: dict[str, Any] = {}
    context: dict[str, Any] | None = None
    fcm: dict[str, Any] | None = msgspec.field(default=None, name="$fcm")


class WireEvent(_EventFields, frozen=True):
    """One event as Laudspeaker's SDKs send it."""

    timestamp: str | None = None
    uuid: UUID | None = None


class _WireEnvelope(msgspec.Struct, frozen=True):
    batch: list[msgspec.Raw]
    sent_at: str | None = None
    sentAt: str | None = None


class Envelope(msgspec.Struct, frozen=True):
    """A decoded request body: events stay raw until each is checked on its own."""

    batch: list[msgspec.Raw]
    sent_at: str | None = None
    # The same events decoded in one pass, when every one of them fits the wire schema with an
    # RFC 3339 timestamp (the common case); None sends each event through `check_event`.
    decoded: list[_FastEvent] | None = None


class _FastEvent(_EventFields, frozen=True, forbid_unknown_fields=True):
    """WireEvent with the timestamp parsed by msgspec: lets a whole batch decode in one call."""

    timestamp: datetime | None = None
    uuid: str | None = None  # made 16 bytes by _uuid_bytes: cheaper than a uuid.UUID


class _FastBatch(msgspec.Struct, frozen=True):
    batch: list[_FastEvent]


class EventError(msgspec.Struct, frozen=True, omit_defaults=True):
    """Why one event of a batch was rejected."""

    index: int
    message: str
    field: str | None = None
    uuid: str | None = None


class Accepted(msgspec.Struct, array_like=True, frozen=True):
    """A valid event, ready for the log: its 16-byte id, its partition and its JSON as sent."""

    id: bytes
    partition: int
    raw: bytes


class Rejected(msgspec.Struct, frozen=True):
    """An invalid event with its JSON as sent, bound for quarantine."""

    index: int
    raw: bytes
    errors: list[EventError]


class CheckedBatch(msgspec.Struct, frozen=True):
    accepted: list[Accepted]
    rejected: list[Rejected]
    sent_at: datetime | None
    # Accepted events with fields outside the schema: stored as sent, but worth telling.
    warnings: list[EventError] = msgspec.field(default_factory=list)


class Limits(msgspec.Struct, frozen=True):
    max_batch_events: int
    max_event_bytes: int


_decode_envelope = msgspec.json.Decoder(_WireEnvelope).decode
_decode_fast = msgspec.json.Decoder(_FastBatch).decode
_decode_event = msgspec.json.Decoder(WireEvent).decode
_decode_any = msgspec.json.Decoder().decode
_BOM = b"\xef\xbb\xbf"  # RFC 8259 lets a parser ignore it; some Windows tools write it
OUTSIDE_UTC = "falls outside years 1-9999 once converted to UTC"
_ANDROID_FORMAT = "%b %d, %Y %I:%M:%S %p"  # "Jun 7, 2024 3:04:05 PM", as the Android SDK sends it


def decode_envelope(body: bytes) -> Envelope:
    """Decode the request body, or raise InvalidRequest saying what is wrong and where."""
    body = body.removeprefix(_BOM)
    try:
        wire = _decode_envelope(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(_envelope_message(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise json_error(body, str(exc)) from None
    except RecursionError:
        raise InvalidRequest(_TOO_DEEP) from None
    except UnicodeDecodeError:
        raise InvalidJSON(_NOT_UTF8) from None
    if not wire.batch:
        raise InvalidRequest('"batch" is empty: send at least one event.')
    try:
        decoded: list[_FastEvent] | None = _decode_fast(body).batch
    except (msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        decoded = None  # some event needs the one-by-one checks
    return Envelope(wire.batch, wire.sent_at or wire.sentAt, decoded)


def decode_single(body: bytes) -> Envelope:
    """Decode the body of `POST /api/events/` (one event object) as a batch of one."""
    body = body.removeprefix(_BOM)
    try:
        value = _decode_any(body)
    except msgspec.DecodeError as exc:
        raise json_error(body, str(exc)) from None
    except RecursionError:
        raise InvalidRequest(_TOO_DEEP) from None
    except UnicodeDecodeError:
        raise InvalidJSON(_NOT_UTF8) from None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"The body must be one event as a JSON object, got {described_type(value)}; "
            'to send several, POST {"batch": [...]} to /api/events/batch/.'
        )
    return Envelope(batch=[msgspec.Raw(body)])


def check_batch(
    envelope: Envelope,
    *,
    workspace_id: int,
    schema: CustomerSchema,
    limits: Limits,
    new_id: Callable[[], bytes],
) -> CheckedBatch:
    """Split a decoded batch into events to store and events to quarantine, keeping batch order."""
    if len(envelope.batch) > limits.max_batch_events:
        raise PayloadTooLarge(
            f"The batch has {len(envelope.batch):,} events; the limit is "
            f"{limits.max_batch_events:,} per request: split it into smaller batches."
        )
    sent_at = _parse_sent_at(envelope.sent_at)
    accepted: list[Accepted] = []
    rejected: list[Rejected] = []
    max_bytes = limits.max_event_bytes
    warnings: list[EventError] = []
    decoded = envelope.decoded
    lanes: dict[str, int] = {}  # customers repeat within a batch: hash each once
    for index, raw in enumerate(envelope.batch):
        if len(raw) > max_bytes:
            message = f"the event is {len(raw):,} bytes; the limit is {max_bytes:,} bytes per event"
            rejected.append(Rejected(index, bytes(raw), [EventError(index, message)]))
            continue
        fast = decoded[index] if decoded is not None else None
        event_id = _fast_id(fast, new_id) if fast is not None else None
        if fast is None or event_id is None:
            event, errors = check_event(raw, index=index, schema=schema)
            if event is None:
                rejected.append(Rejected(index, bytes(raw), errors))
                continue
            try:
                warnings.extend(_unknown_field_warnings(raw, index))
            except UnicodeDecodeError:  # a field name the lenient decode skipped over
                error = EventError(index, _NOT_UTF8_EVENT, uuid=_safe_uuid(raw))
                rejected.append(Rejected(index, bytes(raw), [error]))
                continue
            event_id = event.uuid.bytes if event.uuid is not None else new_id()
            value = event.correlation_value
        else:
            value = fast.correlation_value
        lane = lanes.get(value)
        if lane is None:
            lane = lanes[value] = partition_of(workspace_id, value)
        accepted.append(Accepted(event_id, lane, bytes(raw)))
    return CheckedBatch(accepted, rejected, sent_at, warnings)


def _fast_id(event: _FastEvent, new_id: Callable[[], bytes]) -> bytes | None:
    """The 16-byte id of an event the one-pass decode fully vouches for; None when it needs the
    full check: special events, a uuid in an unusual spelling, a timestamp at the edge of the
    calendar (some offsets push it out once in UTC)."""
    if event.event[0] == "$":
        return None
    moment = event.timestamp
    if moment is not None and moment.year in (1, 9999):
        return None
    return new_id() if event.uuid is None else _uuid_bytes(event.uuid)


def _uuid_bytes(text: str) -> bytes | None:
    """16 bytes from a UUID written canonically (36 characters) or as 32 hex digits."""
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        text = text.replace("-", "")
    if len(text) != 32:
        return None
    try:
        value = bytes.fromhex(text)
    except ValueError:
        return None
    return value if len(value) == 16 else None


_KNOWN_FIELDS = frozenset(
    ("event", "correlationKey", "correlationValue", "source", "timestamp", "uuid")
    + ("payload", "context", "$fcm")
)
_decode_field_names = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def _unknown_field_warnings(raw: bytes | msgspec.Raw, index: int) -> list[EventError]:
    """Fields Laudspeaker's schema does not have (Segment's `properties`, `userId`, ...);
    UnicodeDecodeError when a field name is not UTF-8."""
    unknown = [name for name in _decode_field_names(raw) if name not in _KNOWN_FIELDS]
    if not unknown:
        return []
    uuid = _uuid_as_sent(raw)
    return [
        EventError(
            index,
            f"{name!r} is not a field of the event schema: it is stored as sent but Herald "
            "ignores it; put event properties in 'payload'",
            name,
            uuid,
        )
        for name in unknown
    ]


def partition_of(workspace_id: int, correlation_value: str) -> int:
    """The processing lane of a customer's events: stable across processes and versions."""
    return zlib.crc32(correlation_value.encode(), workspace_id) % PARTITIONS


def check_event(
    raw: bytes | msgspec.Raw, *, index: int, schema: CustomerSchema
) -> tuple[WireEvent | None, list[EventError]]:
    """Decode one event and check it; return it, or None and every error found."""
    try:
        event = _decode_event(raw)
    except msgspec.ValidationError as exc:
        return None, _structural_errors(raw, index, str(exc))
    except msgspec.DecodeError as exc:  # only reachable for bodies re-decoded outside a batch
        return None, [EventError(index, f"not valid JSON: {exc}")]
    except RecursionError:
        return None, [EventError(index, "the event nests arrays or objects too deeply to read")]
    except UnicodeDecodeError:
        return None, [EventError(index, _NOT_UTF8_EVENT, uuid=_safe_uuid(raw))]
    errors = _semantic_errors(event, schema)
    if errors:
        uuid = _uuid_as_sent(raw) if event.uuid else None
        return None, [EventError(index, message, field, uuid) for field, message in errors]
    return event, []


def parse_timestamp(text: str) -> datetime:
    """Parse an event time: ISO-8601, any offset (naive means UTC), or the Android format."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = msgspec.convert(text, datetime)  # RFC 3339 forms fromisoformat refuses
        except msgspec.ValidationError:
            parsed = datetime.strptime(text, _ANDROID_FORMAT)  # ValueError when nothing fits
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)  # the offset is kept; this only refuses what UTC cannot hold
    except OverflowError:
        raise ValueError(f"{text!r} {OUTSIDE_UTC}") from None
    return parsed


def _semantic_errors(event: WireEvent, schema: CustomerSchema) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    if event.timestamp is not None:
        try:
            parse_timestamp(event.timestamp)
        except ValueError as exc:
            errors.append(("timestamp", _timestamp_message(event.timestamp, exc)))
    if event.event == IDENTIFY:
        errors.extend(_identify_errors(event, schema))
    elif event.event == SET:
        errors.extend(
            (f"payload.{name}", problem)
            for name, value in event.payload.items()
            if (problem := schema.check(name, value)) is not None
        )
    return errors


def _identify_errors(event: WireEvent, schema: CustomerSchema) -> list[tuple[str, str]]:
    if schema.primary_key is None:
        return [
            (
                "event",
                "$identify needs a primary key, and this workspace has none: "
                "set one with `herald schema set-primary-key`",
            )
        ]
    distinct_id = event.payload.get("distinct_id")
    if distinct_id is None:
        return [
            (
                "payload.distinct_id",
                f"required for $identify: the customer's primary key ({schema.primary_key})",
            )
        ]
    if isinstance(distinct_id, str) and not distinct_id:
        return [("payload.distinct_id", "must not be empty")]
    if isinstance(distinct_id, str) and len(distinct_id) > MAX_KEY_CHARS:
        return [
            (
                "payload.distinct_id",
                f"is {len(distinct_id):,} characters long; a primary key is at most "
                f"{MAX_KEY_CHARS}",
            )
        ]
    problem = schema.check(schema.primary_key, distinct_id)
    if problem is None and (
        isinstance(distinct_id, bool) or not isinstance(distinct_id, str | int)
    ):
        shown = msgspec.json.encode(distinct_id).decode()[:40]
        problem = f"expected a string or a whole number, got {described_type(distinct_id)} {shown}"
    return [] if problem is None else [("payload.distinct_id", problem)]


def _parse_sent_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        message = _timestamp_message(text, exc)
        raise InvalidRequest(f'"sent_at": {message}', field="sent_at") from None


def _timestamp_message(text: str, problem: ValueError | None = None) -> str:
    shown = text if len(text) <= 40 else text[:37] + "..."
    if problem is not None and str(problem).endswith(OUTSIDE_UTC):
        return f"{shown!r} {OUTSIDE_UTC}: send a time between years 1 and 9999 in UTC"
    return (
        f"{shown!r} is not a timestamp Herald understands: use ISO-8601 such as "
        "'2024-03-15T02:31:05.295Z', or leave it out to use the time Herald received the event"
    )


_PATH = re.compile(r" - at `\$(?:\.(?P<field>[^`]+)|[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`(?:, got `(?P<got>[^`]+)`)?")
_TYPE_WORDS = {
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
    "array": "an array",
    "object": "an object",
    "uuid": "a UUID",
}
_UUID_HINT = (
    "must be a UUID such as 'F451DF0A-D713-4076-AE20-41AB1641BC98'; "
    "leave it out and Herald generates one"
)


def translate_validation_error(text: str) -> tuple[str | None, str]:
    """Turn msgspec's error into (field, message) in the words of the wire schema."""
    path = _PATH.search(text)
    # msgspec names a dict value "[...]": the field is then the dict itself ("payload").
    field = path.group("field").replace("[...]", "") if path and path.group("field") else None
    body = text[: path.start()] if path else text
    if missing := _MISSING.match(body):
        subfield = missing.group("field")
        return (f"{field}.{subfield}" if field else subfield), "required field is missing"
    if field == "uuid":
        return field, _UUID_HINT
    if field is None and body.startswith("Expected `object`"):
        got = _EXPECTED.match(body)
        kind = (
            _TYPE_WORDS.get(got.group("got") or "", "something else") if got else "something else"
        )
        return None, f"each event must be a JSON object, got {kind}"
    if "length >= 1" in body:
        return field, "must be a non-empty string"
    if "length <= " in body:
        return field, f"must be at most {body.split('length <= ')[1].rstrip('`')} characters long"
    if expected := _EXPECTED.match(body):
        want = expected.group("want").split(" ")[0].split("|")[0]
        message = f"expected {_TYPE_WORDS.get(want, want)}"
        if got_type := expected.group("got"):
            message += f", got {_TYPE_WORDS.get(got_type, got_type)}"
        return field, message
    return field, body


_REQUIRED_STRINGS = ("event", "correlationKey", "correlationValue", "source")
_OPTIONAL_OBJECTS = ("payload", "context", "$fcm")


def _structural_errors(raw: bytes | msgspec.Raw, index: int, first: str) -> list[EventError]:
    """Every wire-schema error of an event msgspec refused (msgspec stops at the first)."""
    try:
        value = _decode_any(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):  # out of range, bad bytes
        value = None
    if not isinstance(value, dict):
        field, message = translate_validation_error(first)
        return [EventError(index, message, field)]
    uuid = value.get("uuid")
    shown_uuid = uuid if isinstance(uuid, str) and len(uuid) <= 64 else None
    found = [
        (name, problem)
        for name in _REQUIRED_STRINGS
        if (problem := _required_string_problem(value.get(name))) is not None
    ]
    for name in _OPTIONAL_OBJECTS:
        if value.get(name) is not None and not isinstance(value[name], dict):
            found.append((name, f"expected an object, got {described_type(value[name])}"))
    if value.get("timestamp") is not None and not isinstance(value["timestamp"], str):
        found.append(("timestamp", f"expected a string, got {described_type(value['timestamp'])}"))
    if uuid is not None and _decode_uuid(raw) is None:
        found.append(("uuid", _UUID_HINT))
    if not found:  # a rule only msgspec knows: report it as msgspec words it
        found.append(translate_validation_error(first))  # type: ignore[arg-type]
    return [EventError(index, message, field, shown_uuid) for field, message in found]


def _required_string_problem(value: Any) -> str | None:
    if value is None:
        return "required field is missing"
    if not isinstance(value, str):
        return f"expected a string, got {described_type(value)}"
    return None if value else "must be a non-empty string"


_NOT_UTF8 = (
    "The body has bytes that are not UTF-8 inside a JSON string; JSON must be UTF-8: "
    "re-encode the text (for example from Latin-1) before sending."
)
_NOT_UTF8_EVENT = (
    "the event has bytes that are not UTF-8 inside a string; JSON must be UTF-8: "
    "re-encode the text before sending"
)


def _safe_uuid(raw: bytes | msgspec.Raw) -> str | None:
    try:
        return _uuid_as_sent(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


class _UuidText(msgspec.Struct):
    uuid: str | None = None


_decode_uuid_text = msgspec.json.Decoder(_UuidText).decode


def _uuid_as_sent(raw: bytes | msgspec.Raw) -> str | None:
    """The uuid as the client wrote it (errors echo it so the client can match them)."""
    return _decode_uuid_text(raw).uuid


class _UuidOnly(msgspec.Struct):
    uuid: UUID | None = None


_decode_uuid_only = msgspec.json.Decoder(_UuidOnly).decode


def _decode_uuid(raw: bytes | msgspec.Raw) -> UUID | None:
    try:
        return _decode_uuid_only(raw).uuid
    except msgspec.ValidationError:
        return None


def _envelope_message(text: str) -> str:
    field, message = translate_validation_error(text)
    if field is None and message.startswith("each event"):
        return 'The body must be a JSON object like {"batch": [...]}.'
    if field == "batch" and message == "required field is missing":
        return 'The body has no "batch": send {"batch": [event, ...]}.'
    if field == "batch":
        return f'"batch" must be an array of events: {message}.'
    return f'"{field}": {message}.' if field else message


_BYTE = re.compile(r"\(byte (\d+)\)")
_TOO_DEEP = (
    "The body nests arrays or objects too deeply to read: keep payloads to a few levels of nesting."
)


def json_error(body: bytes, text: str) -> InvalidJSON:
    match = _BYTE.search(text)
    if match is None and "truncated" in text:
        match = _BYTE.search(f"(byte {len(body)})")
    reason = _BYTE.sub("", text).replace("JSON is malformed: ", "").strip()
    if match is None:
        return InvalidJSON(f"The body is not valid JSON: {reason}.")
    offset = _typo_offset(body, int(match.group(1)), reason)
    line = body.count(b"\n", 0, offset) + 1
    line_start = body.rfind(b"\n", 0, offset) + 1
    column = len(body[line_start:offset].decode(errors="replace")) + 1  # characters, not bytes
    return InvalidJSON(
        f"The body is not valid JSON: {reason} at line {line}, column {column}.",
        line=line,
        column=column,
    )


def _typo_offset(body: bytes, offset: int, reason: str) -> int:
    """Where the typo is: msgspec points past it for a missing or trailing comma, or stray text."""
    if reason.startswith("expected ','"):
        return len(body[:offset].rstrip())  # just after the value the comma should follow
    if reason.startswith("trailing comma"):
        return len(body[:offset].rstrip()) - 1  # the comma itself
    if reason.startswith("trailing characters"):
        return offset - 1  # msgspec counts past the first stray character
    return offset
