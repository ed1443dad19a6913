"""The outbox in the SQLite state database: enqueue once per step, claim due messages, record.

Delivery workers claim a batch of due messages for `claim_s` seconds, send them, and record each
attempt only if they still hold the claim (a worker that stalled past it finds its rows taken).
A worker killed between sending and recording leaves the claim to run out; the message is then
sent again with the same id (Idempotency-Key), which is what receivers deduplicate on.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from herald.errors import Conflict, NotFound
from herald.store.base import MessagePage, MessageStatus, NewMessage, OutboxMessage
from herald.store.db import Db, skip_locked, transaction, write_turn
from herald.store.sqlitedb import from_us

_encode = msgspec.json.encode
_decode_message = msgspec.json.Decoder(dict[str, Any]).decode
_COLUMNS = (
    "message_id, journey, step, step_number, enrollment_id, customer_id, kind, message, status,"
    " attempts, due_at_us, created_at_us, sent_at_us, last_error"
)


@dataclass(frozen=True)
class Attempt:
    """How one claimed message's attempt went, to record."""

    row_id: int
    status: MessageStatus
    detail: str
    due_at_us: int | None = None  # the next attempt, when queued again


@dataclass(frozen=True)
class Claimed:
    row_id: int
    message: OutboxMessage
    workspace_id: int


def enqueue(state: Db, messages: Sequence[NewMessage], *, now_us: int) -> int:
    """Insert `messages` (inside the caller's transaction); existing (enrollment, step) stay."""
    return state.executemany(
        "INSERT OR IGNORE INTO outbox (message_id, workspace_id, enrollment_id, step_number,"
        " journey, step, customer_id, kind, message, status, due_at_us, created_at_us,"
        " last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                str(uuidlib.uuid4()),
                item.workspace_id,
                item.enrollment_id,
                item.step_number,
                item.journey,
                item.step,
                item.customer_id,
                item.kind,
                _encode(item.message).decode(),
                (MessageStatus.FAILED if item.error else MessageStatus.QUEUED).value,
                now_us,
                now_us,
                item.error,
            )
            for item in messages
        ],
    ).rowcount


def claim_due(state: Db, *, worker: str, now_us: int, claim_us: int, limit: int) -> list[Claimed]:
    """Claim up to `limit` due messages for `worker` until now + `claim_us`."""
    with transaction(state):  # on PostgreSQL, workers skip each other's rows, never wait
        rows = state.execute(
            f"SELECT id, workspace_id, {_COLUMNS} FROM outbox WHERE status = ?"
            " AND due_at_us <= ? AND claimed_until_us < ? ORDER BY due_at_us LIMIT ?"
            + skip_locked(state),
            (MessageStatus.QUEUED.value, now_us, now_us, limit),
        ).fetchall()
        state.executemany(
            "UPDATE outbox SET claimed_by = ?, claimed_until_us = ? WHERE id = ?",
            [(worker, now_us + claim_us, row[0]) for row in rows],
        )
    return [Claimed(row[0], _message(row[2:]), row[1]) for row in rows]


def record(state: Db, attempts: Sequence[Attempt], *, worker: str, now_us: int) -> int:
    """Record attempts of messages `worker` still holds; return how many were recorded."""
    with write_turn(state):
        return state.executemany(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?,"
            " due_at_us = coalesce(?, due_at_us), sent_at_us = ?, claimed_by = NULL,"
            " claimed_until_us = 0 WHERE id = ? AND claimed_by = ?",
            [
                (
                    attempt.status.value,
                    None if attempt.status is MessageStatus.SENT else attempt.detail,
                    attempt.due_at_us,
                    now_us if attempt.status is MessageStatus.SENT else None,
                    attempt.row_id,
                    worker,
                )
                for attempt in attempts
            ],
        ).rowcount


def release(state: Db, *, worker_prefix: str) -> int:
    """Free the claims of dead workers (names starting with `worker_prefix`); return how many."""
    with write_turn(state):
        return state.execute(
            "UPDATE outbox SET claimed_by = NULL, claimed_until_us = 0"
            " WHERE substr(claimed_by, 1, length(?)) = ?",
            (worker_prefix, worker_prefix),
        ).rowcount


def extend_claim(state: Db, row_id: int, *, worker: str, now_us: int, until_us: int) -> bool:
    """Hold `worker`'s claim on a message until `until_us`, if the claim is still its own and has
    not run out; whether it is held."""
    with write_turn(state):
        return (
            state.execute(
                "UPDATE outbox SET claimed_until_us = ? WHERE id = ? AND claimed_by = ?"
                " AND claimed_until_us > ?",
                (until_us, row_id, worker, now_us),
            ).rowcount
            == 1
        )


def release_own(state: Db, *, worker: str) -> int:
    """Free the claims held under `worker`'s exact name (what a previous run of a worker of that
    name was sending when it died); return how many."""
    with write_turn(state):
        return state.execute(
            "UPDATE outbox SET claimed_by = NULL, claimed_until_us = 0 WHERE claimed_by = ?",
            (worker,),
        ).rowcount


def listing(
    state: Db,
    *,
    workspace_id: int,
    status: MessageStatus | None,
    after: int,
    limit: int,
) -> MessagePage:
    rows = state.execute(
        f"SELECT id, {_COLUMNS} FROM outbox WHERE workspace_id = ? AND id > ?"
        " AND (CAST(? AS TEXT) IS NULL OR status = ?) ORDER BY id LIMIT ?",
        (workspace_id, after, status, status, limit),
    ).fetchall()
    next_cursor = str(rows[-1][0]) if len(rows) == limit else None
    return MessagePage([_message(row[1:]) for row in rows], next_cursor)


def get(state: Db, *, workspace_id: int, message_id: str) -> OutboxMessage:
    row = state.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE workspace_id = ? AND message_id = ?",
        (workspace_id, message_id),
    ).fetchone()
    if row is None:
        raise NotFound(
            f"No message {message_id[:80]!r} in this workspace; list them with GET /api/messages."
        )
    return _message(row)


def retry(state: Db, *, workspace_id: int, message_id: str, now_us: int) -> OutboxMessage:
    """Queue a failed message again, due now; its attempts so far stay counted."""
    with write_turn(state):
        current = get(state, workspace_id=workspace_id, message_id=message_id)
        if current.status is not MessageStatus.FAILED:
            raise Conflict(
                f"Message {message_id} is {current.status.value}; only a failed message is retried."
            )
        state.execute(
            "UPDATE outbox SET status = ?, due_at_us = ?, claimed_by = NULL, claimed_until_us = 0"
            " WHERE workspace_id = ? AND message_id = ?",
            (MessageStatus.QUEUED.value, now_us, workspace_id, message_id),
        )
    return get(state, workspace_id=workspace_id, message_id=message_id)


def _message(row: Sequence[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row[0],
        journey=row[1],
        step=row[2],
        step_number=row[3],
        enrollment_id=row[4],
        customer_id=row[5],
        kind=row[6],
        message=_decode_message(row[7]),
        status=MessageStatus(row[8]),
        attempts=row[9],
        due_at=from_us(row[10]),
        created_at=from_us(row[11]),
        sent_at=from_us(row[12]) if row[12] is not None else None,
        last_error=row[13],
    )
