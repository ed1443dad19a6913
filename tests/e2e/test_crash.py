"""kill -9 while clients are sending: every acknowledged event survives, and only once.

A server takes concurrent batches until KILL_AFTER_ACKS requests were acknowledged (201); then
one of its processes is killed with SIGKILL while other requests are in flight, and the server
is started again on the same file, CRASHES times over. The tests then look at what a client that
kept its acknowledged batches sees. This runs for both HERALD_SQLITE_SYNCHRONOUS modes, killing
the `herald serve` process, and once killing the helper processes it starts (the log writer).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    ADMIN_KEY,
    EXIT_TIMEOUT_S,
    WRITE_KEY,
    Herald,
    Server,
    Servers,
    auth,
    herald_env,
    make_event,
)

pytestmark = pytest.mark.slow

CLIENTS = 8
BATCH_EVENTS = 50
KILL_AFTER_ACKS = 200  # acknowledged requests before each SIGKILL
CRASHES = 3  # kill, start again on the same file, send more, kill again...
MAX_REQUESTS_PER_CLIENT = 1_000  # bounds each client should the kill never come
MAX_PAGES = 1_000
REQUEST_TIMEOUT_S = 30.0

ALL_ACCEPTED = {"accepted": BATCH_EVENTS, "duplicates": 0, "rejected": 0, "errors": []}

Batch = list[dict[str, Any]]


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (read from Linux's /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            after_name = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(after_name[1]) == pid:  # fields after the name: state, ppid, ...
            children.append(int(stat.parent.name))
    return children


def kill_server(server: Server) -> None:
    server.process.send_signal(signal.SIGKILL)


def kill_helpers(server: Server) -> None:
    for pid in child_pids(server.process.pid):
        os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Scenario:
    synchronous: str
    victim: str  # which process dies: "server" or "helpers"

    @property
    def kill(self) -> Callable[[Server], None]:
        return kill_server if self.victim == "server" else kill_helpers

    def __str__(self) -> str:
        return f"synchronous={self.synchronous}-kill={self.victim}"


SCENARIOS = [Scenario("full", "server"), Scenario("normal", "server"), Scenario("full", "helpers")]


@dataclass
class Load:
    """Concurrent clients sending fresh batches; the one that sees the KILL_AFTER_ACKS-th 201
    kills a process of the server while the others are still sending."""

    server: Server
    kill: Callable[[Server], None]
    acknowledged: list[Batch] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    killed: bool = False

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.url, timeout=REQUEST_TIMEOUT_S) as client:
            await asyncio.gather(*(self._send(client, number) for number in range(CLIENTS)))

    async def _send(self, client: httpx.AsyncClient, number: int) -> None:
        for sent in range(MAX_REQUESTS_PER_CLIENT):
            batch = [make_event(f"customer-{number}-{sent % 4}") for _ in range(BATCH_EVENTS)]
            try:
                response = await client.post(
                    "/api/events/batch/", json={"batch": batch}, headers=auth(WRITE_KEY)
                )
            except httpx.TransportError:
                return  # no answer: not acknowledged, and the server is gone
            if response.status_code == 201:
                self._acknowledge(batch, response.json())
            elif response.status_code != 503:  # 503 asks for a retry: not acknowledged
                self.unexpected.append(f"{response.status_code}: {response.text}")

    def _acknowledge(self, batch: Batch, answer: dict[str, Any]) -> None:
        self.acknowledged.append(batch)
        self.answers.append(answer)
        if len(self.acknowledged) >= KILL_AFTER_ACKS and not self.killed:
            self.killed = True
            self.kill(self.server)


@dataclass(frozen=True)
class Crashed:
    """The server started again after the last kill, and the batches acknowledged before."""

    server: Server
    acknowledged: list[Batch]


@pytest.fixture(scope="module", params=SCENARIOS, ids=str)
def crashed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Crashed]:
    scenario: Scenario = request.param
    home = tmp_path_factory.mktemp(str(scenario))
    database = home / "herald.db"
    herald = Herald(
        home,
        database,
        herald_env(
            database,
            HERALD_SQLITE_SYNCHRONOUS=scenario.synchronous,
            HERALD_BOOTSTRAP_API_KEY=WRITE_KEY,
            HERALD_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
        ),
    )
    acknowledged: list[Batch] = []
    with Servers(home) as servers:
        for _ in range(CRASHES):
            server = servers.start(herald)
            if scenario.victim == "helpers" and not child_pids(server.process.pid):
                pytest.skip("herald serve runs no helper process")
            load = Load(server, scenario.kill)

            asyncio.run(load.run())
            # Killing a helper must stop the server too, so a supervisor restarts it.
            exit_code = server.process.wait(timeout=EXIT_TIMEOUT_S)

            assert load.unexpected == []
            assert load.killed, f"only {len(load.acknowledged)} requests were acknowledged"
            assert exit_code != 0
            assert all(answer == ALL_ACCEPTED for answer in load.answers)
            acknowledged.extend(load.acknowledged)
        yield Crashed(servers.start(herald), acknowledged)


def stored_uuids(server: Server) -> list[str]:
    """Every event uuid in the log, newest first, paging through GET /api/events."""
    uuids: list[str] = []
    cursor: str | None = None
    with httpx.Client(base_url=server.url, headers=auth(ADMIN_KEY), timeout=30.0) as client:
        for _ in range(MAX_PAGES):
            params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
            response = client.get("/api/events", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            uuids.extend(event["uuid"] for event in page["events"])
            cursor = page["next_cursor"]
            if cursor is None:
                return uuids
    raise AssertionError(f"GET /api/events still had a next_cursor after {MAX_PAGES} pages")


def test_every_acknowledged_event_is_in_the_log_after_kill_9(crashed: Crashed) -> None:
    acknowledged = {event["uuid"] for batch in crashed.acknowledged for event in batch}

    stored = set(stored_uuids(crashed.server))

    missing = acknowledged - stored
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events were lost"


def test_no_event_is_stored_twice_after_kill_9(crashed: Crashed) -> None:
    stored = stored_uuids(crashed.server)

    assert len(stored) == len(set(stored))


def test_acknowledged_events_are_found_by_uuid_after_kill_9(crashed: Crashed) -> None:
    # The first and last event of each batch: they sit in different places of the log.
    probes = [event["uuid"] for batch in crashed.acknowledged for event in (batch[0], batch[-1])]

    with httpx.Client(base_url=crashed.server.url, headers=auth(ADMIN_KEY), timeout=30.0) as client:
        statuses = {uuid: client.get(f"/api/events/{uuid}").status_code for uuid in probes}

    assert {uuid: status for uuid, status in statuses.items() if status != 200} == {}


def test_resent_acknowledged_batches_are_all_duplicates_after_kill_9(crashed: Crashed) -> None:
    with httpx.Client(base_url=crashed.server.url, headers=auth(WRITE_KEY), timeout=30.0) as client:
        answers = [
            client.post("/api/events/batch/", json={"batch": batch})
            for batch in crashed.acknowledged
        ]

    assert [answer.status_code for answer in answers if answer.status_code != 201] == []
    duplicates_only = {"accepted": 0, "duplicates": BATCH_EVENTS, "rejected": 0, "errors": []}
    assert [answer.json() for answer in answers if answer.json() != duplicates_only] == []
