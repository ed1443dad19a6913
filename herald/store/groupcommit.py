"""Group commit: requests wait together and one thread commits them in one transaction.

Concurrent requests share one fsync. The queue is bounded in events: past the bound, `submit`
raises Overloaded at once (the API answers 503 with Retry-After) instead of queueing without limit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from herald.errors import Overloaded, ServiceError, StoreUnavailable

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

WriteGroup = Callable[[Sequence[In]], Sequence[Out]]
Observer = Callable[[int, float], None]  # (events in the group, seconds the commit took)


class GroupCommitter(Generic[In, Out]):
    """Feeds a writer function with every request queued since its last call, on one thread."""

    def __init__(
        self,
        write_group: WriteGroup[In, Out],
        *,
        size_of: Callable[[In], int],
        max_pending: int,
        max_group: int,
        observe: Observer | None = None,
        name: str = "group-commit",
    ) -> None:
        self._write_group = write_group
        self._size_of = size_of
        self._max_pending = max_pending
        self._max_group = max_group
        self._observe = observe
        self._queue: list[tuple[In, asyncio.Future[Out], int]] = []
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def pending(self) -> int:
        return self._pending

    async def submit(self, item: In) -> Out:
        size = self._size_of(item)
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        with self._cond:
            if self._closing:
                raise StoreUnavailable("Herald is shutting down; retry against another instance.")
            if self._pending and self._pending + size > self._max_pending:
                raise Overloaded(
                    f"{self._pending:,} events are waiting to be committed; retry in a moment.",
                    retry_after_s=1,
                )
            self._queue.append((item, future, size))
            self._pending += size
            self._cond.notify()
        return await future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                group = self._take_group()
            self._commit(group)

    def _take_group(self) -> list[tuple[In, asyncio.Future[Out], int]]:
        taken, total = 0, 0
        for _, _, size in self._queue:
            if taken and total + size > self._max_group:
                break
            taken += 1
            total += size
        group, self._queue = self._queue[:taken], self._queue[taken:]
        return group

    def _commit(self, group: list[tuple[In, asyncio.Future[Out], int]]) -> None:
        started = time.perf_counter()
        size = sum(entry[2] for entry in group)
        outcome: Sequence[Out] | BaseException
        try:
            outcome = self._write_group([entry[0] for entry in group])
        except ServiceError as exc:
            outcome = exc
        except Exception as exc:  # the writer thread must survive any single bad group
            logger.exception("Group commit of %d events failed", size)
            outcome = StoreUnavailable(f"The event log could not be written: {exc}")
        with self._cond:
            self._pending -= size
        if self._observe is not None:
            self._observe(size, time.perf_counter() - started)
        futures = [entry[1] for entry in group]
        futures[0].get_loop().call_soon_threadsafe(_resolve, futures, outcome)


def _resolve(futures: list[asyncio.Future[Out]], outcome: Sequence[Out] | BaseException) -> None:
    for index, future in enumerate(futures):
        if future.done():  # the client went away; its events are committed all the same
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome[index])
