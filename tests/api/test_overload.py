"""Overload: past the commit queue's bound, Herald answers 503 with Retry-After at once."""

from __future__ import annotations

import asyncio

import httpx

from herald.api.app import create_app
from herald.core.keys import KeyKind
from herald.settings import Settings
from herald.store import open_store
from tests.api.conftest import an_event
from tests.conftest import auth
from tests.store.conftest import WriteLock

KEY = "hk_w_overload-test-key"
ADMIN = "hk_a_overload-test-key"


async def test_a_full_commit_queue_answers_503_with_retry_after_and_loses_nothing(
    database_url: str,
) -> None:
    settings = Settings(database_url=database_url, max_pending_events=150)
    store = open_store(settings)
    await store.start()
    workspace = await store.create_workspace("default")
    await store.create_key(workspace.id, KeyKind.WRITE, KEY)
    await store.create_key(workspace.id, KeyKind.ADMIN, ADMIN)
    app = create_app(settings, store, manage_store=False)
    first_batch = [an_event() for _ in range(100)]
    blocker = WriteLock(store)  # the log writer now waits for the lock
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            first = asyncio.create_task(
                client.post("/api/events/batch/", json={"batch": first_batch}, headers=auth(KEY))
            )
            for _ in range(10_000):  # let the first request reach the commit queue
                if store.pending_events():
                    break
                await asyncio.sleep(0)

            shed = await client.post(
                "/api/events/batch/",
                json={"batch": [an_event() for _ in range(100)]},
                headers=auth(KEY),
            )
            blocker.release()
            accepted = await first
            stats = await client.get("/api/stats", headers=auth(ADMIN))
    finally:
        blocker.release()
        await store.close()

    assert shed.status_code == 503
    assert shed.headers["Retry-After"] == "1"
    assert shed.json()["error"] == "overloaded"
    assert "retry" in shed.json()["message"]
    assert accepted.status_code == 201
    assert accepted.json()["accepted"] == 100
    assert stats.json()["accepted"] == 100
