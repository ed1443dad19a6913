"""The delivery worker, driven round by round with `run_once()` on a clock moved by hand, against
a real HTTP receiver and a real SMTP server: retries with backoff, permanent failures, claims."""

from __future__ import annotations

import asyncio
import contextlib
import email
import random
from datetime import datetime

import aiohttp

from herald.channels.email import EmailChannel, Security, SmtpSettings
from herald.channels.webhook import WebhookChannel
from herald.core.backoff import MAX_ATTEMPTS, retry_delay_s
from herald.delivery import BATCH, CLAIM_S, DeliveryWorker
from herald.store.base import MessageStatus, Store
from herald.types import WorkspaceId
from tests.channels.conftest import HANG, LOCALHOST, Receiver, Reply, SmtpServer
from tests.conftest import location_of
from tests.delivery.conftest import (
    SEED,
    Clock,
    MakeWorker,
    a_webhook,
    an_email,
    enqueue_one,
    new_message,
    until_requests,
)


def seconds(moment: datetime) -> float:
    return moment.timestamp()


# -- retries, failures, backoff --------------------------------------------------------------


async def test_a_webhook_answered_503_503_200_is_sent_on_the_third_try_with_one_idempotency_key(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    clock: Clock,
    make_worker: MakeWorker,
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    receiver.answer(Reply(503), Reply(503), Reply(200))
    worker = make_worker()
    expected = random.Random(SEED)
    dues: list[float] = []

    for attempt in (1, 2):
        started_at = clock.now
        assert await worker.run_once() == 1
        message = await store.get_message(workspace, message_id)
        assert (message.status, message.attempts) == (MessageStatus.QUEUED, attempt)
        assert message.last_error == "HTTP 503"
        delay_s = retry_delay_s(attempt, rng=expected)
        assert abs(seconds(message.due_at) - (started_at + delay_s)) < 1e-5
        dues.append(seconds(message.due_at))
        assert await worker.run_once() == 0  # not due yet: nothing is sent early
        clock.now = seconds(message.due_at) + 1e-5
    assert await worker.run_once() == 1

    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts, message.last_error) == (MessageStatus.SENT, 3, None)
    assert message.sent_at is not None and abs(seconds(message.sent_at) - clock.now) < 1e-5
    assert [request.header("Idempotency-Key") for request in receiver.requests] == [message_id] * 3
    assert dues[0] < dues[1]


async def test_a_webhook_answered_400_fails_after_one_try_naming_the_status(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    clock: Clock,
    make_worker: MakeWorker,
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    receiver.answer(Reply(400, body=b"no such customer"))
    worker = make_worker()

    assert await worker.run_once() == 1
    clock.advance(10 * 3_600)
    assert await worker.run_once() == 0

    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.FAILED, 1)
    assert message.last_error is not None and "400" in message.last_error
    assert "no such customer" in message.last_error
    assert len(receiver.requests) == 1


async def test_retry_after_of_a_503_is_a_floor_for_the_next_attempt(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    clock: Clock,
    make_worker: MakeWorker,
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    receiver.answer(Reply(503, headers=(("Retry-After", "120"),)))
    worker = make_worker()
    started_at = clock.now

    await worker.run_once()

    message = await store.get_message(workspace, message_id)
    assert message.status is MessageStatus.QUEUED
    assert seconds(message.due_at) >= started_at + 120
    clock.now = started_at + 119
    assert await worker.run_once() == 0
    clock.now = seconds(message.due_at) + 1e-5
    assert await worker.run_once() == 1
    assert (await store.get_message(workspace, message_id)).status is MessageStatus.SENT


async def test_a_429_with_retry_after_is_retried_no_earlier_than_it_asks(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    clock: Clock,
    make_worker: MakeWorker,
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    receiver.answer(Reply(429, headers=(("Retry-After", "30"),)))
    started_at = clock.now

    await make_worker().run_once()

    message = await store.get_message(workspace, message_id)
    assert message.status is MessageStatus.QUEUED
    assert seconds(message.due_at) >= started_at + 30


async def test_a_webhook_that_keeps_failing_fails_for_good_after_max_attempts(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    clock: Clock,
    make_worker: MakeWorker,
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    receiver.answer(*[Reply(503)] * (MAX_ATTEMPTS + 1))
    worker = make_worker()

    for _ in range(MAX_ATTEMPTS):
        assert await worker.run_once() == 1
        clock.now = seconds((await store.get_message(workspace, message_id)).due_at) + 1e-5
    clock.advance(10 * 3_600)
    assert await worker.run_once() == 0

    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.FAILED, MAX_ATTEMPTS)
    assert message.last_error is not None
    assert message.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    assert "HTTP 503" in message.last_error
    assert len(receiver.requests) == MAX_ATTEMPTS


async def test_an_unreachable_receiver_is_retried(
    store: Store,
    workspace: WorkspaceId,
    closed_port: int,
    make_worker: MakeWorker,
) -> None:
    url = f"http://{LOCALHOST}:{closed_port}/hook"
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(url)))

    await make_worker().run_once()

    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 1)
    assert message.last_error is not None and "Connect" in message.last_error


async def test_a_stored_message_that_does_not_fit_its_channel_fails_saying_so(
    store: Store, workspace: WorkspaceId, make_worker: MakeWorker
) -> None:
    message_id = await enqueue_one(
        store, new_message(workspace, {"url": "http://x", "colour": "red"})
    )

    await make_worker().run_once()

    message = await store.get_message(workspace, message_id)
    assert message.status is MessageStatus.FAILED
    assert message.last_error is not None and "cannot be sent" in message.last_error


# -- email ------------------------------------------------------------------------------------


async def test_an_email_without_an_smtp_server_fails_naming_herald_smtp_host(
    store: Store, workspace: WorkspaceId, make_worker: MakeWorker
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, an_email(), kind="email"))

    assert await make_worker(email=None).run_once() == 1

    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.FAILED, 1)
    assert message.last_error is not None and "HERALD_SMTP_HOST" in message.last_error


async def test_an_email_arrives_at_a_real_smtp_server_with_the_message_id(
    store: Store, workspace: WorkspaceId, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, an_email(), kind="email"))
    channel = EmailChannel(
        SmtpSettings(
            host=LOCALHOST,
            port=smtp.port,
            sender="herald@example.com",
            security=Security.NONE,
            domain="mail.example.com",
        )
    )

    assert await make_worker(email=channel).run_once() == 1

    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.SENT, 1)
    (envelope,) = smtp.mailbox.envelopes
    assert envelope.rcpt_tos == ["ada@example.com"]
    assert isinstance(envelope.content, bytes)
    mail = email.message_from_bytes(envelope.content)
    assert mail["Message-ID"] == f"<{message_id}@mail.example.com>"
    assert mail["Subject"] == "Welcome"


# -- claims -----------------------------------------------------------------------------------


async def test_two_workers_in_the_same_round_never_send_the_same_message(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    total = BATCH + 36  # more than one worker claims at a time: both get some
    messages = [new_message(workspace, a_webhook(receiver.url())) for _ in range(total)]
    await store.enqueue_messages(messages)
    first, second = make_worker("worker-a"), make_worker("worker-b")

    handled = await asyncio.gather(first.run_once(), second.run_once())

    keys = [request.header("Idempotency-Key") for request in receiver.requests]
    assert sum(handled) == total and min(handled) > 0
    assert len(keys) == len(set(keys)) == total
    page = await store.list_messages(workspace, status=MessageStatus.SENT, cursor=None, limit=1_000)
    assert {message.id for message in page.messages} == set(keys)
    assert {message.attempts for message in page.messages} == {1}


async def die_mid_send(worker: DeliveryWorker, receiver: Receiver) -> None:
    """Cancel a round of `worker` once its request reached the receiver, which never answers:
    the message stays claimed, its attempt never recorded (as after kill -9)."""
    receiver.answer(HANG)
    dying = asyncio.create_task(worker.run_once())
    await until_requests(receiver, 1)
    dying.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dying


async def test_a_dead_workers_claim_is_taken_over_only_after_claim_s_with_the_same_key(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    clock: Clock,
    make_worker: MakeWorker,
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    await die_mid_send(make_worker("worker-a"), receiver)
    survivor = make_worker("worker-b")

    clock.advance(CLAIM_S)
    at_claim_end = await survivor.run_once()
    clock.advance(0.001)
    after_claim_end = await survivor.run_once()

    assert (at_claim_end, after_claim_end) == (0, 1)
    keys = [request.header("Idempotency-Key") for request in receiver.requests]
    assert keys == [message_id, message_id]
    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.SENT, 1)


async def test_a_worker_started_again_under_its_name_resends_at_once_what_it_was_sending(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    await die_mid_send(make_worker("worker-a"), receiver)
    other = make_worker("worker-b")
    while_claimed = await other.run_once()

    again = make_worker("worker-a")  # the clock has not moved: the claim has not run out
    resent = await again.run_once()

    assert (while_claimed, resent) == (0, 1)
    keys = [request.header("Idempotency-Key") for request in receiver.requests]
    assert keys == [message_id, message_id]
    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.SENT, 1)


async def test_a_webhook_whose_timeout_outlasts_a_claim_is_sent_once_its_claim_extended(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    long_wait = a_webhook(receiver.url(), timeout_s=CLAIM_S * 5)
    message_id = await enqueue_one(store, new_message(workspace, long_wait))

    sent = await make_worker().run_once()

    assert sent == 1
    assert [request.header("Idempotency-Key") for request in receiver.requests] == [message_id]
    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts) == (MessageStatus.SENT, 1)


async def test_a_message_whose_claim_ran_out_while_it_waited_for_a_slot_is_not_sent_again(
    store: Store,
    workspace: WorkspaceId,
    receiver: Receiver,
    clock: Clock,
    http_client: aiohttp.ClientSession,
    make_worker: MakeWorker,
) -> None:
    # One slot: `waiting` waits behind `slow` (its receiver never answers; it gives up after
    # 1 s), as the 193rd message of a batch waits behind three waves of slow webhooks.
    slow = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url(), timeout_s=1)))
    waiting = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    receiver.answer(HANG)
    one_slot = DeliveryWorker(
        location_of(store),
        webhooks=WebhookChannel(http_client),
        email=None,
        name="worker-a",
        clock=clock,
        rng=random.Random(SEED),
        concurrency=1,
    )
    one_slot.open()
    try:
        stuck = asyncio.create_task(one_slot.run_once())
        await until_requests(receiver, 1)  # `slow` is in flight, `waiting` waits for the slot
        clock.advance(CLAIM_S + 1)  # both claims run out; another worker takes them
        taken_over = await make_worker("worker-b").run_once()
        await stuck
    finally:
        one_slot.close()

    keys = [request.header("Idempotency-Key") for request in receiver.requests]
    assert taken_over == 2
    assert keys.count(waiting) == 1, keys
    assert keys.count(slow) == 2  # in flight when its claim ran out: sent again (fake clock)


async def test_a_stale_worker_records_nothing_after_another_took_its_claim(
    store: Store,
    workspace: WorkspaceId,
    clock: Clock,
    make_worker: MakeWorker,
) -> None:
    arrived, answer = asyncio.Event(), asyncio.Event()
    answered_200: list[bytes] = []  # the request heads the receiver accepted

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r")[0]))
        if not arrived.is_set():  # the stale worker's try: held until the test lets it go
            arrived.set()
            await answer.wait()
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        else:
            answered_200.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(url)))
    async with server:
        stale = asyncio.create_task(make_worker("worker-a").run_once())
        await arrived.wait()
        other = make_worker("worker-b")
        while_claimed = await other.run_once()
        clock.advance(CLAIM_S + 1)
        taken_over = await other.run_once()
        answer.set()
        await stale

    assert (while_claimed, taken_over) == (0, 1)
    message = await store.get_message(workspace, message_id)
    assert (message.status, message.attempts, message.last_error) == (MessageStatus.SENT, 1, None)
    clock.advance(10 * 3_600)
    assert await other.run_once() == 0
    assert len(answered_200) == 1
    assert f"idempotency-key: {message_id}".encode() in answered_200[0].lower()
