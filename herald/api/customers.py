"""Customers (admin key): upsert/read/delete by primary key (Laudspeaker's), search, events."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from herald.api.errors import json_response
from herald.api.events import PAGE_PARAMS, event_out, known_params, page_limit
from herald.api.ingest import decode_body
from herald.api.schemas import (
    CustomerEventOut,
    CustomerEventsOut,
    CustomerList,
    DeletedCustomer,
    EnrollmentList,
    UpsertedCustomer,
)
from herald.api.state import AppState
from herald.core.conditions import Condition, Op
from herald.core.schema import MAX_KEY_CHARS, CustomerSchema, check_value
from herald.errors import InvalidRequest

MAX_CUSTOMER_BODY_BYTES = 256 * 1024
MAX_CONDITIONS = 20


class UpsertIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Laudspeaker's upsert: the customer's primary-key value and attributes to set."""

    primary_key: Any  # checked against the workspace's primary-key type (_check_key)
    properties: dict[str, Any] = {}


class KeyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    primary_key: Any


class SearchIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Customers whose attributes match every condition, oldest first, a page at a time."""

    conditions: list[Condition] = []
    cursor: str | None = None
    limit: int = 100


async def upsert(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    body = await decode_body(request, UpsertIn, max_bytes=MAX_CUSTOMER_BODY_BYTES)
    _check_upsert(key.workspace.schema, body)
    [(customer_id, created)] = await state.store.upsert_customers(
        key.workspace, [(body.primary_key, body.properties)]
    )
    return json_response(UpsertedCustomer(customer_id, created), 201 if created else 200)


async def read(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    body = await decode_body(request, KeyIn, max_bytes=MAX_CUSTOMER_BODY_BYTES)
    _check_key(key.workspace.schema, body.primary_key)
    customer = await state.store.find_customer(key.workspace, body.primary_key)
    return json_response(customer)


async def delete(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    body = await decode_body(request, KeyIn, max_bytes=MAX_CUSTOMER_BODY_BYTES)
    _check_key(key.workspace.schema, body.primary_key)
    customer_id = await state.store.delete_customer(key.workspace, body.primary_key)
    return json_response(DeletedCustomer(customer_id, deleted=True))


async def list_customers(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    known_params(request, PAGE_PARAMS)
    page = await state.store.search_customers(
        key.workspace.id,
        [],
        cursor=request.query_params.get("cursor"),
        limit=page_limit(request),
    )
    return json_response(CustomerList(page.customers, page.next_cursor))


async def search(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    try:
        body = await decode_body(request, SearchIn, max_bytes=MAX_CUSTOMER_BODY_BYTES)
    except InvalidRequest as exc:
        if str(exc.details.get("field", "")).endswith(".op"):
            raise InvalidRequest(
                f"{exc.message[:-1]}; use one of {', '.join(op.value for op in Op)}.",
                **exc.details,
            ) from None
        raise
    _check_search(body)
    page = await state.store.search_customers(
        key.workspace.id, body.conditions, cursor=body.cursor, limit=body.limit
    )
    return json_response(CustomerList(page.customers, page.next_cursor))


async def get_customer(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    customer = await state.store.get_customer(key.workspace.id, _customer_id(request))
    return json_response(customer)


async def customer_events(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    known_params(request, PAGE_PARAMS)
    page = await state.store.customer_events(
        key.workspace.id,
        _customer_id(request),
        cursor=request.query_params.get("cursor"),
        limit=page_limit(request),
    )
    return json_response(
        CustomerEventsOut(
            page.customer_id,
            [CustomerEventOut(event_out(e.event), e.outcome, e.detail) for e in page.events],
            page.next_cursor,
        )
    )


def _check_key(schema: CustomerSchema, value: Any) -> str:
    """The primary key's name, once `value` is checked to be one of its values."""
    primary = schema.primary_key
    if primary is None:
        raise InvalidRequest(
            "This workspace has no primary key; set one with `herald schema set-primary-key`."
        )
    declared = schema.attributes[primary]
    problem = check_value(declared, value) if value is not None else "it is missing (null)"
    if problem is not None:
        raise InvalidRequest(f"primary_key ({primary}): {problem}.", field="primary_key")
    if isinstance(value, str) and len(value) > MAX_KEY_CHARS:
        raise InvalidRequest(
            f"primary_key is {len(value):,} characters long; a primary key is at most "
            f"{MAX_KEY_CHARS}.",
            field="primary_key",
        )
    return primary


def _check_upsert(schema: CustomerSchema, body: UpsertIn) -> None:
    primary = _check_key(schema, body.primary_key)
    if primary in body.properties and body.properties[primary] != body.primary_key:
        raise InvalidRequest(
            f"properties.{primary} differs from primary_key; the primary key is the customer's "
            "identity: send the value in primary_key only.",
            field=f"properties.{primary}",
        )
    problems = [
        (f"properties.{name}", problem)
        for name, value in body.properties.items()
        if (problem := schema.check(name, value)) is not None
    ]
    if problems:
        message = "; ".join(f"{field}: {problem}" for field, problem in problems)
        raise InvalidRequest(f"{message}.", field=problems[0][0])


def _check_search(body: SearchIn) -> None:
    if not 1 <= body.limit <= 1_000:
        raise InvalidRequest(f"limit must be from 1 to 1000, got {body.limit}.", field="limit")
    if len(body.conditions) > MAX_CONDITIONS:
        raise InvalidRequest(
            f"At most {MAX_CONDITIONS} conditions per search, got {len(body.conditions)}.",
            field="conditions",
        )
    for index, condition in enumerate(body.conditions):
        if (problem := condition.problem()) is not None:
            raise InvalidRequest(f"conditions[{index}]: {problem}.", field=f"conditions[{index}]")


def _customer_id(request: Request) -> str:
    text = str(request.path_params["id"])
    if text in ("upsert", "read", "delete", "search"):  # POST routes asked with another method
        raise HTTPException(405, headers={"Allow": "POST"})
    return text


async def customer_journeys(request: Request) -> Response:
    state: AppState = request.app.state.herald
    key = await state.auth.authenticate(request, admin=True)
    enrollments = await state.store.customer_journeys(key.workspace.id, _customer_id(request))
    return json_response(EnrollmentList(enrollments))
