"""The sender thread: takes batches from the queue and sends each until Herald settles it.

Batches go one at a time, oldest first, so events reach Herald in the order they were queued.
A batch is settled by one of:

* 2xx: sent. The body's per-event `errors` become Rejections (on_rejected and a warning).
* 413: too large. The batch limits are halved (to below this batch's count and bytes) and the
  batch is sent again in parts within them, in order; later batches keep the smaller limits. A
  single event Herald finds too large is a Rejection.
* 429, 502, 503, 504, or a network error: sent again after a delay (exponential backoff with full
  jitter, never shorter than Retry-After), up to `max_retries` times, then a Failure (on_error).
  Every event keeps the uuid it was given when created, so Herald reports a resent event that it
  had already stored as a duplicate instead of storing it twice.
* any other answer (400, 401, 403...): retrying cannot fix it; a Failure at once.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from herald_client.config import Config
from herald_client.events import QueuedEvent
from herald_client.queue import BoundedQueue
from herald_client.reports import Failure, OnError, OnRejected, Rejection
from herald_client.transport import Answer, Transport, encode_batch

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({429, 502, 503, 504})
Argument = TypeVar("Argument")


def retry_delay_s(
    attempt: int, *, base_s: float, max_s: float, retry_after_s: float | None, rng: random.Random
) -> float:
    """The wait before retry number `attempt` (1, 2, ...): uniform between 0 and
    min(max_s, base_s * 2 ** (attempt - 1)) ("full jitter"), and at least Herald's Retry-After."""
    ceiling = min(max_s, base_s * 2.0 ** min(attempt - 1, 64))
    delay = rng.uniform(0.0, ceiling)
    return delay if retry_after_s is None else max(delay, retry_after_s)


class Sender:
    """Sends the queue's batches to Herald and reports each event's fate."""

    def __init__(
        self,
        queue: BoundedQueue,
        transport: Transport,
        config: Config,
        *,
        on_rejected: OnRejected | None,
        on_error: OnError | None,
    ) -> None:
        self._queue = queue
        self._transport = transport
        self._config = config
        self._on_rejected = on_rejected
        self._on_error = on_error
        self._rng = random.Random()
        self._max_events = config.max_batch_events
        self._max_bytes = config.max_batch_bytes
        self._stopping = False
        self._abort = threading.Event()  # set by close() when it stops waiting
        self.sent = self.duplicates = self.rejected = self.failed = self.retries = 0

    def run(self) -> None:
        """The thread's body: send what waits, then wait for a full batch or flush_interval_s."""
        while not self._stopping:
            self._queue.ready.wait(self._config.flush_interval_s)
            self._queue.ready.clear()
            self._drain()
        self._transport.close()

    def stop(self, *, abort: bool) -> None:
        """End run() after what it is sending (`abort`: now, leaving the rest unsent)."""
        self._stopping = True
        if abort:
            self._abort.set()
        self._queue.ready.set()

    def _drain(self) -> None:
        while not self._abort.is_set():
            batch = self._queue.take(self._max_events, self._max_bytes)
            if not batch:
                return
            try:
                settled = self._deliver(batch)
            except Exception as exc:  # a bug must not end the thread and strand the queue
                logger.exception("Herald client: unexpected error sending %d events", len(batch))
                self.fail(batch, f"unexpected error in the client: {exc!r}", None)
                settled = True
            self._queue.finish(len(batch), settled=settled)

    def _deliver(self, batch: list[QueuedEvent]) -> bool:
        """Send `batch` until settled (sent, rejected or reported as a Failure), in smaller parts
        after a 413. False when close() aborted it first and a queue file keeps it."""
        answer = self._send(batch)
        if answer is None:
            if not self._abort.is_set():
                return True  # retries used up: reported as a Failure
            if self._queue.spool.durable:
                return False
            self.fail(batch, "the client was closed before Herald took them", None)
            return True
        if answer.status == 413 and len(batch) > 1:
            self._shrink(batch)
            return all(self._deliver(part) for part in self._split(batch))
        self._settle(batch, answer)
        return True

    def _split(self, batch: list[QueuedEvent]) -> Iterator[list[QueuedEvent]]:
        """`batch` in order, in parts within the (just shrunk) batch limits."""
        part: list[QueuedEvent] = []
        size = 0
        for event in batch:
            if part and (len(part) == self._max_events or size + len(event.data) > self._max_bytes):
                yield part
                part, size = [], 0
            part.append(event)
            size += len(event.data)
        yield part

    def _send(self, batch: list[QueuedEvent]) -> Answer | None:
        """Herald's answer, retried while worth it; None once retries are used up (reported)
        or close() aborted the wait."""
        attempt = 0
        while True:
            body = encode_batch(batch, gzip_level=self._config.gzip_level)
            try:
                answer = self._transport.post(body)
            except (OSError, http.client.HTTPException) as exc:
                problem, status, retry_after_s = f"network error: {exc!r}", None, None
            else:
                if answer.status not in RETRYABLE:
                    return answer
                problem, status = _describe(answer), answer.status
                retry_after_s = answer.retry_after_s
            attempt += 1
            if self._config.max_retries is not None and attempt > self._config.max_retries:
                self.fail(batch, f"gave up after {attempt} tries; the last: {problem}", status)
                return None
            if self._wait_before_retry(batch, attempt, problem, retry_after_s):
                return None

    def _wait_before_retry(
        self, batch: list[QueuedEvent], attempt: int, problem: str, retry_after_s: float | None
    ) -> bool:
        """Sleep before retry `attempt`; True if close() aborted the wait."""
        config = self._config
        delay_s = retry_delay_s(
            attempt,
            base_s=config.backoff_base_s,
            max_s=config.backoff_max_s,
            retry_after_s=retry_after_s,
            rng=self._rng,
        )
        logger.warning(
            "Herald client: %s; sending %d events (first %s) again in %.2f s (retry %d)",
            problem,
            len(batch),
            batch[0].uuid,
            delay_s,
            attempt,
        )
        self.retries += 1
        return self._abort.wait(delay_s)

    def _shrink(self, batch: list[QueuedEvent]) -> None:
        size = sum(len(event.data) for event in batch)
        self._max_events = max(1, min(self._max_events, len(batch) // 2))
        self._max_bytes = max(1, min(self._max_bytes, size // 2))
        logger.info(
            "Herald client: Herald found %d events (%d bytes) too large (413); splitting, and "
            "sending at most %d events or %d bytes per batch from now on",
            len(batch),
            size,
            self._max_events,
            self._max_bytes,
        )

    def _settle(self, batch: list[QueuedEvent], answer: Answer) -> None:
        if 200 <= answer.status < 300:
            self._accepted(batch, _json_object(answer.body))
        elif answer.status == 413:  # one event, too large for Herald on its own
            event = batch[0]
            rejection = Rejection(
                event.uuid, event.event, event.correlation_value, 0, None, _describe(answer)
            )
            self._rejected([rejection], events=1)
        else:
            self.fail(batch, f"{_describe(answer)}; retrying cannot fix this", answer.status)

    def _accepted(self, batch: list[QueuedEvent], result: dict[str, Any]) -> None:
        self.sent += _count(result, "accepted", len(batch))
        self.duplicates += _count(result, "duplicates", 0)
        rejections = [
            _rejection(batch, error)
            for error in result.get("errors") or ()
            if isinstance(error, dict) and _count(error, "index", -1) in range(len(batch))
        ]
        if rejections:
            events = _count(result, "rejected", len({rejection.index for rejection in rejections}))
            self._rejected(rejections, events=events)
        for warning in result.get("warnings") or ():
            logger.warning("Herald client: Herald warns about an event: %s", warning)

    def _rejected(self, rejections: list[Rejection], *, events: int) -> None:
        """Report `rejections` (one per problem Herald found) about `events` events."""
        self.rejected += events
        shown = "; ".join(
            f"{r.event} {r.uuid} ({r.field or 'event'}): {r.message}" for r in rejections[:3]
        )
        more = f"; and {len(rejections) - 3} more" if len(rejections) > 3 else ""
        logger.warning(
            "Herald client: Herald rejected %d events (it keeps them in its quarantine): %s%s",
            events,
            shown,
            more,
        )
        if self._on_rejected is not None:
            _call(self._on_rejected, rejections, "on_rejected")

    def fail(self, batch: list[QueuedEvent], reason: str, status: int | None) -> None:
        """Give up on `batch`: count it, log it, and hand it to on_error."""
        self.failed += len(batch)
        logger.error(
            "Herald client: %d events not sent (first %s): %s", len(batch), batch[0].uuid, reason
        )
        if self._on_error is not None:
            _call(self._on_error, Failure(reason, status, tuple(batch)), "on_error")


def _call(callback: Callable[[Argument], None], argument: Argument, name: str) -> None:
    """Run a caller's callback; what it raises is logged, and the sender goes on."""
    try:
        callback(argument)
    except Exception:
        logger.exception("Herald client: the %s callback raised; the client goes on", name)


def _rejection(batch: list[QueuedEvent], error: dict[str, Any]) -> Rejection:
    event = batch[error["index"]]
    field = error.get("field")
    return Rejection(
        event.uuid,
        event.event,
        event.correlation_value,
        error["index"],
        field if isinstance(field, str) else None,
        str(error.get("message", "rejected")),
    )


def _describe(answer: Answer) -> str:
    """`HTTP 503 overloaded: <Herald's message>`, from an error answer's JSON body."""
    body = _json_object(answer.body)
    code = body.get("error")
    message = body.get("message") or answer.body[:200].decode(errors="replace")
    return f"HTTP {answer.status}{f' {code}' if code else ''}: {message}".rstrip(": ")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _count(result: dict[str, Any], name: str, default: int) -> int:
    value = result.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
