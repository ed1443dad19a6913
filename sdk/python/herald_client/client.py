"""Client: identify, track and set from any Python code; a background thread sends the events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from herald_client.pipeline import BaseClient


class Client(BaseClient):
    """Sends events to Herald's batch API from a background thread.

    ::

        from herald_client import Client

        with Client("hk_w_...", host="http://127.0.0.1:8000") as herald:
            customer = "FBBBCB26-B75E-4342-B40B-568BF879F7C5"  # the anonymous id your app keeps
            herald.identify(customer, "example@youremail.com")
            herald.track(customer, "purchase", {"cart": True})
            herald.set(customer, {"plan": "pro"})

    identify(), track() and set() check their arguments (TypeError or ValueError naming the
    argument), give the event a uuid and a timestamp, queue it and return its uuid: they never
    wait for the network. The sender thread batches (Config.max_batch_events, max_batch_bytes,
    flush_interval_s), gzips and sends, retries 429/502/503/504 and network errors with backoff,
    splits a batch Herald finds too large (413), and reports every event Herald refuses to
    `on_rejected` and every event it gives up on to `on_error`, with a log line for each.
    Callbacks run on the sender thread.

    With `queue_path`, events wait in that SQLite file instead of memory: each call commits its
    event before returning, and a client started later on the same file sends what is left.

    close() (also run at the program's exit, and by `with`) sends what is queued, waiting up to
    Config.close_timeout_s.
    """

    def track(
        self,
        correlation_value: str,
        event: str,
        payload: Mapping[str, Any] | None = None,
        correlation_key: str = "_id",
        timestamp: dt.datetime | None = None,
    ) -> str:
        """Queue the event `event` of the customer whose `correlation_key` is `correlation_value`
        (`_id`: the id your app keeps for them); returns the event's uuid."""
        queued = self._events.track(correlation_value, event, payload, correlation_key, timestamp)
        self._queue.put(queued)
        return queued.uuid

    def identify(
        self,
        correlation_value: str,
        distinct_id: str | int,
        traits: Mapping[str, Any] | None = None,
        *,
        correlation_key: str = "_id",
        timestamp: dt.datetime | None = None,
    ) -> str:
        """Queue `$identify`: this customer's primary key (`email` by default) is `distinct_id`.
        `traits` follow as a `$set` event. Returns the `$identify` event's uuid."""
        events = self._pipeline.identify_events(
            correlation_value, distinct_id, traits, correlation_key, timestamp
        )
        for queued in events:
            self._queue.put(queued)
        return events[0].uuid

    def set(
        self,
        correlation_value: str,
        traits: Mapping[str, Any],
        *,
        correlation_key: str = "_id",
        timestamp: dt.datetime | None = None,
    ) -> str:
        """Queue `$set`: the customer's attributes become `traits` (None removes one)."""
        queued = self._events.set(correlation_value, traits, correlation_key, timestamp)
        self._queue.put(queued)
        return queued.uuid

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send everything queued so far and wait until Herald has answered for it (sent,
        rejected or given up); False if `timeout_s` passed first."""
        return self._pipeline.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> bool:
        """Flush (up to `timeout_s`, Config.close_timeout_s by default) and stop the sender.
        False if events were left: reported to on_error, or kept in the queue file."""
        return self._pipeline.close(timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
