"""Resources for the delivery tests: the store (SQLite or PostgreSQL, from tests/conftest.py), a
clock moved by hand, workers on the store's database, a connection to its state (the outbox), and
the real HTTP receiver and SMTP server of the channel tests."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import aiohttp
import pytest

from herald.channels.email import EmailChannel
from herald.channels.webhook import WebhookChannel
from herald.delivery import DeliveryWorker
from herald.store import postgres
from herald.store.base import NewMessage, Store
from herald.store.db import Db
from herald.store.sqlitedb import connect, state_path
from herald.types import WorkspaceId
from tests.channels import conftest as channels
from tests.conftest import location_of

# The channel tests' real peers, as fixtures here too.
http_client = channels.http_client
smtp = channels.smtp
closed_port = channels.closed_port

SEED = 7  # every worker's jitter comes from random.Random(SEED)
ARRIVAL_GUARD_S = 10.0  # only turns a hang into a failure; no assertion is about time


@dataclass
class Clock:
    """The time a worker sees: starts a minute ahead of the wall clock (so every message the
    store enqueues, due at the wall clock's now, is due) and moves only when a test moves it."""

    now: float = field(default_factory=lambda: float(int(time.time()) + 60))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def move_to_us(self, moment_us: int) -> None:
        self.now = moment_us / 1_000_000


def a_webhook(url: str, **fields: Any) -> dict[str, Any]:
    return {"url": url, "body": '{"hello": "world"}', **fields}


def an_email(**fields: Any) -> dict[str, Any]:
    return {"to": "ada@example.com", "subject": "Welcome", "body": "Hello Ada", **fields}


def new_message(
    workspace_id: WorkspaceId,
    message: dict[str, Any],
    *,
    kind: str = "webhook",
    enrollment_id: str | None = None,
    step_number: int = 1,
) -> NewMessage:
    """A message as a journey step would enqueue it, for a fresh enrollment unless given."""
    return NewMessage(
        workspace_id=workspace_id,
        enrollment_id=enrollment_id or str(uuid4()),
        step_number=step_number,
        journey="welcome",
        step=f"step-{step_number}",
        customer_id="customer-1",
        kind=kind,
        message=message,
    )


async def enqueue_one(store: Store, message: NewMessage) -> str:
    """Enqueue `message` and return its outbox id."""
    assert await store.enqueue_messages([message]) == 1
    page = await store.list_messages(message.workspace_id, status=None, cursor=None, limit=1000)
    (found,) = [
        item
        for item in page.messages
        if (item.enrollment_id, item.step_number) == (message.enrollment_id, message.step_number)
    ]
    return found.id


class Arrivals(list[channels.ReceivedRequest]):
    """The receiver's record of requests, which wakes whoever waits for the next one."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, request: channels.ReceivedRequest) -> None:
        super().append(request)
        self.changed.set()


async def until_requests(receiver: channels.Receiver, count: int) -> None:
    """Wait until the receiver has read `count` requests (it records each as it reads it)."""
    arrivals = receiver.requests
    assert isinstance(arrivals, Arrivals), "use the receiver fixture of tests/delivery"
    async with asyncio.timeout(ARRIVAL_GUARD_S):
        while len(arrivals) < count:
            arrivals.changed.clear()
            await arrivals.changed.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[channels.Receiver]:
    """The channel tests' HTTP receiver on 127.0.0.1, whose arrivals a test can wait for."""
    receiver = channels.Receiver(requests=Arrivals())
    server = await asyncio.start_server(receiver.accept, channels.LOCALHOST, 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await receiver.close_connections()
        await server.wait_closed()


@pytest.fixture
async def workspace(store: Store) -> WorkspaceId:
    return (await store.create_workspace("default")).id


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeWorker = Callable[..., DeliveryWorker]


@pytest.fixture
def make_worker(
    store: Store, clock: Clock, http_client: aiohttp.ClientSession
) -> Iterator[MakeWorker]:
    """Open workers on the store's database, on the shared clock; all closed at teardown."""
    opened: list[DeliveryWorker] = []

    def make(
        name: str = "worker-a",
        *,
        email: EmailChannel | None = None,
        client: aiohttp.ClientSession | None = None,
    ) -> DeliveryWorker:
        worker = DeliveryWorker(
            location_of(store),
            webhooks=WebhookChannel(client or http_client),
            email=email,
            name=name,
            clock=clock,
            rng=random.Random(SEED),
        )
        worker.open()
        opened.append(worker)
        return worker

    yield make
    for worker in opened:
        worker.close()


@pytest.fixture
def state(store: Store) -> Iterator[Db]:
    """A connection of its own to the store's state database (where the outbox lives)."""
    location = location_of(store)
    db: Db = (
        postgres.connect(location)
        if isinstance(location, str)
        else connect(state_path(location), synchronous="full")
    )
    yield db
    db.close()
