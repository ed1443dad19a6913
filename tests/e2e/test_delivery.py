"""Delivery in real processes: `herald serve` runs `herald delivery` as a supervised child that
sends the outbox to a real HTTP receiver; killed with SIGKILL mid-request, the child is restarted
and the message is sent again with the same Idempotency-Key once its claim runs out, and ends
sent exactly once. `herald delivery` also runs on its own beside a serve that leaves it out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.delivery import CLAIM_S
from herald.store.sqlite import SqliteStore
from herald.types import WorkspaceId
from tests.channels.conftest import HANG, Receiver
from tests.delivery import conftest as delivery
from tests.delivery.conftest import a_webhook, enqueue_one, new_message, until_requests
from tests.e2e.conftest import ADMIN_KEY, EXIT_TIMEOUT_S, POLL_INTERVAL_S, Herald, Servers, auth

pytestmark = pytest.mark.slow

receiver = delivery.receiver

SENT_DEADLINE_S = 30.0  # a due message is sent well within this (the child polls every 0.2 s)
RESTART_DEADLINE_S = 30.0  # serve restarts a dead child after about a second
# serve frees a dead child's claims at once, so the restarted child resends within seconds;
# the deadline stays below CLAIM_S, so waiting for the claim to run out would fail the test.
RESEND_DEADLINE_S = CLAIM_S - 30.0
HUNG_WEBHOOK_TIMEOUT_S = 600.0  # the hanging request outlasts the kill: the child dies mid-send


def delivery_children(pid: int) -> list[int]:
    """The `herald delivery` processes whose parent is `pid` (read from Linux's /proc)."""
    children = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            after_name = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if int(after_name[1]) == pid and b"delivery" in command:
            children.append(int(proc.name))
    return children


async def until(what: str, deadline_s: float, check: Any) -> Any:
    """Poll the async `check` until it answers something truthy, up to `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if answer := await check():
            return answer
        await asyncio.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"gave up waiting after {deadline_s:g} s: {what}")


async def until_sent(api: httpx.AsyncClient, message_id: str, deadline_s: float) -> Any:
    async def sent() -> Any:
        answer = await api.get(f"/api/messages/{message_id}")
        assert answer.status_code == 200, answer.text
        return answer.json() if answer.json()["status"] == "sent" else None

    return await until(f"message {message_id} sent", deadline_s, sent)


async def reading_store(herald: Herald) -> tuple[SqliteStore, WorkspaceId]:
    """The database of a running serve, opened as the CLI opens it (no log writer)."""
    store = SqliteStore(herald.database, writer=False)
    await store.start()
    return store, (await store.get_workspace("default")).id


@pytest.mark.timeout(RESEND_DEADLINE_S + RESTART_DEADLINE_S + 2 * SENT_DEADLINE_S)
async def test_serve_sends_a_webhook_and_resends_it_with_the_same_key_after_kill_9_of_delivery(
    herald: Herald, servers: Servers, receiver: Receiver
) -> None:
    server = servers.start(herald)
    store, workspace = await reading_store(herald)
    api = httpx.AsyncClient(base_url=server.url, headers=auth(ADMIN_KEY), timeout=10.0)
    try:
        first = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
        sent_first = await until_sent(api, first, SENT_DEADLINE_S)
        (child,) = delivery_children(server.process.pid)
        receiver.answer(HANG)
        hung = a_webhook(receiver.url(), timeout_s=HUNG_WEBHOOK_TIMEOUT_S)
        second = await enqueue_one(store, new_message(workspace, hung))
        await until_requests(receiver, 2)

        os.kill(child, signal.SIGKILL)

        async def restarted() -> list[int]:
            return [pid for pid in delivery_children(server.process.pid) if pid != child]

        await until("serve restarts its delivery child", RESTART_DEADLINE_S, restarted)
        sent_second = await until_sent(api, second, RESEND_DEADLINE_S)
        listing = (await api.get("/api/messages")).json()
    finally:
        await api.aclose()
        await store.close()

    assert sent_first["attempts"] == 1
    keys = [request.header("Idempotency-Key") for request in receiver.requests]
    assert keys == [first, second, second]  # at least once, with one stable key
    assert sent_second["attempts"] == 1  # the killed child's attempt was never recorded
    assert [(message["id"], message["status"]) for message in listing["messages"]] == [
        (first, "sent"),
        (second, "sent"),
    ]
    assert server.process.poll() is None


async def test_herald_delivery_runs_alone_beside_a_serve_without_embedded_delivery(
    herald: Herald, servers: Servers, receiver: Receiver
) -> None:
    alone = herald.with_settings(HERALD_EMBEDDED_DELIVERY="0")
    server = servers.start(alone)
    store, workspace = await reading_store(herald)
    api = httpx.AsyncClient(base_url=server.url, headers=auth(ADMIN_KEY), timeout=10.0)
    with (alone.home / "delivery.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "herald", "delivery"],
            env=alone.env,
            cwd=alone.home,
            stdout=log,
            stderr=log,
        )
    try:
        message_id = await enqueue_one(store, new_message(workspace, a_webhook(receiver.url())))
        sent = await until_sent(api, message_id, SENT_DEADLINE_S)
    finally:
        process.terminate()
        exit_code = await asyncio.to_thread(process.wait, EXIT_TIMEOUT_S)
        await api.aclose()
        await store.close()

    assert sent["attempts"] == 1
    assert [request.header("Idempotency-Key") for request in receiver.requests] == [message_id]
    assert delivery_children(server.process.pid) == []
    assert exit_code == 0, (alone.home / "delivery.log").read_text()


async def test_the_delivery_child_does_not_outlive_a_serve_killed_with_sigkill(
    herald: Herald, servers: Servers
) -> None:
    server = servers.start(herald)

    async def started() -> list[int]:
        return delivery_children(server.process.pid)

    (child,) = await until("serve starts its delivery child", RESTART_DEADLINE_S, started)

    server.kill()

    async def gone() -> bool:
        stat = Path(f"/proc/{child}/stat")
        try:  # gone, or ended and waiting to be reaped by whoever adopted it
            return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    assert await until(f"delivery child {child} exits after serve died", SENT_DEADLINE_S, gone)


def test_herald_delivery_help_describes_the_role(herald: Herald) -> None:
    result = herald.cli("delivery", "--help")

    assert result.returncode == 0, result.stderr
    assert "Run the delivery role alone" in result.stdout
    assert "HERALD_SMTP_HOST" in result.stdout
    assert "HERALD_EMBEDDED_DELIVERY=0" in result.stdout
