"""GroupCommitter with a real write function: grouping, the bound on queued work, failures, close.

Items are queued before the writer thread starts (a submit only needs the event loop), so which
items share a group is decided by the committer alone, never by timing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest

from herald.errors import Conflict, Overloaded, StoreUnavailable
from herald.store.groupcommit import GroupCommitter

Committer = GroupCommitter[int, int]


class Log:
    """A write function that keeps every group it commits; -1 makes a group fail."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.groups: list[list[int]] = []
        self.failure = failure or RuntimeError("disk on fire")

    def write_group(self, items: Sequence[int]) -> list[int]:
        if -1 in items:
            raise self.failure
        self.groups.append(list(items))
        return [item * 10 for item in items]


@asynccontextmanager
async def committer(
    log: Log,
    *,
    size_of: Callable[[int], int] = lambda item: 1,
    max_pending: int = 100,
    max_group: int = 100,
    observe: Callable[[int, float], None] | None = None,
) -> AsyncIterator[Committer]:
    """A committer over `log`, not yet started; closed on the way out."""
    created: Committer = GroupCommitter(
        log.write_group,
        size_of=size_of,
        max_pending=max_pending,
        max_group=max_group,
        observe=observe,
    )
    try:
        yield created
    finally:
        await asyncio.to_thread(created.close)


async def start(committer: Committer) -> None:
    committer.start()


async def submit_all_then_start(
    committer: Committer, items: list[int]
) -> list[int | BaseException]:
    """Queue every item, then start the writer thread, and wait for every outcome."""
    submits = [asyncio.create_task(committer.submit(item)) for item in items]
    # Tasks take their first step in creation order: every submit has queued before the start.
    await asyncio.create_task(start(committer))
    return await asyncio.gather(*submits, return_exceptions=True)


async def test_items_queued_together_are_committed_in_one_group() -> None:
    log = Log()
    async with committer(log) as group_committer:
        results = await submit_all_then_start(group_committer, [1, 2, 3, 4, 5])

    assert results == [10, 20, 30, 40, 50]
    assert log.groups == [[1, 2, 3, 4, 5]]


async def test_a_group_holds_at_most_max_group_events() -> None:
    log = Log()
    async with committer(log, max_group=2) as group_committer:
        results = await submit_all_then_start(group_committer, [1, 2, 3, 4, 5])

    assert results == [10, 20, 30, 40, 50]
    assert log.groups == [[1, 2], [3, 4], [5]]


async def test_an_item_larger_than_max_group_is_committed_alone() -> None:
    log = Log()
    async with committer(log, size_of=lambda item: item, max_group=4) as group_committer:
        results = await submit_all_then_start(group_committer, [1, 9, 2, 2])

    assert results == [10, 90, 20, 20]
    assert log.groups == [[1], [9], [2, 2]]


async def test_submits_past_max_pending_events_are_refused_with_overloaded() -> None:
    log = Log()
    async with committer(log, size_of=lambda item: item, max_pending=5) as group_committer:
        results = await submit_all_then_start(group_committer, [2, 3, 1, 4])

        assert results[:2] == [20, 30]
        assert all(isinstance(result, Overloaded) for result in results[2:])
        assert "5 events are waiting" in str(results[2])
        assert log.groups == [[2, 3]]
        assert group_committer.pending() == 0
        assert await group_committer.submit(4) == 40


async def test_an_item_larger_than_max_pending_is_taken_when_nothing_waits() -> None:
    log = Log()
    async with committer(log, size_of=lambda item: item, max_pending=5) as group_committer:
        results = await submit_all_then_start(group_committer, [8])

    assert results == [80]


async def test_pending_counts_the_events_waiting_for_a_commit() -> None:
    log = Log()
    async with committer(log, size_of=lambda item: item) as group_committer:
        submits = [asyncio.create_task(group_committer.submit(item)) for item in (3, 4)]

        async def count_then_start() -> int:
            waiting = group_committer.pending()
            group_committer.start()
            return waiting

        waiting = await asyncio.create_task(count_then_start())
        await asyncio.gather(*submits)

        assert waiting == 7
        assert group_committer.pending() == 0


async def test_a_failing_group_fails_every_request_in_it_and_the_next_group_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = Log()
    async with committer(log) as group_committer:
        with caplog.at_level(logging.ERROR, logger="herald.store.groupcommit"):
            failed = await submit_all_then_start(group_committer, [1, -1, 3])

        later = await group_committer.submit(4)

    assert all(isinstance(result, StoreUnavailable) for result in failed)
    assert "could not be written: disk on fire" in str(failed[0])
    assert "Group commit of 3 events failed" in caplog.text
    assert later == 40
    assert log.groups == [[4]]


async def test_a_service_error_from_the_write_function_reaches_every_caller_as_is() -> None:
    log = Log(failure=Conflict("that log is sealed"))
    async with committer(log) as group_committer:
        failed = await submit_all_then_start(group_committer, [1, -1])

    assert [type(result) for result in failed] == [Conflict, Conflict]
    assert str(failed[0]) == "that log is sealed"


async def test_close_commits_what_is_queued_then_refuses_new_submits() -> None:
    log = Log()
    async with committer(log) as group_committer:
        submits = [asyncio.create_task(group_committer.submit(item)) for item in (1, 2, 3)]

        async def start_and_close() -> None:
            group_committer.start()
            await asyncio.to_thread(group_committer.close)

        await asyncio.create_task(start_and_close())
        results = await asyncio.gather(*submits)

        assert results == [10, 20, 30]
        assert log.groups == [[1, 2, 3]]
        with pytest.raises(StoreUnavailable, match="shutting down"):
            await group_committer.submit(4)


async def test_the_observer_sees_each_group_size() -> None:
    observed: list[tuple[int, float]] = []
    log = Log()
    async with committer(
        log,
        max_group=3,
        observe=lambda events, seconds: observed.append((events, seconds)),
    ) as group_committer:
        await submit_all_then_start(group_committer, [1, 2, 3, 4])

    assert [events for events, _ in observed] == [3, 1]
    assert all(seconds >= 0 for _, seconds in observed)


async def test_an_abandoned_submit_is_committed_all_the_same() -> None:
    log = Log()
    async with committer(log) as group_committer:
        abandoned = asyncio.create_task(group_committer.submit(1))

        async def abandon_then_start() -> int:
            abandoned.cancel()
            kept = asyncio.create_task(group_committer.submit(2))
            await asyncio.create_task(start(group_committer))
            return await kept

        result = await asyncio.create_task(abandon_then_start())

    assert result == 20
    assert abandoned.cancelled()
    assert [item for group in log.groups for item in group] == [1, 2]
