"""Journeys in the SQLite state database: names, statuses and versioned documents."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec

from herald.core.journeys import Journey, JourneyStatus
from herald.errors import Conflict, InvalidRequest, NotFound
from herald.store.base import EnrollmentRecord, JourneyRecord, JourneyStats, StepStats
from herald.store.db import Db
from herald.store.sqlitedb import from_us, state_transaction, to_us, write_turn

JOURNEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_decode_journey = msgspec.json.Decoder(Journey).decode
_encode = msgspec.json.encode
_COLUMNS = "j.name, j.status, v.version, j.created_at_us, j.updated_at_us, v.definition"
_FROM = "FROM journeys j JOIN journey_versions v ON v.journey_id = j.id"


def save(
    state: Db, *, workspace_id: int, journey: Journey, create_only: bool
) -> tuple[JourneyRecord, str]:
    """Create `journey`, or add its document as a new version when it changed."""
    if not JOURNEY_NAME.fullmatch(journey.name):
        raise InvalidRequest(
            f"Journey name {journey.name[:80]!r} is not usable: use 1 to 64 letters, digits, "
            "'.', '-' or '_', starting with a letter or digit.",
            field="name",
        )
    now_us = to_us(datetime.now(UTC))
    with state_transaction(state):
        change = _save(state, workspace_id, journey, now_us, create_only)
    return get(state, workspace_id=workspace_id, name=journey.name), change


def _save(
    state: Db,
    workspace_id: int,
    journey: Journey,
    now_us: int,
    create_only: bool,
) -> str:
    name = journey.name
    document = _encode(journey).decode()
    row = state.execute(
        "SELECT j.id, j.version, v.definition FROM journeys j JOIN journey_versions v"
        " ON v.journey_id = j.id AND v.version = j.version WHERE j.workspace_id = ? AND j.name = ?",
        (workspace_id, name),
    ).fetchone()
    if row is None:
        (journey_id,) = state.execute(
            "INSERT INTO journeys (workspace_id, name, status, version, created_at_us,"
            " updated_at_us) VALUES (?, ?, ?, 1, ?, ?) RETURNING id",
            (workspace_id, name, JourneyStatus.LIVE.value, now_us, now_us),
        ).fetchone()
        _add_version(state, journey_id, 1, document, now_us)
        return "created"
    if create_only:
        raise Conflict(
            f"A journey named {name!r} exists; change it with PUT /api/journeys/{name} "
            "(or `herald journeys apply`)."
        )
    journey_id, version, current = row
    if _decode_journey(current) == journey:  # the same journey, however it was spelt
        return "unchanged"
    _add_version(state, journey_id, version + 1, document, now_us)
    state.execute(
        "UPDATE journeys SET version = ?, updated_at_us = ? WHERE id = ?",
        (version + 1, now_us, journey_id),
    )
    return "updated"


def _add_version(state: Db, journey_id: Any, version: int, document: str, now_us: int) -> None:
    state.execute(
        "INSERT INTO journey_versions (journey_id, version, definition, created_at_us)"
        " VALUES (?, ?, ?, ?)",
        (journey_id, version, document, now_us),
    )


def get(state: Db, *, workspace_id: int, name: str, version: int | None = None) -> JourneyRecord:
    row = state.execute(
        f"SELECT {_COLUMNS} {_FROM} AND v.version = coalesce(?, j.version)"
        " WHERE j.workspace_id = ? AND j.name = ?",
        (version, workspace_id, name),
    ).fetchone()
    if row is None:
        which = f" version {version}" if version is not None else ""
        raise NotFound(
            f"No journey {name!r}{which} in this workspace; list them with GET /api/journeys."
        )
    return _record(row)


def listing(state: Db, *, workspace_id: int, archived: bool) -> list[JourneyRecord]:
    rows = state.execute(
        f"SELECT {_COLUMNS} {_FROM} AND v.version = j.version"
        " WHERE j.workspace_id = ? AND (? OR j.status != ?) ORDER BY j.name",
        (workspace_id, archived, JourneyStatus.ARCHIVED.value),
    )
    return [_record(row) for row in rows]


def set_status(state: Db, *, workspace_id: int, name: str, status: JourneyStatus) -> JourneyRecord:
    with write_turn(state):
        cursor = state.execute(
            "UPDATE journeys SET status = ?, updated_at_us = ? WHERE workspace_id = ? AND name = ?",
            (status.value, to_us(datetime.now(UTC)), workspace_id, name),
        )
    if cursor.rowcount == 0:
        raise NotFound(f"No journey {name!r} in this workspace; list them with GET /api/journeys.")
    return get(state, workspace_id=workspace_id, name=name)


def _record(row: tuple[Any, ...]) -> JourneyRecord:
    return JourneyRecord(
        name=row[0],
        status=JourneyStatus(row[1]),
        version=row[2],
        created_at=from_us(row[3]),
        updated_at=from_us(row[4]),
        definition=_decode_journey(row[5]),
    )


def stats(state: Db, *, workspace_id: int, name: str) -> JourneyStats:
    """A journey's figures from its enrollments, step counts and outbox (all versions)."""
    record = get(state, workspace_id=workspace_id, name=name)
    (journey_id,) = state.execute(
        "SELECT id FROM journeys WHERE workspace_id = ? AND name = ?", (workspace_id, name)
    ).fetchone()
    by_status = dict(
        state.execute(
            "SELECT status, count(*) FROM enrollments WHERE journey_id = ? GROUP BY status",
            (journey_id,),
        ).fetchall()
    )
    entered = dict(
        state.execute(
            "SELECT step, entered FROM journey_step_counts WHERE journey_id = ?", (journey_id,)
        ).fetchall()
    )
    waiting = dict(
        state.execute(
            "SELECT step, count(*) FROM enrollments WHERE journey_id = ? AND status = 'waiting'"
            " GROUP BY step",
            (journey_id,),
        ).fetchall()
    )
    messages: dict[tuple[str, str], int] = {
        (step, status): count
        for step, status, count in state.execute(
            "SELECT step, status, count(*) FROM outbox WHERE workspace_id = ? AND journey = ?"
            " GROUP BY step, status",
            (workspace_id, name),
        )
    }
    steps = [
        StepStats(
            step=step,
            entered=entered.get(step, 0),
            waiting=waiting.get(step, 0),
            queued=messages.get((step, "queued"), 0),
            sent=messages.get((step, "sent"), 0),
            failed=messages.get((step, "failed"), 0),
        )
        for step in record.definition.steps
    ]
    return JourneyStats(
        name=record.name,
        version=record.version,
        status=record.status,
        entered=sum(by_status.values()),
        waiting=by_status.get("waiting", 0),
        completed=by_status.get("completed", 0),
        exited=by_status.get("exited", 0),
        steps=steps,
    )


def enrollments_of(state: Db, *, workspace_id: int, customer_id: int) -> list[EnrollmentRecord]:
    rows = state.execute(
        "SELECT id, journey, version, status, step, due_at_us, entered_at_us, updated_at_us"
        " FROM enrollments WHERE workspace_id = ? AND customer_id = ?"
        " ORDER BY entered_at_us DESC, id",
        (workspace_id, customer_id),
    )
    return [
        EnrollmentRecord(
            id=row[0],
            journey=row[1],
            version=row[2],
            status=row[3],
            step=row[4],
            due_at=from_us(row[5]) if row[5] is not None else None,
            entered_at=from_us(row[6]),
            updated_at=from_us(row[7]),
        )
        for row in rows
    ]
