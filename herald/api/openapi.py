"""The OpenAPI document, generated from the same Structs the handlers encode."""

from __future__ import annotations

import functools
import html
from typing import Any

import msgspec

from herald import __version__
from herald.api.customers import KeyIn, SearchIn, UpsertIn
from herald.api.schema import AttributeIn, PrimaryKeyIn
from herald.api.schemas import (
    CountersOut,
    CustomerEventOut,
    CustomerEventsOut,
    CustomerList,
    CustomerOut,
    DeletedCustomer,
    EnrollmentList,
    ErrorBody,
    EventList,
    EventOut,
    Health,
    IngestResult,
    JourneyList,
    JourneySaved,
    QuarantineItem,
    QuarantineList,
    ReplayResult,
    UpsertedCustomer,
)
from herald.core.events import WireEvent
from herald.core.journeys import Journey
from herald.core.schema import CustomerSchema
from herald.store.base import JourneyRecord, JourneyStats, MessagePage, OutboxMessage


class BatchRequest(msgspec.Struct):
    """The body of POST /api/events/batch/."""

    batch: list[WireEvent]
    sent_at: str | None = None
    sentAt: str | None = None


_SCHEMAS = (
    BatchRequest,
    CustomerSchema,
    AttributeIn,
    PrimaryKeyIn,
    WireEvent,
    IngestResult,
    ErrorBody,
    EventOut,
    EventList,
    QuarantineItem,
    QuarantineList,
    ReplayResult,
    CountersOut,
    Health,
    UpsertIn,
    KeyIn,
    SearchIn,
    UpsertedCustomer,
    DeletedCustomer,
    CustomerOut,
    CustomerList,
    CustomerEventOut,
    CustomerEventsOut,
    Journey,
    JourneyRecord,
    JourneySaved,
    JourneyList,
    MessagePage,
    OutboxMessage,
    JourneyStats,
    EnrollmentList,
)
_REF = "#/components/schemas/{name}"


def _ref(struct: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=struct.__name__)}


def _json(struct: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(struct)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "Unusable body or parameters (JSON errors give line and column); strict-mode errors",
        401: "Missing or unknown API key",
        403: "A write key on an admin route",
        404: "Not found in this workspace",
        409: "Conflicts with existing data; the message names the conflicting value",
        413: "Past a size or count limit; the message states the limit",
        415: "Unsupported Content-Encoding",
        503: "Overloaded or store unavailable: retry after Retry-After seconds",
    }
    return {str(status): _json(ErrorBody, words[status]) for status in statuses}


_INGEST_ERRORS = _errors(400, 401, 413, 415, 503)
_ADMIN_ERRORS = _errors(400, 401, 403, 404, 503)
_KEY: list[dict[str, list[str]]] = [{"apiKey": []}]


def _param(name: str, where: str, description: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


_CURSOR = _param("cursor", "query", "next_cursor of the previous page")
_LIMIT = _param("limit", "query", "page size, 1 to 1000 (default 100)")


def _paths() -> dict[str, Any]:
    ingest = {
        "post": {
            "summary": "Send a batch of events (Laudspeaker-compatible)",
            "description": (
                "Answers 201 once every valid event is durably committed. Invalid events are "
                "quarantined and listed in `errors`; with `Herald-Strict: 1` any invalid event "
                "makes the whole batch fail with 400 and nothing is stored. Retry only on 429, "
                "502, 503, 504 and network errors: a retried batch is reported as duplicates."
            ),
            "security": _KEY,
            "parameters": [_param("Herald-Strict", "header", "1: all or nothing")],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(BatchRequest)}},
            },
            "responses": {"201": _json(IngestResult, "Per-event results"), **_INGEST_ERRORS},
        }
    }
    one = {
        "post": {
            "summary": "Send one event",
            "security": _KEY,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(WireEvent)}},
            },
            "responses": {"201": _json(IngestResult, "The event's result"), **_INGEST_ERRORS},
        }
    }
    # GET is served at /api/events only: /api/events/ is the single-event POST route.
    listing = {
        "get": {
            "summary": "List events, newest first (admin key)",
            "security": _KEY,
            "parameters": [
                _param("correlationValue", "query", "only this correlation value"),
                _param("event", "query", "only this event name"),
                _param("from", "query", "event time at or after (ISO-8601)"),
                _param("to", "query", "event time before (ISO-8601)"),
                _CURSOR,
                _LIMIT,
            ],
            "responses": {"200": _json(EventList, "A page of events"), **_ADMIN_ERRORS},
        }
    }
    posthog = {
        "post": {
            "summary": "Accepted and ignored (Laudspeaker keeps it as a no-op)",
            "security": _KEY,
            "responses": {"201": {"description": "Ignored"}, **_errors(401)},
        }
    }
    return {
        "/api/events/batch/": ingest,
        "/api/events/": one,
        "/api/events": listing,
        "/api/events/posthog/": posthog,
        "/api/events/{uuid}": {
            "get": {
                "summary": "One event by uuid (admin key)",
                "security": _KEY,
                "parameters": [_param("uuid", "path", "the event's uuid", True)],
                "responses": {"200": _json(EventOut, "The event"), **_ADMIN_ERRORS},
            }
        },
        "/api/quarantine": {
            "get": {
                "summary": "Invalid events kept with their JSON and reasons (admin key)",
                "security": _KEY,
                "parameters": [_CURSOR, _LIMIT],
                "responses": {"200": _json(QuarantineList, "A page"), **_ADMIN_ERRORS},
            }
        },
        "/api/quarantine/{id}": {
            "get": {
                "summary": "One quarantined event (admin key)",
                "security": _KEY,
                "parameters": [_param("id", "path", "quarantine id", True)],
                "responses": {"200": _json(QuarantineItem, "The item"), **_ADMIN_ERRORS},
            },
            "delete": {
                "summary": "Drop a quarantined event (admin key)",
                "security": _KEY,
                "parameters": [_param("id", "path", "quarantine id", True)],
                "responses": {"204": {"description": "Deleted"}, **_ADMIN_ERRORS},
            },
        },
        "/api/quarantine/{id}/replay": {
            "post": {
                "summary": "Commit a corrected event in place of a quarantined one (admin key)",
                "description": "The body is the corrected event; an empty body replays it as is.",
                "security": _KEY,
                "parameters": [_param("id", "path", "quarantine id", True)],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref(WireEvent)}},
                },
                "responses": {"201": _json(ReplayResult, "Committed"), **_ADMIN_ERRORS},
            }
        },
        "/api/stats": {
            "get": {
                "summary": "Per-workspace event counters (admin key)",
                "security": _KEY,
                "responses": {"200": _json(CountersOut, "Counters"), **_ADMIN_ERRORS},
            }
        },
        "/api/schema": {
            "get": {
                "summary": "The workspace's customer schema (admin key)",
                "security": _KEY,
                "responses": {"200": _json(CustomerSchema, "The schema"), **_ADMIN_ERRORS},
            }
        },
        "/api/schema/attributes": {
            "post": {
                "summary": "Declare (or retype) a customer attribute (admin key)",
                "security": _KEY,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(AttributeIn)}},
                },
                "responses": {"200": _json(CustomerSchema, "The new schema"), **_ADMIN_ERRORS},
            }
        },
        "/api/schema/primary-key": {
            "post": {
                "summary": "Make a declared attribute the primary key (admin key)",
                "description": (
                    "Refused with 409, naming the value, when two customers share a value of the "
                    "attribute: a primary key must be unique."
                ),
                "security": _KEY,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(PrimaryKeyIn)}},
                },
                "responses": {
                    "200": _json(CustomerSchema, "The new schema"),
                    **_errors(400, 401, 403, 404, 409, 413, 415, 503),
                },
            }
        },
        **_customer_paths(),
        **_journey_paths(),
        **_message_paths(),
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json(Health, "Up")}}},
        "/readyz": {
            "get": {
                "summary": "Readiness: store reachable, commit queue has room",
                "responses": {"200": _json(Health, "Ready"), "503": _json(Health, "Not ready")},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {}}}},
    }


def _body(struct: type) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(struct)}}}


_ID = _param("id", "path", "the customer's id (a UUID, as upsert returns it)", True)
_NAME = _param("name", "path", "the journey's name", True)


def _message_paths() -> dict[str, Any]:
    message_id = _param("id", "path", "the message's id (its Idempotency-Key / Message-ID)", True)
    return {
        "/api/messages": {
            "get": {
                "summary": "Journey messages, oldest first (admin key)",
                "security": _KEY,
                "parameters": [
                    _param("status", "query", "queued, sent or failed"),
                    _CURSOR,
                    _LIMIT,
                ],
                "responses": {"200": _json(MessagePage, "A page"), **_errors(400, 401, 403, 503)},
            }
        },
        "/api/messages/{id}": {
            "get": {
                "summary": "One message with its delivery status and last error (admin key)",
                "security": _KEY,
                "parameters": [message_id],
                "responses": {
                    "200": _json(OutboxMessage, "The message"),
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        "/api/messages/{id}/retry": {
            "post": {
                "summary": "Send a failed message again, now (admin key)",
                "security": _KEY,
                "parameters": [message_id],
                "responses": {
                    "200": _json(OutboxMessage, "Queued again"),
                    **_errors(401, 403, 404, 409, 503),
                },
            }
        },
    }


def _journey_paths() -> dict[str, Any]:
    invalid = "400 with `problems`: every problem of the document, each with its step and field."
    status_change = {
        "security": _KEY,
        "parameters": [_NAME],
        "responses": {"200": _json(JourneyRecord, "The journey"), **_errors(401, 403, 404, 503)},
    }
    return {
        "/api/journeys": {
            "post": {
                "summary": "Create a journey (admin key)",
                "description": invalid,
                "security": _KEY,
                "requestBody": _body(Journey),
                "responses": {
                    "201": _json(JourneySaved, "Created (version 1)"),
                    **_errors(400, 401, 403, 409, 413, 415, 503),
                },
            },
            "get": {
                "summary": "List journeys, current versions (admin key)",
                "security": _KEY,
                "parameters": [_param("archived", "query", "1: include archived journeys")],
                "responses": {"200": _json(JourneyList, "Journeys"), **_errors(400, 401, 403, 503)},
            },
        },
        "/api/journeys/{name}": {
            "get": {
                "summary": "One journey (admin key)",
                "security": _KEY,
                "parameters": [
                    _NAME,
                    _param("version", "query", "a past version (default: current)"),
                ],
                "responses": {
                    "200": _json(JourneyRecord, "The journey"),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
            "put": {
                "summary": "Change a journey: a new version when the document differs (admin key)",
                "description": invalid + " Customers inside finish on the version they entered.",
                "security": _KEY,
                "parameters": [_NAME],
                "requestBody": _body(Journey),
                "responses": {
                    "200": _json(JourneySaved, "updated (new version) or unchanged"),
                    **_errors(400, 401, 403, 404, 413, 415, 503),
                },
            },
        },
        "/api/journeys/{name}/stats": {
            "get": {
                "summary": "Enrollments by state; per step: entered, waiting, messages (admin key)",
                "security": _KEY,
                "parameters": [_NAME],
                "responses": {
                    "200": _json(JourneyStats, "The figures"),
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        "/api/journeys/{name}/pause": {"post": {"summary": "Stop new entries", **status_change}},
        "/api/journeys/{name}/resume": {"post": {"summary": "Take entries again", **status_change}},
        "/api/journeys/{name}/archive": {"post": {"summary": "Retire a journey", **status_change}},
    }


def _customer_paths() -> dict[str, Any]:
    by_key = "Laudspeaker-compatible; the workspace's primary key (GET /api/schema) names it."
    return {
        "/api/customers/upsert": {
            "post": {
                "summary": "Create or update a customer by primary key (admin key)",
                "description": (
                    f"{by_key} Properties are checked against the declared attribute types; "
                    "properties must not hold a primary-key value other than primary_key."
                ),
                "security": _KEY,
                "requestBody": _body(UpsertIn),
                "responses": {
                    "200": _json(UpsertedCustomer, "Updated an existing customer"),
                    "201": _json(UpsertedCustomer, "Created the customer"),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
            }
        },
        "/api/customers/read": {
            "post": {
                "summary": "One customer by primary key (admin key)",
                "description": by_key,
                "security": _KEY,
                "requestBody": _body(KeyIn),
                "responses": {
                    "200": _json(CustomerOut, "The customer"),
                    **_errors(400, 401, 403, 404, 413, 415, 503),
                },
            }
        },
        "/api/customers/delete": {
            "post": {
                "summary": "Delete a customer by primary key (admin key)",
                "description": f"{by_key} The customer's events stay in the event log.",
                "security": _KEY,
                "requestBody": _body(KeyIn),
                "responses": {
                    "200": _json(DeletedCustomer, "Deleted"),
                    **_errors(400, 401, 403, 404, 413, 415, 503),
                },
            }
        },
        "/api/customers": {
            "get": {
                "summary": "List customers, oldest first (admin key)",
                "security": _KEY,
                "parameters": [_CURSOR, _LIMIT],
                "responses": {
                    "200": _json(CustomerList, "A page of customers"),
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/api/customers/search": {
            "post": {
                "summary": "Customers matching every condition, oldest first (admin key)",
                "description": (
                    "Operators: eq, ne, exists, not_exists, contains, gt, gte, lt, lte, in (a "
                    "list). A value of another type than the attribute's does not match. A page "
                    "may hold fewer than `limit` customers and still have a next_cursor."
                ),
                "security": _KEY,
                "requestBody": _body(SearchIn),
                "responses": {
                    "200": _json(CustomerList, "A page of matching customers"),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
            }
        },
        "/api/customers/{id}/journeys": {
            "get": {
                "summary": "A customer's journeys, newest first (admin key)",
                "security": _KEY,
                "parameters": [_ID],
                "responses": {
                    "200": _json(EnrollmentList, "Its enrollments"),
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        "/api/customers/{id}": {
            "get": {
                "summary": "One customer by id; a merged-away id gives its customer (admin key)",
                "security": _KEY,
                "parameters": [_ID],
                "responses": {
                    "200": _json(CustomerOut, "The customer"),
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        "/api/customers/{id}/events": {
            "get": {
                "summary": "A customer's events in commit order, with outcomes (admin key)",
                "description": (
                    "Events appear once the processor has applied them; `outcome` is one of "
                    "created, attributed, identified, merged, conflict."
                ),
                "security": _KEY,
                "parameters": [_ID, _CURSOR, _LIMIT],
                "responses": {
                    "200": _json(CustomerEventsOut, "A page of events"),
                    **_errors(400, 401, 403, 404, 503),
                },
            }
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(_SCHEMAS, ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald",
            "version": __version__,
            "description": "Laudspeaker-compatible event ingestion with per-event results.",
        },
        "paths": _paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'Api-Key <key>'",
                }
            },
        },
    }


@functools.cache
def docs_page() -> str:
    rows = []
    for path, operations in _paths().items():
        for method, operation in operations.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(operation.get('summary', ''))}</td></tr>"
            )
    return (
        "<!doctype html><meta charset=utf-8><title>Herald API</title>"
        "<h1>Herald API</h1><p>Authenticate with <code>Authorization: Api-Key &lt;key&gt;</code>."
        " The machine-readable document is <a href=/openapi.json>/openapi.json</a>.</p>"
        f"<table>{''.join(rows)}</table>"
    )
