"""What Client and AsyncClient share: the event factory, the queue, the sender thread, and their
life: start, flush, close (also at the program's exit)."""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from herald_client.config import Config
from herald_client.disk import PathLike, SqliteSpool
from herald_client.events import EventFactory, QueuedEvent, require_text
from herald_client.queue import BoundedQueue, MemorySpool, Spool
from herald_client.reports import OnError, OnRejected, Stats
from herald_client.sender import Sender
from herald_client.transport import Endpoint, Transport

logger = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:8000"
# After close() gives up waiting, how long the sender may take to notice and report its batch.
ABORT_GRACE_S = 1.0

# Every pipeline of this process, so that a child made by os.fork() can retire the ones it
# inherited: their sender thread did not come along, and their events would never leave.
_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()
_fork_hook = threading.Lock()
_fork_hook_registered = False


def _watch_forks(pipeline: Pipeline) -> None:
    global _fork_hook_registered
    with _fork_hook:
        _pipelines.add(pipeline)
        if not _fork_hook_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_retire_inherited)
            _fork_hook_registered = True


def _retire_inherited() -> None:
    for pipeline in list(_pipelines):
        pipeline.retire_after_fork()


class Pipeline:
    """Events in, batches out: one queue and one sender thread."""

    def __init__(
        self,
        api_key: str,
        host: str,
        *,
        config: Config | None,
        queue_path: PathLike | None,
        on_rejected: OnRejected | None,
        on_error: OnError | None,
    ) -> None:
        require_text(api_key, "api_key")
        endpoint = Endpoint.parse(host)
        self.config = config = Config() if config is None else config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a herald_client.Config, got {type(config).__name__}")
        self.events = EventFactory(max_event_bytes=config.max_event_bytes, source=config.source)
        self._queue_path = queue_path
        spool: Spool = MemorySpool() if queue_path is None else SqliteSpool(queue_path)
        self.queue = BoundedQueue(
            spool,
            max_events=config.max_queue_events,
            overflow=config.overflow,
            block_timeout_s=config.block_timeout_s,
        )
        self.queue.wake_sender_at(events=config.max_batch_events, bytes_=config.max_batch_bytes)
        transport = Transport(endpoint, api_key, timeout_s=config.timeout_s)
        self._sender = Sender(
            self.queue, transport, config, on_rejected=on_rejected, on_error=on_error
        )
        self._thread = threading.Thread(
            target=self._sender.run, name="herald-client-sender", daemon=True
        )
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread.start()
        atexit.register(self.close)
        _watch_forks(self)

    def identify_events(
        self,
        correlation_value: str,
        distinct_id: str | int,
        traits: Mapping[str, Any] | None,
        correlation_key: str,
        timestamp: dt.datetime | None,
    ) -> list[QueuedEvent]:
        """`$identify`, then the traits as `$set` (Herald's `$identify` keeps only distinct_id).

        Both are built before either is queued, so bad traits queue nothing.
        """
        events = [self.events.identify(correlation_value, distinct_id, correlation_key, timestamp)]
        if traits is not None and not (isinstance(traits, Mapping) and not traits):
            events.append(self.events.set(correlation_value, traits, correlation_key, timestamp))
        return events

    def flush(self, timeout_s: float | None) -> bool:
        """Wait until every event queued so far is settled; False if `timeout_s` passed first."""
        return self.queue.wait_handled(self.queue.enqueued, timeout_s)

    def close(self, timeout_s: float | None = None) -> bool:
        """Flush for up to `timeout_s` (Config.close_timeout_s by default), then stop the sender.

        True when everything was settled. Otherwise what is left is reported: to on_error with a
        memory queue, or kept in the queue file for the next client.
        """
        with self._close_lock:
            if self._closed:
                return True
            self._closed = True
        atexit.unregister(self.close)
        timeout_s = self.config.close_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        self.queue.refuse()
        flushed = self.flush(timeout_s)
        self._sender.stop(abort=not flushed)
        self._thread.join(max(0.0, deadline - time.monotonic()) + ABORT_GRACE_S)
        self._report_left(self.queue.close(release=not self._thread.is_alive()))
        return flushed

    def retire_after_fork(self) -> None:
        """In a child process: refuse events (the sender thread stayed in the parent)."""
        self._closed = True
        atexit.unregister(self.close)
        self.queue.retire_after_fork(
            "this client was made before os.fork() and its sender stayed in the parent "
            "process; make a new Client in each process"
        )

    def _report_left(self, left: list[QueuedEvent]) -> None:
        if left:
            self._sender.fail(left, "the client was closed before they could be sent", None)
        unsettled = self.queue.enqueued - self.queue.handled  # waiting, or in the sender's hands
        if self.queue.spool.durable and unsettled:
            logger.warning(
                "Herald client closed with %d events not yet sent in its queue file %s; the "
                "next client on this queue_path sends them",
                unsettled,
                self._queue_path,
            )

    def stats(self) -> Stats:
        queue, sender = self.queue, self._sender
        return Stats(
            queued=len(queue),
            sent=sender.sent,
            duplicates=sender.duplicates,
            rejected=sender.rejected,
            failed=sender.failed,
            dropped=queue.dropped,
            retries=sender.retries,
            blocked=queue.blocked,
        )


class BaseClient:
    """What Client and AsyncClient have in common: how they are made, and their counters."""

    def __init__(
        self,
        api_key: str,
        host: str = DEFAULT_HOST,
        *,
        config: Config | None = None,
        queue_path: PathLike | None = None,
        on_rejected: OnRejected | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self._pipeline = Pipeline(
            api_key,
            host,
            config=config,
            queue_path=queue_path,
            on_rejected=on_rejected,
            on_error=on_error,
        )
        self._events = self._pipeline.events
        self._queue = self._pipeline.queue

    def stats(self) -> Stats:
        """Counters: queued, sent, duplicates, rejected, failed, dropped, retries, blocked."""
        return self._pipeline.stats()
