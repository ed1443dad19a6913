"""AsyncClient: the main paths of Client, awaited from asyncio, against the same real peers."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from herald_client import AsyncClient, Config, Overflow, QueueFull, Rejection

from tests.e2e.conftest import Server, poll_until
from tests.sdk.conftest import WRITE_KEY, FaultServer, HeraldReader, Reply


@pytest.mark.slow
async def test_identify_then_track_make_one_identified_customer(herald_server: Server) -> None:
    customer, email = str(uuid.uuid4()).upper(), f"{uuid.uuid4().hex}@youremail.com"

    async with AsyncClient(WRITE_KEY, host=herald_server.url) as client:
        identify = await client.identify(customer, email)
        purchase = await client.track(customer, "purchase", {"cart": True})
        await client.set(customer, {"plan": "pro"})

    reader = HeraldReader(herald_server.url)
    found = await asyncio.to_thread(reader.processed_customer, email, 3)
    assert found["attributes"] == {"email": email, "plan": "pro"}
    assert [record["event"]["uuid"] for record in found["events"]][:2] == [identify, purchase]


@pytest.mark.slow
async def test_503_twice_then_201_stores_every_event_once(
    fault_server: FaultServer, herald_server: Server
) -> None:
    fault_server.replies = [
        Reply(status=503, forward=True, retry_after="0"),
        Reply(status=503, forward=False, retry_after="0"),
    ]
    customer = str(uuid.uuid4()).upper()
    config = Config(backoff_base_s=0.01)

    async with AsyncClient(WRITE_KEY, host=fault_server.url, config=config) as client:
        sent = [await client.track(customer, "purchase", {"n": n}) for n in range(10)]
        assert await client.flush(timeout_s=30)

    assert [request.status for request in fault_server.received] == [503, 503, 201]
    stored = await asyncio.to_thread(HeraldReader(herald_server.url).events, customer)
    assert [event["uuid"] for event in stored] == sent
    assert client.stats().duplicates == 10


@pytest.mark.slow
async def test_rejections_reach_the_callback_and_the_rest_is_stored(herald_server: Server) -> None:
    customer = str(uuid.uuid4()).upper()
    rejections: list[Rejection] = []

    async with AsyncClient(
        WRITE_KEY, host=herald_server.url, on_rejected=rejections.extend
    ) as client:
        bad = await client.identify(customer, "not an email")
        good = await client.track(customer, "purchase")

    assert [(r.uuid, r.index, r.field) for r in rejections] == [(bad, 0, "payload.distinct_id")]
    assert "expected an email address" in rejections[0].message
    stored = await asyncio.to_thread(HeraldReader(herald_server.url).events, customer)
    assert [event["uuid"] for event in stored] == [good]


async def held_async_client(
    server: FaultServer, config: Config
) -> tuple[AsyncClient, threading.Event, str]:
    """An AsyncClient whose first event the server holds (the next ones wait in the queue)."""
    release = threading.Event()
    server.replies = [Reply(hold=release)]
    client = AsyncClient(WRITE_KEY, host=server.url, config=config)
    first = await client.track("c", "purchase", {"n": 0})
    await asyncio.to_thread(
        poll_until, lambda: len(server.received) == 1, what="the first event is held"
    )
    return client, release, first


async def test_a_full_queue_waits_off_the_event_loop_until_there_is_room(
    recording_server: FaultServer,
) -> None:
    config = Config(max_queue_events=2, max_batch_events=1, block_timeout_s=60)
    client, release, first = await held_async_client(recording_server, config)
    waiting = [await client.track("c", "purchase", {"n": n}) for n in (1, 2)]

    late = asyncio.create_task(client.track("c", "purchase", {"n": 3}))
    await asyncio.to_thread(poll_until, lambda: client.stats().blocked == 1, what="a call waits")
    assert not late.done()  # the event loop runs while the call waits
    release.set()
    sent = [first, *waiting, await late]
    assert await client.close()

    received = [uuid for request in recording_server.received for uuid in request.uuids]
    assert received == sent


async def test_drop_oldest_keeps_the_newest_events(recording_server: FaultServer) -> None:
    config = Config(max_queue_events=2, max_batch_events=1, overflow=Overflow.DROP_OLDEST)
    client, release, first = await held_async_client(recording_server, config)

    queued = [await client.track("c", "purchase", {"n": n}) for n in range(1, 5)]
    release.set()
    assert await client.close()

    received = [uuid for request in recording_server.received for uuid in request.uuids]
    assert received == [first, *queued[2:]]
    assert client.stats().dropped == 2


async def test_block_raises_queue_full_after_the_timeout(recording_server: FaultServer) -> None:
    config = Config(max_queue_events=1, max_batch_events=1, block_timeout_s=0.05)
    client, release, first = await held_async_client(recording_server, config)
    await client.track("c", "purchase")

    with pytest.raises(QueueFull):
        await client.track("c", "purchase")
    release.set()
    assert await client.close()
