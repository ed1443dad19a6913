"""The no-work ceiling: Herald's HTTP stack (uvicorn, httptools, uvloop, Starlette) answering 201
after reading the body, with no auth, decoding or storage."""

from __future__ import annotations

import gc

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_ANSWER = b"{}"


async def accept(request: Request) -> Response:
    await request.body()
    return Response(_ANSWER, 201, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


# The garbage-collector setting of `herald serve` (herald.cli._tune_gc): same stack, same tuning.
gc.set_threshold(50_000, 20, 20)

app = Starlette(
    routes=[
        Route("/api/events/batch/", accept, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
