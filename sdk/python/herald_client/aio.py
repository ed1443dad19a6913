"""AsyncClient: the same client for asyncio services, with awaitable calls.

Design: AsyncClient runs the very same queue and sender thread as Client, and only its waiting is
async. Why a thread and not a sender on asyncio streams: the standard library has no asyncio HTTP
client, so an asyncio sender would mean a second HTTP/1.1 implementation and a second copy of the
batching, retry and 413 logic to keep in step with the first; the thread spends its time in
socket I/O and zlib, which release the GIL, so the event loop keeps running while it sends; and
the calls stay as cheap as Client's (checking and queueing an event never awaits anything unless
the queue is full). What may block is moved off the loop: a full queue under the "block" policy,
flush() and close() wait in the loop's default executor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from herald_client.events import QueuedEvent
from herald_client.pipeline import BaseClient


class AsyncClient(BaseClient):
    """Client for asyncio: the same arguments, results and behaviour, with awaitable calls.

    ::

        from herald_client import AsyncClient

        async with AsyncClient("hk_w_...", host="http://127.0.0.1:8000") as herald:
            await herald.identify(customer, "example@youremail.com")
            await herald.track(customer, "purchase", {"cart": True})

    Callbacks run on the sender thread, not on the event loop: to touch asyncio objects from
    one, go through `loop.call_soon_threadsafe`.
    """

    async def track(
        self,
        correlation_value: str,
        event: str,
        payload: Mapping[str, Any] | None = None,
        correlation_key: str = "_id",
        timestamp: dt.datetime | None = None,
    ) -> str:
        """Queue an event (see Client.track); returns its uuid."""
        queued = self._events.track(correlation_value, event, payload, correlation_key, timestamp)
        await self._put(queued)
        return queued.uuid

    async def identify(
        self,
        correlation_value: str,
        distinct_id: str | int,
        traits: Mapping[str, Any] | None = None,
        *,
        correlation_key: str = "_id",
        timestamp: dt.datetime | None = None,
    ) -> str:
        """Queue `$identify`, and `traits` as `$set` (see Client.identify); returns its uuid."""
        events = self._pipeline.identify_events(
            correlation_value, distinct_id, traits, correlation_key, timestamp
        )
        for queued in events:
            await self._put(queued)
        return events[0].uuid

    async def set(
        self,
        correlation_value: str,
        traits: Mapping[str, Any],
        *,
        correlation_key: str = "_id",
        timestamp: dt.datetime | None = None,
    ) -> str:
        """Queue `$set` (see Client.set); returns its uuid."""
        queued = self._events.set(correlation_value, traits, correlation_key, timestamp)
        await self._put(queued)
        return queued.uuid

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait, off the event loop, until everything queued so far is settled (Client.flush)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._pipeline.flush, timeout_s)

    async def close(self, timeout_s: float | None = None) -> bool:
        """Flush and stop, off the event loop (see Client.close)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._pipeline.close, timeout_s)

    async def _put(self, queued: QueuedEvent) -> None:
        if not self._queue.put(queued, block=False):  # full, under the "block" policy
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._queue.put, queued)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
