"""The messages API (admin key): list the outbox by status with cursor paging, read one message,
retry a failed one (then a worker sends it); other keys and workspaces see nothing; every answer
is shaped as /openapi.json documents it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock file

from herald.store.base import MessageStatus, Store
from herald.types import WorkspaceId
from tests.api.test_journeys import documented_schema
from tests.channels.conftest import Receiver, Reply
from tests.conftest import Keys, auth
from tests.delivery import conftest as delivery
from tests.delivery.conftest import MakeWorker, a_webhook, an_email, enqueue_one, new_message

MESSAGES = "/api/messages"

# The delivery tests' resources: a hand-moved clock, workers, and a real HTTP receiver.
clock = delivery.clock
http_client = delivery.http_client
make_worker = delivery.make_worker
receiver = delivery.receiver


async def default_workspace(store: Store) -> WorkspaceId:
    return (await store.get_workspace("default")).id


async def one_of_each(store: Store, receiver: Receiver, make_worker: MakeWorker) -> dict[str, str]:
    """A sent webhook, a failed email (no SMTP server) and a queued webhook, by status."""
    workspace = await default_workspace(store)
    sent = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    failed = await enqueue_one(store, new_message(workspace, an_email(), kind="email"))
    assert await make_worker(email=None).run_once() == 2
    queued = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    return {"sent": sent, "failed": failed, "queued": queued}


async def test_list_filters_by_status(
    client: httpx.AsyncClient,
    store: Store,
    keys: Keys,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    ids = await one_of_each(store, receiver, make_worker)

    everything = await client.get(MESSAGES, headers=auth(keys.admin))
    by_status = {
        status.value: await client.get(f"{MESSAGES}?status={status}", headers=auth(keys.admin))
        for status in MessageStatus
    }

    assert everything.status_code == 200, everything.text
    listed = [message["id"] for message in everything.json()["messages"]]
    assert listed == [ids["sent"], ids["failed"], ids["queued"]]
    for status, answer in by_status.items():
        assert answer.status_code == 200, answer.text
        messages = answer.json()["messages"]
        assert [message["id"] for message in messages] == [ids[status]]
        assert messages[0]["status"] == status


async def test_list_pages_by_cursor_oldest_first(
    client: httpx.AsyncClient, store: Store, keys: Keys
) -> None:
    workspace = await default_workspace(store)
    ids = [
        await enqueue_one(store, new_message(workspace, a_webhook("http://127.0.0.1:9/hook")))
        for _ in range(5)
    ]

    pages: list[list[str]] = []
    url = f"{MESSAGES}?limit=2"
    while True:
        answer = await client.get(url, headers=auth(keys.admin))
        assert answer.status_code == 200, answer.text
        pages.append([message["id"] for message in answer.json()["messages"]])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
        url = f"{MESSAGES}?limit=2&status=queued&cursor={cursor}"

    assert pages[:3] == [ids[0:2], ids[2:4], ids[4:5]]
    assert [message_id for page in pages for message_id in page] == ids


async def test_get_answers_the_message_with_its_delivery_status(
    client: httpx.AsyncClient,
    store: Store,
    keys: Keys,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    ids = await one_of_each(store, receiver, make_worker)

    sent = await client.get(f"{MESSAGES}/{ids['sent']}", headers=auth(keys.admin))
    failed = await client.get(f"{MESSAGES}/{ids['failed']}", headers=auth(keys.admin))

    assert sent.status_code == 200, sent.text
    assert sent.json()["id"] == ids["sent"]
    assert sent.json()["status"] == "sent" and sent.json()["attempts"] == 1
    assert sent.json()["kind"] == "webhook"
    assert sent.json()["message"] == a_webhook(receiver.url())
    assert sent.json()["sent_at"] is not None and sent.json()["last_error"] is None
    assert failed.json()["status"] == "failed"
    assert "HERALD_SMTP_HOST" in failed.json()["last_error"]


async def test_retry_of_a_failed_message_queues_it_due_now_and_a_worker_then_sends_it(
    client: httpx.AsyncClient,
    store: Store,
    keys: Keys,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    workspace = await default_workspace(store)
    message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
    receiver.answer(Reply(400), Reply(200))
    worker = make_worker()
    assert await worker.run_once() == 1
    before = await client.get(f"{MESSAGES}/{message_id}", headers=auth(keys.admin))
    assert before.json()["status"] == "failed"

    asked_at = datetime.now(UTC)
    retried = await client.post(f"{MESSAGES}/{message_id}/retry", headers=auth(keys.admin))
    answered_at = datetime.now(UTC)
    handled = await worker.run_once()

    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "queued"
    assert retried.json()["attempts"] == 1
    due_at = datetime.fromisoformat(retried.json()["due_at"])
    assert asked_at - timedelta(milliseconds=1) <= due_at <= answered_at  # due now
    assert handled == 1
    after = await client.get(f"{MESSAGES}/{message_id}", headers=auth(keys.admin))
    assert (after.json()["status"], after.json()["attempts"]) == ("sent", 2)
    keys_seen = [request.header("Idempotency-Key") for request in receiver.requests]
    assert keys_seen == [message_id, message_id]


async def test_retry_of_a_sent_or_queued_message_is_a_409_that_changes_nothing(
    client: httpx.AsyncClient,
    store: Store,
    keys: Keys,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    ids = await one_of_each(store, receiver, make_worker)

    for status in ("sent", "queued"):
        answer = await client.post(f"{MESSAGES}/{ids[status]}/retry", headers=auth(keys.admin))

        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "conflict"
        assert f"is {status}" in answer.json()["message"]
        current = await client.get(f"{MESSAGES}/{ids[status]}", headers=auth(keys.admin))
        assert current.json()["status"] == status


async def test_an_unknown_id_is_a_404_for_get_and_retry(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    got = await client.get(f"{MESSAGES}/no-such-message", headers=auth(keys.admin))
    retried = await client.post(f"{MESSAGES}/no-such-message/retry", headers=auth(keys.admin))

    for answer in (got, retried):
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"] == "not_found"
        assert "GET /api/messages" in answer.json()["message"]


async def test_a_bad_status_is_a_400_naming_the_choices(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.get(f"{MESSAGES}?status=delivered", headers=auth(keys.admin))

    assert answer.status_code == 400
    body = answer.json()
    assert body["field"] == "status"
    assert "queued, sent, failed" in body["message"] and "'delivered'" in body["message"]


async def test_an_unknown_parameter_or_cursor_is_a_400_naming_it(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    misspelt = await client.get(f"{MESSAGES}?state=failed", headers=auth(keys.admin))
    bad_cursor = await client.get(f"{MESSAGES}?cursor=abc", headers=auth(keys.admin))
    bad_limit = await client.get(f"{MESSAGES}?limit=0", headers=auth(keys.admin))

    assert [misspelt.status_code, bad_cursor.status_code, bad_limit.status_code] == [400] * 3
    assert misspelt.json()["field"] == "state"
    assert bad_cursor.json()["field"] == "cursor"
    assert bad_limit.json()["field"] == "limit"


async def test_a_write_key_is_refused_and_no_key_is_unauthorized(
    client: httpx.AsyncClient, store: Store, keys: Keys
) -> None:
    workspace = await default_workspace(store)
    message_id = await enqueue_one(store, new_message(workspace, a_webhook("http://x/hook")))
    calls = [
        ("GET", MESSAGES),
        ("GET", f"{MESSAGES}/{message_id}"),
        ("POST", f"{MESSAGES}/{message_id}/retry"),
    ]

    for method, url in calls:
        with_write_key = await client.request(method, url, headers=auth(keys.write))
        without_key = await client.request(method, url)

        assert with_write_key.status_code == 403, (method, url, with_write_key.text)
        assert without_key.status_code == 401, (method, url, without_key.text)


async def test_another_workspace_sees_no_message(
    client: httpx.AsyncClient,
    store: Store,
    keys: Keys,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    ids = await one_of_each(store, receiver, make_worker)
    other = auth(keys.other_admin)

    listing = await client.get(MESSAGES, headers=other)
    failed = await client.get(f"{MESSAGES}?status=failed", headers=other)
    got = await client.get(f"{MESSAGES}/{ids['sent']}", headers=other)
    retried = await client.post(f"{MESSAGES}/{ids['failed']}/retry", headers=other)

    assert listing.json() == {"messages": [], "next_cursor": None}
    assert failed.json()["messages"] == []
    assert (got.status_code, retried.status_code) == (404, 404)
    mine = await client.get(f"{MESSAGES}/{ids['failed']}", headers=auth(keys.admin))
    assert mine.json()["status"] == "failed"


async def test_every_messages_answer_has_a_documented_status_and_shape(
    client: httpx.AsyncClient,
    store: Store,
    keys: Keys,
    receiver: Receiver,
    make_worker: MakeWorker,
) -> None:
    ids = await one_of_each(store, receiver, make_worker)
    document = (await client.get("/openapi.json")).json()
    admin, write = auth(keys.admin), auth(keys.write)
    one, retry = f"{MESSAGES}/{{id}}", f"{MESSAGES}/{{id}}/retry"
    calls: list[tuple[str, str, str, dict[str, str]]] = [
        ("GET", MESSAGES, MESSAGES, admin),
        ("GET", MESSAGES, f"{MESSAGES}?status=failed&limit=1", admin),
        ("GET", MESSAGES, f"{MESSAGES}?status=nope", admin),
        ("GET", MESSAGES, f"{MESSAGES}?cursor=x", admin),
        ("GET", MESSAGES, MESSAGES, write),
        ("GET", MESSAGES, MESSAGES, {}),
        ("GET", one, f"{MESSAGES}/{ids['sent']}", admin),
        ("GET", one, f"{MESSAGES}/{ids['failed']}", admin),
        ("GET", one, f"{MESSAGES}/nope", admin),
        ("GET", one, f"{MESSAGES}/{ids['sent']}", auth(keys.other_admin)),
        ("GET", one, f"{MESSAGES}/{ids['sent']}", write),
        ("GET", one, f"{MESSAGES}/{ids['sent']}", {}),
        ("POST", retry, f"{MESSAGES}/{ids['failed']}/retry", admin),
        ("POST", retry, f"{MESSAGES}/{ids['sent']}/retry", admin),
        ("POST", retry, f"{MESSAGES}/nope/retry", admin),
        ("POST", retry, f"{MESSAGES}/{ids['queued']}/retry", write),
        ("POST", retry, f"{MESSAGES}/{ids['queued']}/retry", {}),
    ]
    statuses = set()

    for method, template, url, headers in calls:
        answer = await client.request(method, url, headers=headers)
        statuses.add(answer.status_code)
        body: Any = answer.json()
        jsonschema.validate(body, documented_schema(document, method, template, answer.status_code))

    assert statuses == {200, 400, 401, 403, 404, 409}
    parameters = document["paths"][MESSAGES]["get"]["parameters"]
    assert {parameter["name"] for parameter in parameters} == {"status", "cursor", "limit"}
