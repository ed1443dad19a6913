"""The customer schema (admin key): read it, declare attributes, choose the primary key."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from herald.api.errors import json_response
from herald.api.ingest import read_body
from herald.api.state import AppState
from herald.core.events import translate_validation_error
from herald.core.schema import AttributeType
from herald.errors import InvalidJSON, InvalidRequest

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
    workspace = await state.store.change_schema(
        key.workspace.id, lambda schema: schema.with_primary_key(wanted.name)
    )
    state.auth.forget_workspace(workspace.id)
    return json_response(workspace.schema)


async def _decode(request: Request, shape: type[T]) -> T:
    body = await read_body(request, MAX_SCHEMA_BODY_BYTES)
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        field, message = translate_validation_error(str(exc))
        if field == "type" and message != "required field is missing":
            message = f"type must be one of {', '.join(t.value for t in AttributeType)}"
        raise InvalidRequest(f"{field or 'body'}: {message}.", field=field) from None
    except msgspec.DecodeError as exc:
        raise InvalidJSON(f"The body is not valid JSON: {exc}.") from None
