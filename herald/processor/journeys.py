"""Journeys inside a processor step: enter customers, end their waits, fire due timers.

Runs in the step's write transaction, after identity: the engine (core/engine.py) decides, this
module loads and saves enrollments, applies attribute changes through the Ledger, renders message
templates, and puts messages in the outbox, all in the same transaction as the checkpoint, so a
step that is redone after a crash enrolls nobody twice and queues no message twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from herald.core.engine import (
    Arrival,
    Context,
    Enrollment,
    Outcome,
    SendMessage,
    SetAttributes,
    Status,
    advance,
    enter,
    trigger_matches,
)
from herald.core.journeys import EmailStep, EntryRule, Journey, JourneyStatus, WebhookStep
from herald.errors import InvalidRequest
from herald.store import outbox
from herald.store.base import NewMessage
from herald.store.db import Db
from herald.store.ledger import Ledger
from herald.store.sqlitedb import from_us, to_us
from herald.templates import render
from herald.types import WorkspaceId

MAX_DUE_PER_STEP = 1_000  # timers fired per step; the rest in the next one

_decode_journey = msgspec.json.Decoder(Journey).decode
_decode_trigger = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.encode
_COLUMNS = (
    "e.id, e.workspace_id, e.journey_id, e.journey, e.version, e.customer_id, e.status, e.step,"
    " e.due_at_us, e.awaiting, e.steps_taken, e.trigger"
)


@dataclass(frozen=True)
class _Live:
    journey_id: int
    version: int
    definition: Journey


@dataclass
class JourneyCache:
    """Decoded live journeys per workspace, kept across steps until the journeys table changes
    (a fingerprint of count and last update is checked once per step and workspace)."""

    live: dict[int, tuple[tuple[int, int], dict[str, list[_Live]]]] = field(default_factory=dict)
    versions: dict[tuple[int, int], Journey] = field(default_factory=dict)


@dataclass
class JourneyRunner:
    """One step's view of the workspaces' live journeys and waiting enrollments."""

    conn: Db
    cache: JourneyCache = field(default_factory=JourneyCache)
    _triggers: dict[int, dict[str, list[_Live]]] = field(default_factory=dict)
    _awaited: dict[int, set[str]] = field(default_factory=dict)
    messages: list[NewMessage] = field(default_factory=list)
    _step_counts: dict[tuple[int, str], int] = field(default_factory=dict)

    def wants(self, workspace_id: int, event_name: str) -> bool:
        """Whether an event of this name can enter or wake anyone (cheap: most cannot)."""
        self._load(workspace_id)
        return (
            event_name in self._triggers[workspace_id] or event_name in self._awaited[workspace_id]
        )

    def on_event(
        self,
        ledger: Ledger,
        *,
        workspace_id: int,
        customer_id: int,
        name: str,
        source: str,
        payload: Mapping[str, Any],
        received_at: datetime,
    ) -> None:
        """End the waits this event satisfies, then enter the journeys it triggers."""
        if name in self._awaited[workspace_id]:
            for enrollment, journey_id, trigger in self._waiting_for(customer_id, name):
                journey = self._version(journey_id, enrollment.version)
                context = Context(self._customer(ledger, customer_id), trigger)
                outcome = advance(
                    journey,
                    enrollment,
                    context=context,
                    now=received_at,
                    arrival=Arrival(name, payload),
                )
                self._save(ledger, outcome, journey, workspace_id, journey_id, context, received_at)
        trigger = {"name": name, "source": source, "payload": dict(payload)}
        for live in self._triggers[workspace_id].get(name, []):
            context = Context(self._customer(ledger, customer_id), trigger)
            if not trigger_matches(live.definition, name=name, source=source, context=context):
                continue
            if not self._may_enter(live, customer_id):
                continue
            outcome = enter(
                live.definition,
                enrollment_id=str(uuid.uuid4()),
                customer_id=str(customer_id),
                version=live.version,
                context=context,
                now=received_at,
            )
            self._insert(outcome.enrollment, live, workspace_id, trigger, received_at)
            self._save(
                ledger,
                outcome,
                live.definition,
                workspace_id,
                live.journey_id,
                context,
                received_at,
            )

    def fire_due(self, ledger: Ledger, *, now: datetime) -> int:
        """Advance enrollments whose delay or wait is due; return how many."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM enrollments e WHERE e.status = ? AND e.due_at_us <= ?"
            " ORDER BY e.due_at_us LIMIT ?",
            (Status.WAITING.value, to_us(now), MAX_DUE_PER_STEP),
        ).fetchall()
        for row in rows:
            enrollment, journey_id, trigger = _enrollment(row)
            journey = self._version(journey_id, enrollment.version)
            context = Context(self._customer(ledger, int(enrollment.customer_id)), trigger)
            outcome = advance(journey, enrollment, context=context, now=now)
            self._save(ledger, outcome, journey, row[1], journey_id, context, now)
        return len(rows)

    def flush(self, *, now: datetime) -> None:
        """Queue the rendered messages (inside the step's transaction)."""
        outbox.enqueue(self.conn, self.messages, now_us=to_us(now))
        self.messages.clear()
        self.conn.executemany(
            "INSERT INTO journey_step_counts (journey_id, step, entered) VALUES (?, ?, ?)"
            " ON CONFLICT (journey_id, step) DO UPDATE"
            " SET entered = journey_step_counts.entered + excluded.entered",
            [(journey_id, step, count) for (journey_id, step), count in self._step_counts.items()],
        )
        self._step_counts.clear()

    # -- internals -------------------------------------------------------------------------

    def _load(self, workspace_id: int) -> None:
        if workspace_id in self._triggers:
            return
        (count, last_us) = self.conn.execute(
            "SELECT count(*), coalesce(max(updated_at_us), 0) FROM journeys WHERE workspace_id = ?",
            (workspace_id,),
        ).fetchone()
        cached = self.cache.live.get(workspace_id)
        if cached is not None and cached[0] == (count, last_us):
            self._triggers[workspace_id] = cached[1]
        else:
            triggers: dict[str, list[_Live]] = {}
            for journey_id, version, definition in self.conn.execute(
                "SELECT j.id, j.version, v.definition FROM journeys j JOIN journey_versions v"
                " ON v.journey_id = j.id AND v.version = j.version"
                " WHERE j.workspace_id = ? AND j.status = ? ORDER BY j.id",
                (workspace_id, JourneyStatus.LIVE.value),
            ):
                journey = _decode_journey(definition)
                self.cache.versions[(journey_id, version)] = journey
                triggers.setdefault(journey.trigger.event, []).append(
                    _Live(journey_id, version, journey)
                )
            self.cache.live[workspace_id] = ((count, last_us), triggers)
            self._triggers[workspace_id] = triggers
        self._awaited[workspace_id] = {
            awaiting
            for (awaiting,) in self.conn.execute(
                "SELECT DISTINCT awaiting FROM enrollments WHERE workspace_id = ? AND status = ?"
                " AND awaiting IS NOT NULL",
                (workspace_id, Status.WAITING.value),
            )
        }

    def _version(self, journey_id: int, version: int) -> Journey:
        journey = self.cache.versions.get((journey_id, version))
        if journey is None:
            (definition,) = self.conn.execute(
                "SELECT definition FROM journey_versions WHERE journey_id = ? AND version = ?",
                (journey_id, version),
            ).fetchone()
            journey = self.cache.versions[(journey_id, version)] = _decode_journey(definition)
        return journey

    def _waiting_for(
        self, customer_id: int, name: str
    ) -> list[tuple[Enrollment, int, dict[str, Any]]]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM enrollments e WHERE e.customer_id = ? AND e.status = ?"
            " AND e.awaiting = ?",
            (customer_id, Status.WAITING.value, name),
        ).fetchall()
        return [_enrollment(row) for row in rows]

    def _may_enter(self, live: _Live, customer_id: int) -> bool:
        rule = live.definition.entry
        if rule is EntryRule.EVERY_TIME:
            return True
        sql = "SELECT 1 FROM enrollments WHERE journey_id = ? AND customer_id = ?"
        params: list[Any] = [live.journey_id, customer_id]
        if rule is EntryRule.NOT_WHILE_INSIDE:
            sql += " AND status = ?"
            params.append(Status.WAITING.value)
        return self.conn.execute(sql + " LIMIT 1", params).fetchone() is None

    def _customer(self, ledger: Ledger, customer_id: int) -> dict[str, Any]:
        return {**ledger.attributes(customer_id), "id": ledger.herald_id(customer_id)}

    def _insert(
        self,
        enrollment: Enrollment,
        live: _Live,
        workspace_id: int,
        trigger: Mapping[str, Any],
        now: datetime,
    ) -> None:
        self.conn.execute(
            "INSERT INTO enrollments (id, workspace_id, journey_id, journey, version, customer_id,"
            " status, step, due_at_us, awaiting, steps_taken, trigger, entered_at_us,"
            " updated_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, 0, ?, ?, ?)",
            (
                enrollment.id,
                workspace_id,
                live.journey_id,
                live.definition.name,
                live.version,
                int(enrollment.customer_id),
                enrollment.status.value,
                _encode(trigger).decode(),
                to_us(now),
                to_us(now),
            ),
        )

    def _save(
        self,
        ledger: Ledger,
        outcome: Outcome,
        journey: Journey,
        workspace_id: int,
        journey_id: int,
        context: Context,
        now: datetime,
    ) -> None:
        enrollment = outcome.enrollment
        for step in outcome.path:
            key = (journey_id, step)
            self._step_counts[key] = self._step_counts.get(key, 0) + 1
        self.conn.execute(
            "UPDATE enrollments SET status = ?, step = ?, due_at_us = ?, awaiting = ?,"
            " steps_taken = ?, updated_at_us = ? WHERE id = ?",
            (
                enrollment.status.value,
                enrollment.step,
                to_us(enrollment.due_at) if enrollment.due_at else None,
                enrollment.awaiting,
                enrollment.steps_taken,
                to_us(now),
                enrollment.id,
            ),
        )
        if enrollment.awaiting is not None:
            self._awaited.setdefault(workspace_id, set()).add(enrollment.awaiting)
        customer = dict(context.customer)
        for action in outcome.actions:
            if isinstance(action, SetAttributes):
                ledger.set_attributes(int(enrollment.customer_id), action.changes)
                customer.update(action.changes)
            elif isinstance(action, SendMessage):
                variables = {"customer": customer, "event": context.event}
                self.messages.append(_message(journey, action, enrollment, workspace_id, variables))


def _message(
    journey: Journey,
    action: SendMessage,
    enrollment: Enrollment,
    workspace_id: int,
    variables: Mapping[str, Any],
) -> NewMessage:
    step = journey.steps[action.step]
    error = None
    fields: dict[str, Any] = {}
    try:
        fields = _rendered(step, variables)
    except InvalidRequest as exc:  # a missing variable: the message fails, and says why
        error = exc.message
    return NewMessage(
        workspace_id=WorkspaceId(workspace_id),
        enrollment_id=enrollment.id,
        step_number=action.number,
        journey=journey.name,
        step=action.step,
        customer_id=str(variables["customer"].get("id", enrollment.customer_id)),
        kind=action.kind,
        message=fields,
        error=error,
    )


def _rendered(step: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(step, WebhookStep):
        return {
            "url": render(step.url, variables),
            "method": step.method.upper(),
            "headers": {name: render(value, variables) for name, value in step.headers.items()},
            "body": render(step.body, variables) if step.body is not None else None,
            "secret": step.secret,
            "timeout_s": step.timeout_s,
        }
    assert isinstance(step, EmailStep)
    return {
        "to": render(step.to, variables),
        "subject": render(step.subject, variables),
        "body": render(step.body, variables),
        "html": render(step.html, variables) if step.html is not None else None,
    }


def _enrollment(row: tuple[Any, ...]) -> tuple[Enrollment, int, dict[str, Any]]:
    enrollment = Enrollment(
        id=row[0],
        customer_id=str(row[5]),
        version=row[4],
        status=Status(row[6]),
        step=row[7],
        due_at=from_us(row[8]) if row[8] is not None else None,
        awaiting=row[9],
        steps_taken=row[10],
    )
    return enrollment, row[2], _decode_trigger(row[11])
