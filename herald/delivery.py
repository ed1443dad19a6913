"""The delivery role: claim due outbox messages, send them through their channel, record each try.

A worker sends up to `concurrency` messages at once (webhooks and SMTP are I/O), retries transient
failures with exponential backoff and jitter (core/backoff.py), and fails a message for good on a
permanent error or when it runs out of attempts; failed messages stay, to be retried by hand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from herald.channels.base import Delivery, EmailMessage, Result, WebhookMessage
from herald.channels.email import EmailChannel
from herald.channels.webhook import WebhookChannel
from herald.core.backoff import MAX_ATTEMPTS, retry_delay_s
from herald.store import outbox, postgres
from herald.store.base import MessageStatus
from herald.store.db import Db
from herald.store.sqlitedb import connect, migrate, state_path

logger = logging.getLogger(__name__)

CLAIM_S = 120.0  # a claimed message is sent again by another worker after this long
BATCH = 256  # messages claimed at a time
CONCURRENCY = 64  # messages in flight at once
CLAIM_MARGIN_US = 10_000_000  # a claim outlasts the longest a send may take by this much
IDLE_S = 0.02  # pause when nothing is due (the check is one indexed query)


class DeliveryWorker:
    """Sends the outbox of one store: a SQLite log file's state database, or a PostgreSQL URL."""

    def __init__(
        self,
        path: Path | str,
        *,
        webhooks: WebhookChannel,
        email: EmailChannel | None,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.path = path
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._webhooks = webhooks
        self._email = email
        self._clock = clock
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(concurrency)
        self._claims = asyncio.Lock()
        self._conn: Db | None = None
        self.sent = 0

    def open(self) -> None:
        """Connect (and migrate), then free the claims a previous run under this name left."""
        if isinstance(self.path, str):
            conn = postgres.connect(self.path, role="herald-delivery")
            postgres.migrate(conn)
            self._conn = conn
        else:
            # No fsync per record: a lost tail (power cut) only sends those messages again, with
            # the same Idempotency-Key; kill -9 loses nothing.
            self._conn = connect(state_path(self.path), synchronous="normal")
            migrate(self._conn, "state_migrations")
        # A worker started again under its name (`herald delivery --name`) sends at once what
        # it was sending when it died, rather than after the claims run out (CLAIM_S).
        freed = outbox.release_own(self._conn, worker=self.name)
        if freed:
            logger.warning("Delivery %s sends again %d messages of its last run", self.name, freed)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, stop: asyncio.Event, *, idle_s: float = IDLE_S) -> None:
        """Deliver until `stop` is set."""
        while not stop.is_set():
            if not await self.run_once():
                try:
                    await asyncio.wait_for(stop.wait(), idle_s)
                except TimeoutError:
                    pass

    async def run_once(self) -> int:
        """Claim, send and record one batch; return how many messages it handled."""
        conn = self._connection()
        now_us = self._now_us()
        claimed = await asyncio.to_thread(
            outbox.claim_due,
            conn,
            worker=self.name,
            now_us=now_us,
            claim_us=int(CLAIM_S * 1_000_000),
            limit=BATCH,
        )
        if not claimed:
            return 0
        claimed_until_us = now_us + int(CLAIM_S * 1_000_000)
        deliveries = await asyncio.gather(*(self._send(item, claimed_until_us) for item in claimed))
        now_us = self._now_us()
        attempts = [
            self._attempt(item, delivery, now_us)
            for item, delivery in zip(claimed, deliveries, strict=True)
            if delivery is not None
        ]
        await asyncio.to_thread(outbox.record, conn, attempts, worker=self.name, now_us=now_us)
        self.sent += sum(attempt.status is MessageStatus.SENT for attempt in attempts)
        return len(claimed)

    async def _send(self, item: outbox.Claimed, claimed_until_us: int) -> Delivery | None:
        """Send one claimed message; None when its claim ran out before it could be sent.

        A batch claims more messages than there are slots, so a message may wait behind slow
        ones, and a message's own timeout may be longer than a claim. When the claim would run
        out before the send could end, it is extended first; if it has run out already (another
        worker may have taken the message), the message is left to its new claimer, unsent.
        """
        message = item.message
        async with self._slots:
            now_us = self._now_us()
            until_us = now_us + self._longest_send_us(item) + CLAIM_MARGIN_US
            if until_us > claimed_until_us and not await self._extend(item, now_us, until_us):
                return None
            try:
                if message.kind == "webhook":
                    return await self._webhooks.send(WebhookMessage(message.id, **message.message))
                if self._email is None:
                    return Delivery(
                        Result.FAILED, "no SMTP server is configured: set HERALD_SMTP_HOST"
                    )
                return await self._email.send(EmailMessage(message.id, **message.message))
            except TypeError as exc:  # a stored message that does not fit its channel
                return Delivery(Result.FAILED, f"the message cannot be sent: {exc}")

    def _attempt(self, item: outbox.Claimed, delivery: Delivery, now_us: int) -> outbox.Attempt:
        tries = item.message.attempts + 1
        if delivery.result is Result.SENT:
            return outbox.Attempt(item.row_id, MessageStatus.SENT, delivery.detail)
        if delivery.result is Result.FAILED or tries >= MAX_ATTEMPTS:
            detail = delivery.detail
            if delivery.result is Result.RETRY:
                detail = f"gave up after {tries} attempts; the last: {detail}"
            logger.warning("Message %s failed: %s", item.message.id, detail)
            return outbox.Attempt(item.row_id, MessageStatus.FAILED, detail)
        delay_s = retry_delay_s(tries, rng=self._rng, retry_after_s=delivery.retry_after_s)
        due_at_us = now_us + int(delay_s * 1_000_000)
        return outbox.Attempt(item.row_id, MessageStatus.QUEUED, delivery.detail, due_at_us)

    async def _extend(self, item: outbox.Claimed, now_us: int, until_us: int) -> bool:
        async with self._claims:  # one statement at a time on the worker's connection
            return await asyncio.to_thread(
                outbox.extend_claim,
                self._connection(),
                item.row_id,
                worker=self.name,
                now_us=now_us,
                until_us=until_us,
            )

    def _longest_send_us(self, item: outbox.Claimed) -> int:
        """How long sending `item` may take: its webhook's timeout, or the SMTP timeout."""
        if item.message.kind == "webhook":
            timeout_s = float(item.message.message.get("timeout_s", WebhookMessage.timeout_s))
        else:
            timeout_s = self._email.timeout_s if self._email is not None else 0.0
        return int(timeout_s * 1_000_000)

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    def _connection(self) -> Db:
        assert self._conn is not None, "open() the worker first"
        return self._conn
