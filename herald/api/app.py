"""create_app(settings, store) -> the ASGI app: routes, error mapping, metrics, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.api import customers, events, ingest, journeys, messages, schema
from herald.api.auth import Authenticator
from herald.api.errors import json_response, on_http_error, on_service_error, on_unexpected
from herald.api.metrics import Metrics
from herald.api.openapi import docs_page, openapi_document
from herald.api.schemas import Health
from herald.api.state import AppState
from herald.core.events import Limits
from herald.errors import ServiceError
from herald.settings import Settings
from herald.store.base import Store

logger = logging.getLogger(__name__)

KEY_TOUCH_INTERVAL_S = 5.0  # how often 'last used' times of keys are written


def create_app(
    settings: Settings,
    store: Store,
    *,
    manage_store: bool = True,
    metrics: Metrics | None = None,
) -> Starlette:
    """The HTTP API over `store`; with `manage_store` the app starts and closes the store."""
    metrics = metrics or Metrics()
    metrics.track_pending(store.pending_events)
    state = AppState(
        settings=settings,
        store=store,
        auth=Authenticator(store, ttl_s=settings.key_cache_ttl_s),
        metrics=metrics,
        limits=Limits(settings.max_batch_events, settings.max_event_bytes),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_store:
            await store.start()
        flusher = asyncio.create_task(_flush_key_use(state))
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await state.auth.flush_last_used()
            if manage_store:
                await store.close()

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            ServiceError: on_service_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.state.herald = state
    app.add_middleware(_CountRequests, metrics=metrics)
    return app


async def _flush_key_use(state: AppState) -> None:
    while True:
        await asyncio.sleep(KEY_TOUCH_INTERVAL_S)
        try:
            await state.auth.flush_last_used()
        except ServiceError as exc:
            logger.warning("Could not record key use: %s", exc.message)


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return json_response(Health("ok"))


async def readyz(request: Request) -> Response:
    """Readiness: the store answers and the commit queue has room."""
    state: AppState = request.app.state.herald
    await state.store.ping()
    pending = state.store.pending_events()
    if pending >= state.settings.max_pending_events:
        return json_response(Health("overloaded", pending), 503)
    return json_response(Health("ready", pending))


async def metrics_endpoint(request: Request) -> Response:
    state: AppState = request.app.state.herald
    try:
        state.metrics.observe_processing(await state.store.processing_status())
    except ServiceError as exc:  # the request metrics are still worth answering with
        logger.warning("Could not read processing progress for /metrics: %s", exc.message)
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    return json_response(openapi_document())


async def docs(request: Request) -> Response:
    return HTMLResponse(docs_page())


ROUTES = [
    Route("/api/events/batch/", ingest.ingest_batch, methods=["POST"]),
    Route("/api/events/batch", ingest.ingest_batch, methods=["POST"]),
    Route("/api/events/posthog/", ingest.ingest_posthog, methods=["POST"]),
    Route("/api/events/posthog", ingest.ingest_posthog, methods=["POST"]),
    Route("/api/events/", ingest.ingest_one, methods=["POST"]),
    Route("/api/events", ingest.ingest_one, methods=["POST"]),
    Route("/api/events", events.list_events, methods=["GET"]),
    Route("/api/events/{uuid}", events.get_event, methods=["GET"]),
    Route("/api/quarantine", events.list_quarantine, methods=["GET"]),
    Route("/api/quarantine/{id:int}", events.get_quarantined, methods=["GET"]),
    Route("/api/quarantine/{id:int}", events.delete_quarantined, methods=["DELETE"]),
    Route("/api/quarantine/{id:int}/replay", events.replay_quarantined, methods=["POST"]),
    Route("/api/stats", events.stats, methods=["GET"]),
    Route("/api/schema", schema.get_schema, methods=["GET"]),
    Route("/api/schema/attributes", schema.add_attribute, methods=["POST"]),
    Route("/api/schema/primary-key", schema.set_primary_key, methods=["POST"]),
    Route("/api/customers/upsert", customers.upsert, methods=["POST"]),
    Route("/api/customers/read", customers.read, methods=["POST"]),
    Route("/api/customers/delete", customers.delete, methods=["POST"]),
    Route("/api/customers/search", customers.search, methods=["POST"]),
    Route("/api/customers", customers.list_customers, methods=["GET"]),
    Route("/api/customers/{id}", customers.get_customer, methods=["GET"]),
    Route("/api/customers/{id}/events", customers.customer_events, methods=["GET"]),
    Route("/api/customers/{id}/journeys", customers.customer_journeys, methods=["GET"]),
    Route("/api/journeys", journeys.create, methods=["POST"]),
    Route("/api/journeys", journeys.list_journeys, methods=["GET"]),
    Route("/api/journeys/{name}", journeys.get_journey, methods=["GET"]),
    Route("/api/journeys/{name}", journeys.update, methods=["PUT"]),
    Route("/api/journeys/{name}/stats", journeys.stats, methods=["GET"]),
    Route("/api/journeys/{name}/pause", journeys.pause, methods=["POST"]),
    Route("/api/journeys/{name}/resume", journeys.resume, methods=["POST"]),
    Route("/api/journeys/{name}/archive", journeys.archive, methods=["POST"]),
    Route("/api/messages", messages.list_messages, methods=["GET"]),
    Route("/api/messages/{id}", messages.get_message, methods=["GET"]),
    Route("/api/messages/{id}/retry", messages.retry_message, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]


class _CountRequests:
    """Counts answered requests by route template and status (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def send_and_count(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.count_request(template, status[0] if status else 500)
