"""The customer schema (admin key): read it, declare attributes, choose the primary key."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from herald.api.errors import json_response
from herald.api.ingest import decode_body
from herald.api.state import AppState
from herald.core.schema import AttributeType
from herald.errors import InvalidRequest

T = TypeVar("T")

MAX_SCHEMA_BODY_BYTES = 4_096
AttributeName = Annotated[str, msgspec.Meta(min_length=1)]


class AttributeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Declare (or retype) one customer attribute."""

    name: AttributeName
    type: AttributeType


class PrimaryKeyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Make a declared string, email or number attribute the primary key."""

    name: AttributeName


async def get_schema(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    return json_response(key.workspace.schema)


async def add_attribute(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    wanted = await _decode(request, AttributeIn)
    workspace = await state.store.change_schema(
        key.workspace.id, lambda schema: schema.with_attribute(wanted.name, wanted.type)
    )
    state.auth.forget_workspace(workspace.id)
    return json_response(workspace.schema)


async def set_primary_key(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    wanted = await _decode(request, PrimaryKeyIn)
    key.workspace.schema.with_primary_key(wanted.name)  # 400 for an unusable attribute first
    if wanted.name != key.workspace.schema.primary_key:
        await state.store.check_unique(key.workspace.id, wanted.name)
    workspace = await state.store.change_schema(
        key.workspace.id, lambda schema: schema.with_primary_key(wanted.name)
    )
    state.auth.forget_workspace(workspace.id)
    return json_response(workspace.schema)


async def _decode(request: Request, shape: type[T]) -> T:
    try:
        return await decode_body(request, shape, max_bytes=MAX_SCHEMA_BODY_BYTES)
    except InvalidRequest as exc:
        if exc.details.get("field") == "type" and "required" not in exc.message:
            message = f"type must be one of {', '.join(t.value for t in AttributeType)}"
            raise InvalidRequest(f"type: {message}.", field="type") from None
        raise
