"""The ingestion routes: decode → check → commit → report each event's fate."""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from herald.api.errors import json_response
from herald.api.schemas import IngestResult
from herald.api.state import AppState
from herald.core.events import (
    CheckedBatch,
    Envelope,
    check_batch,
    decode_envelope,
    decode_single,
    json_error,
    translate_validation_error,
)
from herald.core.schema import CustomerSchema
from herald.errors import (
    InvalidEvents,
    InvalidGzip,
    InvalidJSON,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedEncoding,
)
from herald.store.base import AppendRequest
from herald.types import WorkspaceId

T = TypeVar("T")

_CREATED_EMPTY = Response(b"{}", 201, media_type="application/json")


def _new_id() -> bytes:
    return uuid.uuid4().bytes


async def ingest_batch(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=False)
    envelope = decode_envelope(await read_body(request, state.settings.max_body_bytes))
    return await _ingest(request, state, key.workspace.id, key.workspace.schema, envelope)


async def ingest_one(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=False)
    envelope = decode_single(await read_body(request, state.settings.max_body_bytes))
    return await _ingest(request, state, key.workspace.id, key.workspace.schema, envelope)


async def ingest_posthog(request: Request) -> Response:
    """Kept for Laudspeaker compatibility: authenticated, answered 201, ignored."""
    state: AppState = request.app.state.herald
    await state.auth.authenticate(request, admin=False)
    return _CREATED_EMPTY


async def _ingest(
    request: Request,
    state: AppState,
    workspace_id: WorkspaceId,
    schema: CustomerSchema,
    envelope: Envelope,
) -> Response:
    checked = check_batch(
        envelope, workspace_id=workspace_id, schema=schema, limits=state.limits, new_id=_new_id
    )
    errors = [error for rejected in checked.rejected for error in rejected.errors]
    if _strict(request) and checked.rejected:
        raise InvalidEvents(
            f"{len(checked.rejected)} of {len(envelope.batch)} events are invalid and "
            "Herald-Strict is set, so nothing was stored; fix them and send the batch again.",
            errors=errors,
        )
    result = await state.store.append(append_request(workspace_id, checked))
    state.metrics.count_events(result.accepted, result.duplicates, result.rejected)
    return json_response(
        IngestResult(result.accepted, result.duplicates, result.rejected, errors, checked.warnings),
        201,
    )


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _strict(request: Request) -> bool:
    """Herald-Strict: 1/true/yes/on turns atomic mode on; anything unknown is an error."""
    value = request.headers.get("herald-strict", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidRequest(
        f"Herald-Strict is {value[:20]!r}; send 1 (all or nothing) or 0 (the default: invalid "
        "events are quarantined, the rest accepted).",
        field="Herald-Strict",
    )


def append_request(workspace_id: WorkspaceId, checked: CheckedBatch) -> AppendRequest:
    return AppendRequest(
        workspace_id=workspace_id,
        accepted=checked.accepted,
        rejected=checked.rejected,
        received_at=datetime.now(UTC),
        sent_at=checked.sent_at,
    )


async def decode_body(request: Request, shape: type[T], *, max_bytes: int) -> T:
    """Read and decode a small JSON body into `shape`; errors name the field or line/column."""
    body = await read_body(request, max_bytes)
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        field, message = translate_validation_error(str(exc))
        if field is None and message.startswith("each event"):  # the words of the batch route
            message = "the body must be a JSON object"
        raise InvalidRequest(f"{field or 'body'}: {message}.", field=field) from None
    except msgspec.DecodeError as exc:
        raise json_error(body, str(exc)) from None
    except UnicodeDecodeError:
        raise _not_utf8(body) from None
    except RecursionError:
        raise InvalidJSON(
            "The body nests arrays or objects too deeply to read: keep it to a few levels."
        ) from None


def _not_utf8(body: bytes) -> InvalidJSON:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start
    else:  # pragma: no cover - only called when msgspec found bytes that are not UTF-8
        offset = 0
    line = body.count(b"\n", 0, offset) + 1
    column = offset - (body.rfind(b"\n", 0, offset) + 1) + 1
    return InvalidJSON(
        f"The body is not UTF-8: byte 0x{body[offset]:02x} at line {line}, column {column} "
        "starts no character; send UTF-8 text.",
        line=line,
        column=column,
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, gunzipped if sent so; 413 once it passes `max_bytes` (after decompression)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding."
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes, f"the body ({int(declared):,} bytes)")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(max_bytes, "the body")
        chunks.append(chunk)
    body = b"".join(chunks)
    return _gunzip(body, max_bytes) if encoding == "gzip" else body


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """Inflate every gzip member (`cat a.gz b.gz` is valid gzip), never past `max_bytes`."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            part = inflater.decompress(rest, max_bytes - size + 1)
        except zlib.error as exc:
            raise _bad_gzip(exc) from None
        size += len(part)
        if size > max_bytes:
            raise _too_large(max_bytes, "the decompressed body")
        if not inflater.eof:
            raise _bad_gzip("the gzip stream is truncated")
        parts.append(part)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)


def _bad_gzip(reason: object) -> InvalidGzip:
    return InvalidGzip(
        f"Content-Encoding is gzip but the body is not valid gzip ({reason}); "
        "compress the whole body with gzip, or drop the header."
    )


def _too_large(max_bytes: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what[0].upper()}{what[1:]} is over the limit of {max_bytes:,} bytes "
        "(after decompression); send fewer events per request."
    )
