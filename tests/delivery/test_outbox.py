"""The outbox in the state database: one message per (enrollment, step number), claims that run
out, attempts recorded only by the claim holder, and the listing, reading and retrying of it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald.errors import Conflict, InvalidRequest, NotFound
from herald.store import outbox
from herald.store.base import MessageStatus, OutboxMessage, Store
from herald.store.db import Db
from herald.types import WorkspaceId
from tests.delivery.conftest import a_webhook, enqueue_one, new_message

CLAIM_US = 120_000_000
HOOK = "http://127.0.0.1:9/hook"


async def all_messages(store: Store, workspace: WorkspaceId) -> list[OutboxMessage]:
    page = await store.list_messages(workspace, status=None, cursor=None, limit=1000)
    return page.messages


def claim(state: Db, worker: str, now_us: int) -> list[outbox.Claimed]:
    return outbox.claim_due(state, worker=worker, now_us=now_us, claim_us=CLAIM_US, limit=10)


def wall_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


# -- enqueue once per (enrollment, step number) ----------------------------------------------


async def test_enqueue_twice_for_one_enrollment_and_step_keeps_one_message_with_the_first_content(
    store: Store, workspace: WorkspaceId
) -> None:
    first = new_message(workspace, a_webhook(HOOK, body='{"n": 1}'), enrollment_id="e-1")
    second = new_message(workspace, a_webhook(HOOK, body='{"n": 2}'), enrollment_id="e-1")

    added = [await store.enqueue_messages([first]), await store.enqueue_messages([second])]

    assert added == [1, 0]
    (message,) = await all_messages(store, workspace)
    assert (message.enrollment_id, message.step_number) == ("e-1", 1)
    assert message.message["body"] == '{"n": 1}'


async def test_enqueue_of_the_same_step_twice_in_one_call_keeps_the_first(
    store: Store, workspace: WorkspaceId
) -> None:
    first = new_message(workspace, a_webhook(HOOK, body="first"), enrollment_id="e-1")
    second = new_message(workspace, a_webhook(HOOK, body="second"), enrollment_id="e-1")

    added = await store.enqueue_messages([first, second])

    assert added == 1
    (message,) = await all_messages(store, workspace)
    assert message.message["body"] == "first"


async def test_enqueue_of_two_step_numbers_of_one_enrollment_makes_two_messages(
    store: Store, workspace: WorkspaceId
) -> None:
    messages = [
        new_message(workspace, a_webhook(HOOK), enrollment_id="e-1", step_number=number)
        for number in (1, 2)
    ]

    added = await store.enqueue_messages(messages)

    assert added == 2
    listed = await all_messages(store, workspace)
    assert [message.step_number for message in listed] == [1, 2]
    assert len({message.id for message in listed}) == 2


async def test_a_new_message_is_queued_due_now_with_no_attempts(
    store: Store, workspace: WorkspaceId
) -> None:
    before = datetime.now(UTC)

    message_id = await enqueue_one(store, new_message(workspace, a_webhook(HOOK)))

    message = await store.get_message(workspace, message_id)
    assert message.status is MessageStatus.QUEUED
    assert message.attempts == 0
    assert message.sent_at is None and message.last_error is None
    assert before.timestamp() - 0.001 <= message.due_at.timestamp()
    assert message.due_at == message.created_at
    assert message.kind == "webhook" and message.message == a_webhook(HOOK)


# -- claims -------------------------------------------------------------------------------


async def test_a_claimed_message_is_not_claimed_again_until_its_claim_runs_out(
    store: Store, workspace: WorkspaceId, state: Db
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(HOOK)))
    now_us = wall_us() + 1_000_000

    first = claim(state, "a", now_us)
    again = claim(state, "b", now_us + CLAIM_US)
    after = claim(state, "b", now_us + CLAIM_US + 1)

    assert [item.message.id for item in first] == [message_id]
    assert again == []
    assert [item.message.id for item in after] == [message_id]


async def test_a_message_not_yet_due_is_not_claimed(
    store: Store, workspace: WorkspaceId, state: Db
) -> None:
    await enqueue_one(store, new_message(workspace, a_webhook(HOOK)))

    claimed = claim(state, "a", wall_us() - 60_000_000)

    assert claimed == []


async def test_only_the_claim_holder_records_an_attempt(
    store: Store, workspace: WorkspaceId, state: Db
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(HOOK)))
    now_us = wall_us() + 1_000_000
    (item,) = claim(state, "a", now_us)
    sent = outbox.Attempt(item.row_id, MessageStatus.SENT, "HTTP 200")

    by_other = outbox.record(state, [sent], worker="b", now_us=now_us)
    by_holder = outbox.record(state, [sent], worker="a", now_us=now_us)

    assert (by_other, by_holder) == (0, 1)
    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.SENT, 1)


async def test_a_stale_worker_records_nothing_once_its_claim_moved_to_another(
    store: Store, workspace: WorkspaceId, state: Db
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(HOOK)))
    now_us = wall_us() + 1_000_000
    (stale,) = claim(state, "a", now_us)
    later_us = now_us + CLAIM_US + 1
    (fresh,) = claim(state, "b", later_us)
    retry = outbox.Attempt(stale.row_id, MessageStatus.QUEUED, "HTTP 503", later_us + 5)

    while_b_holds = outbox.record(state, [retry], worker="a", now_us=later_us)
    by_b = outbox.record(
        state,
        [outbox.Attempt(fresh.row_id, MessageStatus.SENT, "HTTP 200")],
        worker="b",
        now_us=later_us,
    )
    after_b = outbox.record(state, [retry], worker="a", now_us=later_us)

    assert (while_b_holds, by_b, after_b) == (0, 1, 0)
    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts, message.last_error) == (MessageStatus.SENT, 1, None)
    assert claim(state, "c", later_us + 2 * CLAIM_US) == []


# -- get, list, retry ----------------------------------------------------------------------


async def test_get_of_an_unknown_id_raises_not_found_naming_how_to_list(
    store: Store, workspace: WorkspaceId
) -> None:
    with pytest.raises(NotFound, match="GET /api/messages"):
        await store.get_message(workspace, "no-such-message")


async def test_a_message_is_invisible_from_another_workspace(
    store: Store, workspace: WorkspaceId
) -> None:
    other = (await store.create_workspace("other")).id
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(HOOK)))

    with pytest.raises(NotFound):
        await store.get_message(other, message_id)
    with pytest.raises(NotFound):
        await store.retry_message(other, message_id)
    assert await all_messages(store, other) == []


async def test_listing_filters_by_status_and_pages_by_cursor(
    store: Store, workspace: WorkspaceId, state: Db
) -> None:
    ids = [await enqueue_one(store, new_message(workspace, a_webhook(HOOK))) for _ in range(5)]
    (first, *_) = claim(state, "a", wall_us() + 1_000_000)
    outbox.record(
        state,
        [outbox.Attempt(first.row_id, MessageStatus.SENT, "HTTP 200")],
        worker="a",
        now_us=wall_us(),
    )

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await store.list_messages(
            workspace, status=MessageStatus.QUEUED, cursor=cursor, limit=2
        )
        pages.append([message.id for message in page.messages])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    sent = await store.list_messages(workspace, status=MessageStatus.SENT, cursor=None, limit=10)

    assert [message_id for page in pages for message_id in page] == ids[1:]
    assert all(len(page) <= 2 for page in pages)
    assert [message.id for message in sent.messages] == [first.message.id]


async def test_listing_refuses_a_cursor_herald_did_not_give(
    store: Store, workspace: WorkspaceId
) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        await store.list_messages(workspace, status=None, cursor="abc", limit=10)


async def test_retry_queues_a_failed_message_due_now_and_keeps_its_attempts(
    store: Store, workspace: WorkspaceId, state: Db
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(HOOK)))
    (item,) = claim(state, "a", wall_us() + 1_000_000)
    failed = outbox.Attempt(item.row_id, MessageStatus.FAILED, "HTTP 400")
    outbox.record(state, [failed], worker="a", now_us=wall_us())
    before = datetime.now(UTC)

    retried = await store.retry_message(workspace, message_id)

    assert retried.status is MessageStatus.QUEUED
    assert retried.attempts == 1
    assert retried.due_at >= before
    assert [claimed.message.id for claimed in claim(state, "b", wall_us() + 1)] == [message_id]


@pytest.mark.parametrize("status", [MessageStatus.QUEUED, MessageStatus.SENT])
async def test_retry_of_a_message_that_has_not_failed_is_a_conflict(
    store: Store, workspace: WorkspaceId, state: Db, status: MessageStatus
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(HOOK)))
    if status is MessageStatus.SENT:
        (item,) = claim(state, "a", wall_us() + 1_000_000)
        sent = outbox.Attempt(item.row_id, MessageStatus.SENT, "HTTP 200")
        outbox.record(state, [sent], worker="a", now_us=wall_us())

    with pytest.raises(Conflict, match=f"is {status.value}"):
        await store.retry_message(workspace, message_id)

    assert (await store.get_message(workspace, message_id)).status is status
