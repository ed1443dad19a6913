"""Journeys (admin key): create, list, read, update (a new version), pause, resume, archive."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from herald.api.errors import json_response
from herald.api.events import known_params
from herald.api.ingest import decode_body
from herald.api.schemas import JourneyList, JourneySaved
from herald.api.state import AppState
from herald.core.journeys import JourneyStatus
from herald.core.numbers import whole_number
from herald.errors import InvalidRequest
from herald.journey_documents import from_value

MAX_JOURNEY_BODY_BYTES = 512 * 1024


async def create(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    journey = from_value(await decode_body(request, Any, max_bytes=MAX_JOURNEY_BODY_BYTES))
    record, change = await state.store.save_journey(key.workspace.id, journey, create_only=True)
    return json_response(JourneySaved(change, record), 201)


async def update(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    name = request.path_params["name"]
    journey = from_value(await decode_body(request, Any, max_bytes=MAX_JOURNEY_BODY_BYTES))
    if journey.name != name:
        raise InvalidRequest(
            f"The document's name is {journey.name!r} but the URL names {name!r}; "
            "a journey keeps its name (create another one to rename).",
            field="name",
        )
    await state.store.get_journey(key.workspace.id, name)  # 404 before creating by mistake
    record, change = await state.store.save_journey(key.workspace.id, journey)
    return json_response(JourneySaved(change, record))


async def list_journeys(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    known_params(request, ("archived",))
    archived = request.query_params.get("archived", "0") in ("1", "true", "yes")
    return json_response(
        JourneyList(await state.store.list_journeys(key.workspace.id, archived=archived))
    )


async def get_journey(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    known_params(request, ("version",))
    text = request.query_params.get("version")
    version = whole_number(text) if text is not None else None
    if text is not None and not version:
        raise InvalidRequest(
            f"version must be a positive whole number, got {text!r}.", field="version"
        )
    record = await state.store.get_journey(
        key.workspace.id, request.path_params["name"], version=version
    )
    return json_response(record)


async def pause(request: Request) -> Response:
    return await _set_status(request, JourneyStatus.PAUSED)


async def resume(request: Request) -> Response:
    return await _set_status(request, JourneyStatus.LIVE)


async def archive(request: Request) -> Response:
    return await _set_status(request, JourneyStatus.ARCHIVED)


async def _set_status(request: Request, status: JourneyStatus) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    record = await state.store.set_journey_status(
        key.workspace.id, request.path_params["name"], status
    )
    return json_response(record)


async def stats(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    return json_response(
        await state.store.journey_stats(key.workspace.id, request.path_params["name"])
    )
