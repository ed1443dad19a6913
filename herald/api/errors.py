"""Maps Herald's errors to status codes and JSON bodies, in one place."""

from __future__ import annotations

import logging

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from herald.api.schemas import ErrorBody
from herald.errors import ServiceError

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def json_response(content: msgspec.Struct | dict[str, object], status: int = 200) -> Response:
    return Response(msgspec.json.encode(content), status, media_type="application/json")


def error_response(exc: ServiceError) -> Response:
    body = ErrorBody(error=exc.code, message=exc.message, **exc.details)
    headers = {}
    if exc.status in (429, 503):
        headers["Retry-After"] = str(exc.details.get("retry_after_s", 1))
    return Response(
        msgspec.json.encode(body), exc.status, headers=headers, media_type="application/json"
    )


async def on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if exc.status >= 500:
        logger.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = (
        f"No route {request.method} {request.url.path}; see GET /openapi.json for the API."
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return Response(
        msgspec.json.encode(ErrorBody(error=code, message=message)),
        exc.status_code,
        headers=exc.headers,
        media_type="application/json",
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("Unexpected error on %s %s", request.method, request.url.path)
    body = ErrorBody(
        error="internal_error",
        message="Herald hit an unexpected error; it is logged. Retrying may help.",
    )
    return Response(msgspec.json.encode(body), 500, media_type="application/json")
