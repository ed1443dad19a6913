"""Messages (admin key): the outbox of journey messages — list, read one, retry a failed one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from herald.api.errors import json_response
from herald.api.events import known_params, page_limit
from herald.api.state import AppState
from herald.errors import InvalidRequest
from herald.store.base import MessageStatus


async def list_messages(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    known_params(request, ("status", "cursor", "limit"))
    text = request.query_params.get("status")
    try:
        status = MessageStatus(text) if text is not None else None
    except ValueError:
        raise InvalidRequest(
            f"status must be one of {', '.join(item.value for item in MessageStatus)}, "
            f"got {text!r}.",
            field="status",
        ) from None
    page = await state.store.list_messages(
        key.workspace.id,
        status=status,
        cursor=request.query_params.get("cursor"),
        limit=page_limit(request),
    )
    return json_response(page)


async def get_message(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    return json_response(await state.store.get_message(key.workspace.id, request.path_params["id"]))


async def retry_message(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    message = await state.store.retry_message(key.workspace.id, request.path_params["id"])
    return json_response(message)
