"""The bounded queue between the callers and the sender thread, and its overflow policy.

Callers put events; the sender takes them a batch at a time and says when it is finished with a
batch (sent, rejected or given up). Events wait in a spool: memory (a deque) or a SQLite file
(herald_client.disk). One lock guards the spool and the counters; a call that finds room costs a
lock round trip and an append, and wakes the sender only once a full batch is waiting.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Protocol

from herald_client.config import Overflow
from herald_client.errors import ClientClosed, QueueFull
from herald_client.events import QueuedEvent

logger = logging.getLogger(__name__)

DROP_LOG_INTERVAL_S = 10.0  # one warning per this long while a full queue drops events


class Spool(Protocol):
    """Where waiting events are kept, oldest first. Called with the queue's lock held."""

    durable: bool  # True when events outlive the process

    def __len__(self) -> int:
        """How many events wait (not counting the batch the sender has taken)."""

    def waiting_bytes(self) -> int:
        """The size of the waiting events' JSON (read once, when the queue starts)."""

    def put(self, event: QueuedEvent) -> None:
        """Keep `event` after the others."""

    def drop_oldest(self) -> QueuedEvent:
        """Remove and return the oldest waiting event."""

    def take(self, max_events: int, max_bytes: int) -> list[QueuedEvent]:
        """The oldest waiting events, at least one if any, within both limits."""

    def done(self) -> None:
        """The batch last taken is finished with: forget it for good."""

    def close(self) -> None:
        """Release what the spool holds (a file)."""


class MemorySpool:
    """Events in a deque: fast, and lost if the process dies."""

    durable = False

    def __init__(self) -> None:
        self._events: collections.deque[QueuedEvent] = collections.deque()

    def __len__(self) -> int:
        return len(self._events)

    def waiting_bytes(self) -> int:
        return sum(len(event.data) for event in self._events)

    def put(self, event: QueuedEvent) -> None:
        self._events.append(event)

    def drop_oldest(self) -> QueuedEvent:
        return self._events.popleft()

    def take(self, max_events: int, max_bytes: int) -> list[QueuedEvent]:
        events = self._events
        batch: list[QueuedEvent] = []
        size = 0
        while events and len(batch) < max_events:
            size += len(events[0].data)
            if batch and size > max_bytes:
                break
            batch.append(events.popleft())
        return batch

    def done(self) -> None:
        """Nothing to do: taken events already left the deque."""

    def close(self) -> None:
        """Nothing to release."""


class BoundedQueue:
    """A spool bounded to `max_events` waiting events, with the client's overflow policy."""

    def __init__(
        self, spool: Spool, *, max_events: int, overflow: Overflow, block_timeout_s: float
    ) -> None:
        self.spool = spool
        self.ready = threading.Event()  # set when the sender should send without waiting
        self._max_events = max_events
        self._overflow = overflow
        self._block_timeout_s = block_timeout_s
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # the sender took a batch
        self._progress = threading.Condition(self._lock)  # a batch was finished with
        self._wake_at_events = max_events
        self._wake_at_bytes = 1 << 62
        self._waiting_bytes = spool.waiting_bytes()
        self._closed = ""  # why put() refuses events, once it does
        self._last_drop_log = -DROP_LOG_INTERVAL_S
        self.enqueued = len(spool)  # events a previous process left in a queue file count too
        self.handled = 0
        self.dropped = 0
        self.blocked = 0

    def wake_sender_at(self, *, events: int, bytes_: int) -> None:
        """Wake the sender as soon as this many events, or bytes, wait (a full batch)."""
        self._wake_at_events = min(events, self._max_events)
        self._wake_at_bytes = bytes_
        if len(self.spool):
            self.ready.set()  # a queue file left events: send them without waiting

    def put(self, event: QueuedEvent, *, block: bool = True) -> bool:
        """Add `event`; False (nothing added) only when `block` is False and it would wait."""
        with self._lock:
            if self._closed:
                raise ClientClosed(self._closed)
            if len(self.spool) >= self._max_events:
                if not block and self._overflow is Overflow.BLOCK:
                    return False
                self._make_room()
            self.spool.put(event)
            self.enqueued += 1
            self._waiting_bytes += len(event.data)
            if (
                len(self.spool) >= self._wake_at_events
                or self._waiting_bytes >= self._wake_at_bytes
            ) and not self.ready.is_set():
                self.ready.set()
            return True

    def _make_room(self) -> None:
        self.ready.set()
        if self._overflow is Overflow.DROP_OLDEST:
            self._drop_oldest()
            return
        self.blocked += 1
        deadline = time.monotonic() + self._block_timeout_s
        while len(self.spool) >= self._max_events:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._room.wait(remaining):
                raise QueueFull(
                    f"the queue held {self._max_events:,} events for {self._block_timeout_s} s "
                    "(Herald is slow or unreachable); raise Config.max_queue_events, or choose "
                    "Config(overflow=Overflow.DROP_OLDEST)"
                )
            if self._closed:
                raise ClientClosed(self._closed)

    def _drop_oldest(self) -> None:
        dropped = self.spool.drop_oldest()
        self._waiting_bytes -= len(dropped.data)
        self.dropped += 1
        self.handled += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            logger.warning(
                "Herald client queue is full (%d events): dropped the oldest event %s; "
                "%d dropped so far",
                self._max_events,
                dropped.uuid,
                self.dropped,
            )

    def take(self, max_events: int, max_bytes: int) -> list[QueuedEvent]:
        """The next batch, oldest first (empty when nothing waits); frees room for callers."""
        with self._lock:
            batch = self.spool.take(max_events, max_bytes)
            if batch:
                self._waiting_bytes -= sum(len(event.data) for event in batch)
                self._room.notify_all()
            return batch

    def finish(self, count: int, *, settled: bool) -> None:
        """The sender is done with the batch it took. `settled`: Herald answered for it (or it
        was reported as a Failure), so the spool forgets it; otherwise a queue file keeps it."""
        with self._lock:
            if settled:
                self.spool.done()
                self.handled += count
                self._progress.notify_all()

    def wait_handled(self, target: int, timeout_s: float | None) -> bool:
        """Wait until `target` events have been handled; False if `timeout_s` passed first."""
        with self._lock:
            if self.handled >= target:
                return True
            self.ready.set()  # send what waits now, without waiting for a fuller batch
            return self._progress.wait_for(lambda: self.handled >= target, timeout_s)

    def refuse(
        self, reason: str = "the client is closed; make a new one to send more events"
    ) -> None:
        """Take no more events: put() raises ClientClosed(`reason`) from now on."""
        with self._lock:
            self._closed = reason
            self._room.notify_all()

    def retire_after_fork(self, reason: str) -> None:
        """In a child process: refuse events from now on. New locks: one the parent's sender
        held at the fork would stay held in the child forever."""
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._closed = reason

    def close(self, *, release: bool) -> list[QueuedEvent]:
        """The events still waiting in a memory spool, removed (a file keeps them for the next
        client); `release`: close the spool too (only once the sender is gone)."""
        with self._lock:
            left: list[QueuedEvent] = []
            while not self.spool.durable and len(self.spool):
                left.append(self.spool.drop_oldest())
            self.handled += len(left)
            self._progress.notify_all()
            if release:
                self.spool.close()
            return left

    def __len__(self) -> int:
        return len(self.spool)
