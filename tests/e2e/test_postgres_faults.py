"""Herald on PostgreSQL as production runs it, and SIGKILL of each role under load.

A deployment on a fresh schema: `herald api --workers 2` (two API processes on one port), two
`herald processor` and two `herald delivery`, with a journey whose webhook reaches a real HTTP
receiver on 127.0.0.1 that records each request's Idempotency-Key. Clients send batches (each
retried until it is acknowledged, as an SDK does) while one process is killed with SIGKILL and
started again: an API worker (its supervisor restarts it), a processor (a new one takes its
partitions once its lease runs out), a delivery worker (killed while the receiver holds requests
it sent, started again under its name). Once processing caught up and the outbox drained, every
acknowledged event is in the log once and processed once, the customers are what the events
define, and every triggered webhook was sent once per (enrollment, step) under one key.

Leases: with two processors and clients sending, stopping one (SIGTERM, or SIGKILL) moves its
partitions to the other, and `processing_log` shows no partition processed by both at once.

Every wait polls PostgreSQL or the receiver until a condition holds or a bound passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from herald.core.events import IDENTIFY, PARTITIONS, SET
from herald.store.db import STATE_LOCK
from tests.conftest import postgres_schema
from tests.e2e.conftest import (
    ADMIN_KEY,
    EXIT_TIMEOUT_S,
    POLL_INTERVAL_S,
    WRITE_KEY,
    auth,
    free_port,
    herald_env,
    interleave,
    poll_until,
)
from tests.e2e.test_crash import child_pids
from tests.e2e.test_processing import Worker as Role
from tests.e2e.test_processing import process_state

pytestmark = pytest.mark.slow

LEASE_S = 2.0  # HERALD_PROCESSOR_LEASE_S of every processor here
REQUEST_TIMEOUT_S = 30.0
CAUGHT_UP_POLLS = round(60 / POLL_INTERVAL_S)  # processing and delivery finish well within this
RESTART_POLLS = round(30 / POLL_INTERVAL_S)  # a supervisor restarts a worker after about 1 s
RETRY_PAUSE_S = 0.05  # a client's pause before resending a batch nobody acknowledged
MAX_TRIES = 200  # a batch not acknowledged after this many tries fails the test

Event = dict[str, Any]
Batch = list[Event]


# -- processes ------------------------------------------------------------------------------


@dataclass
class Deployment:
    """Herald's roles as separate processes on one PostgreSQL schema."""

    database_url: str
    home: Path
    port: int = field(default_factory=free_port)
    started: list[Role] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = herald_env(
            self.home / "unused.db",  # a SQLite URL, replaced below
            HERALD_BOOTSTRAP_API_KEY=WRITE_KEY,
            HERALD_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
            HERALD_PROCESSOR_LEASE_S=str(LEASE_S),
        )
        return env | {"HERALD_DATABASE_URL": self.database_url, "HERALD_LOG_LEVEL": "INFO"}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *args: str) -> Role:
        log_path = self.home / f"{len(self.started)}-{args[0]}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "herald", *args],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # pytest's Ctrl-C is not for it
            )
        role = Role(process, log_path)  # stdout and stderr
        self.started.append(role)
        return role

    def api(self, *args: str, port: int | None = None, wait: bool = True) -> Role:
        """`herald api ARGS` on `port` (this deployment's by default), once it answers /readyz
        (unless not to `wait`: then `ready()` says when)."""
        api = self.start("api", *args, "--port", str(port or self.port))
        if wait:
            poll_until(lambda: self.ready(api, port), what="/readyz", attempts=RESTART_POLLS)
        return api

    def ready(self, api: Role, port: int | None = None) -> bool:
        assert api.process.poll() is None, api.stderr()
        with contextlib.suppress(httpx.TransportError):
            url = f"http://127.0.0.1:{port or self.port}/readyz"
            return httpx.get(url, timeout=1.0).status_code == 200
        return False

    def processor(self) -> Role:
        return self.start("processor")

    def delivery(self, name: str) -> Role:
        return self.start("delivery", "--name", name)

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.database_url, autocommit=True)

    def stop_all(self) -> None:
        with contextlib.ExitStack() as stops:  # every stop runs, even if one of them fails
            for role in self.started:
                stops.callback(stop, role)


def stop(role: Role) -> None:
    """SIGTERM (`herald api` stops its API processes too), SIGKILL if it lingers."""
    if role.process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            role.terminate()
    role.stop()


@contextlib.contextmanager
def deployment(home: Path) -> Iterator[Deployment]:
    with postgres_schema() as url:
        herald = Deployment(url, home)
        try:
            yield herald
        finally:
            herald.stop_all()


def query(herald: Deployment, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with herald.connect() as conn:
        return conn.execute(statement.encode(), params).fetchall()


def owners(herald: Deployment) -> Counter[str | None]:
    """How many partitions each processor holds (None: nobody)."""
    return Counter(owner for (owner,) in query(herald, "SELECT owner FROM partitions"))


def owner_named(herald: Deployment, role: Role) -> str:
    """The name a processor holds partitions under (host:pid:random)."""
    names: list[str] = []

    def holds() -> bool:
        names[:] = [name for name in owners(herald) if name and role.owns(name)]
        return bool(names)

    poll_until(
        holds, what=f"processor {role.process.pid} holds a partition", attempts=RESTART_POLLS
    )
    return names[0]


def wait_shared(herald: Deployment, first: Role, second: Role) -> tuple[str, str]:
    """Wait until two processors hold half the partitions each; return their names."""
    names = owner_named(herald, first), owner_named(herald, second)
    half = dict.fromkeys(names, PARTITIONS // 2)
    poll_until(lambda: owners(herald) == half, what="the processors share", attempts=RESTART_POLLS)
    return names


# -- a webhook receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    key: str  # Idempotency-Key
    ref: str  # the uuid of the event that triggered it, from the body


class Hooks(ThreadingHTTPServer):
    """Records each webhook as it arrives, then answers 200; `hold()` keeps the answers back
    (requests are still read and recorded) until `release()`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.received: list[Hook] = []
        self.waiting: set[str] = set()  # keys of requests held back right now
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.open.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"

    def hold(self) -> None:
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def keys(self) -> set[str]:
        with self.lock:
            return {hook.key for hook in self.received}

    def keys_by_ref(self) -> dict[str, Counter[str]]:
        with self.lock:
            found: dict[str, Counter[str]] = {}
            for hook in self.received:
                found.setdefault(hook.ref, Counter())[hook.key] += 1
            return found


class _HookHandler(BaseHTTPRequestHandler):
    server: Hooks
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        key = self.headers.get("Idempotency-Key", "")
        with self.server.lock:
            self.server.received.append(Hook(key, json.loads(body)["ref"]))
            self.server.waiting.add(key)
        self.server.open.wait(REQUEST_TIMEOUT_S)  # only a bound: release() comes much sooner
        with self.server.lock:
            self.server.waiting.discard(key)
        with contextlib.suppress(OSError):  # the sender may be dead by now
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def receiving() -> Iterator[Hooks]:
    """A webhook receiver on 127.0.0.1 in a thread of its own, shut down on the way out."""
    hooks = Hooks()
    thread = threading.Thread(target=hooks.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        hooks.release()
        hooks.shutdown()
        hooks.server_close()
        thread.join()


def journey(url: str) -> dict[str, Any]:
    """Every `ordered` event enters the customer anew and sends one webhook naming the event."""
    return {
        "name": "receipt",
        "trigger": {"event": "ordered"},
        "entry": "every_time",
        "start": "hook",
        "steps": {
            "hook": {"type": "webhook", "url": url, "body": '{"ref": "{{ event.payload.ref }}"}'}
        },
    }


def create_journey(herald: Deployment, hooks: Hooks) -> None:
    created = httpx.post(
        f"{herald.api_url}/api/journeys", json=journey(hooks.url), headers=auth(ADMIN_KEY)
    )
    assert created.status_code == 201, created.text


# -- what the clients send, and what it must make -------------------------------------------

GROUP_SIZES = (3,) * 50 + (2,) * 70 + (1,) * 60  # anonymous ids identifying to one email
LONE_IDS = 60  # anonymous ids that never identify
BUYERS = 150  # customers who order: each `ordered` event is one webhook
ORDERS = 3
EVENTS_PER_ID = 6
CLIENTS = 6
BATCH_EVENTS = 25


@dataclass
class Expected:
    """One customer as the events sent define it, whatever order the partitions ran in."""

    identifiers: set[str] = field(default_factory=set)
    attributes: dict[str, Any] = field(default_factory=dict)
    uuids: set[str] = field(default_factory=set)


@dataclass
class Workload:
    """What the clients send, and the customers, outcomes and webhooks it must make."""

    streams: list[list[Event]] = field(default_factory=list)  # per id, in send order
    expected: dict[str, Expected] = field(default_factory=dict)  # by email, else by `_id`
    made: Counter[str] = field(default_factory=Counter)  # outcomes but `attributed`
    orders: set[str] = field(default_factory=set)  # uuids of the `ordered` events

    @property
    def events(self) -> int:
        return sum(len(stream) for stream in self.streams)

    @property
    def outcomes(self) -> Counter[str]:
        """Each event's processing outcome, counted: every other event is `attributed`."""
        return self.made + Counter(attributed=self.events - sum(self.made.values()))

    def add_extra(self, batches: list[Batch]) -> None:
        """Batches of page views the clients sent beyond their plans, one new `_id` each."""
        for batch in batches:
            value = batch[0]["correlationValue"]
            add_customer(self, value, [value], [batch], None)


def event(name: str, value: str, payload: dict[str, Any]) -> Event:
    return {
        "event": name,
        "source": "custom",
        "correlationKey": "_id",
        "correlationValue": value,
        "uuid": str(uuid.uuid4()),
        "payload": payload,
    }


def anonymous_events(anonymous_id: str, slot: int, email: str | None, rng: random.Random) -> Batch:
    """Page views and `$set`s of attributes only this id sets, and its `$identify` if any (never
    first: the first event creates the customer)."""
    identify_at = rng.randrange(1, EVENTS_PER_ID) if email else None
    events = []
    for index in range(EVENTS_PER_ID):
        if index == identify_at:
            events.append(event(IDENTIFY, anonymous_id, {"distinct_id": email}))
        elif index % 2:
            events.append(event(SET, anonymous_id, {f"n_{slot}": index}))
        else:
            events.append(event("page_view", anonymous_id, {"index": index}))
    return events


def add_customer(
    work: Workload, name: str, ids: list[str], streams: list[Batch], email: str | None
) -> None:
    """One customer made of anonymous ids' streams, interleaved later in each id's order."""
    customer = work.expected.setdefault(name, Expected(identifiers=set(ids)))
    customer.attributes.update({"email": email} if email else {})
    for stream in streams:
        for sent in stream:
            customer.uuids.add(sent["uuid"])
            if sent["event"] == SET:
                customer.attributes.update(sent["payload"])
        work.streams.append(stream)
    work.made["created"] += len(ids)
    if email:  # the first id to identify takes the email, the others merge into it
        work.made["identified"] += 1
        work.made["merged"] += len(ids) - 1


def workload(seed: int = 20_241_123) -> Workload:
    rng = random.Random(seed)
    work = Workload()
    number = 0
    for group, size in enumerate(GROUP_SIZES):
        email = f"user-{group}@example.com"
        ids = [f"anon-{number + slot:04d}" for slot in range(size)]
        streams = [anonymous_events(value, slot, email, rng) for slot, value in enumerate(ids)]
        add_customer(work, email, ids, streams, email)
        number += size
    for lone in range(LONE_IDS):
        value = f"lone-{lone:04d}"
        add_customer(work, value, [value], [anonymous_events(value, 0, None, rng)], None)
    for buyer in range(BUYERS):
        value = f"buyer-{buyer:04d}"
        orders = [event("ordered", value, {}) for _ in range(ORDERS)]
        for order in orders:
            order["payload"]["ref"] = order["uuid"]
            work.orders.add(order["uuid"])
        stream = [*orders[:1], event(SET, value, {"tier": "gold"}), *orders[1:]]
        add_customer(work, value, [value], [stream], None)
    return work


def client_batches(work: Workload, rng: random.Random) -> list[list[Batch]]:
    """Each client's batches: its share of the streams interleaved at random, each in order.

    One client sends all of an `_id`'s events, one batch after another (each acknowledged before
    the next), so they commit in the order they were written. The ids of one email may go to
    different clients: what they make together does not depend on the order across ids.
    """
    plans = []
    for client in range(CLIENTS):
        ordered = interleave(work.streams[client::CLIENTS], rng)
        plans.append(
            [
                ordered[start : start + BATCH_EVENTS]
                for start in range(0, len(ordered), BATCH_EVENTS)
            ]
        )
    return plans


# -- the load -------------------------------------------------------------------------------


@dataclass
class Load:
    """Clients sending their batches to the API, each until it is acknowledged (201), `pause_s`
    apart. The client whose acknowledgement is the `kill_after`-th event runs `kill` (in a
    thread: the others keep sending meanwhile); a client whose plan runs out before the kill is
    done sends `extra` batches (page views of a new `_id` each), so the kill never lacks load."""

    url: str
    plans: list[list[Batch]]
    kill_after: int
    kill: Callable[[], None]
    pause_s: float = 0.0
    acknowledged: list[str] = field(default_factory=list)  # uuids, in order of the 201s
    extra: list[Batch] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # tries not acknowledged, by why
    killed: bool = False

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        kill_done = asyncio.Event()
        async with httpx.AsyncClient(
            base_url=self.url, headers=auth(WRITE_KEY), timeout=REQUEST_TIMEOUT_S
        ) as client:
            await asyncio.gather(
                *(
                    self._send_all(client, plan, kill_done, f"extra-{number}")
                    for number, plan in enumerate(self.plans)
                )
            )

    async def _send_all(
        self, client: httpx.AsyncClient, plan: list[Batch], kill_done: asyncio.Event, extra: str
    ) -> None:
        for batch in plan:
            await self._send(client, batch)
            if len(self.acknowledged) >= self.kill_after and not self.killed:
                self.killed = True
                try:
                    await asyncio.to_thread(self.kill)
                finally:
                    kill_done.set()
            await asyncio.sleep(self.pause_s)  # the pace of the load, not a wait for anything
        while not kill_done.is_set():
            name = f"{extra}-{len(self.extra)}"
            batch = [event("page_view", name, {"index": n}) for n in range(BATCH_EVENTS)]
            self.extra.append(batch)
            await self._send(client, batch)
            await asyncio.sleep(self.pause_s)

    async def _send(self, client: httpx.AsyncClient, batch: Batch) -> None:
        for _ in range(MAX_TRIES):
            try:
                response = await client.post("/api/events/batch/", json={"batch": batch})
            except httpx.TransportError as exc:  # no answer: not acknowledged, send it again
                self.refused[type(exc).__name__] += 1
            else:
                if response.status_code == 201:
                    answer = response.json()
                    assert answer["accepted"] + answer["duplicates"] == len(batch), answer
                    self.acknowledged.extend(sent["uuid"] for sent in batch)
                    return
                assert response.status_code == 503, response.text  # 503 asks for a retry
                self.refused["503"] += 1
            await asyncio.sleep(RETRY_PAUSE_S)  # a client's backoff before sending it again
        raise AssertionError(f"a batch was not acknowledged after {MAX_TRIES} tries")


# -- killing a process in the middle of a transaction ---------------------------------------

# Where a process can be in the middle of a transaction (conditions on pg_stat_activity `a`): a
# processor holding the advisory lock of a state transaction; an API process's log writer in an
# append that has written rows.
STATE_LOCKED = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted"
    " AND l.locktype = 'advisory' AND l.objsubid = 1"
    f" AND l.classid = {STATE_LOCK >> 32} AND l.objid = {STATE_LOCK & 0xFFFF_FFFF})"
)
APPENDING = "a.application_name = 'herald-log-writer' AND a.backend_xid IS NOT NULL"
STOP_TRIES = 10_000  # /proc reads until a process stopped with SIGSTOP shows it
WATCH_TRIES = 20_000  # pg_stat_activity reads (~1 ms each) until a process is caught


def tcp_ports(pid: int) -> list[int]:
    """The local TCP ports of process `pid`'s sockets (from Linux's /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed while we looked
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def caught_inside(conn: psycopg.Connection[tuple[Any, ...]], pids: list[int], where: str) -> int:
    """Which of processes `pids` has a PostgreSQL connection that is `where` (0: none)."""
    ports = {port: pid for pid in pids for port in tcp_ports(pid)}
    rows = conn.execute(
        f"SELECT a.client_port FROM pg_stat_activity a WHERE a.client_port = ANY(%s) AND {where}",
        (list(ports),),
    ).fetchall()
    return next((ports[port] for (port,) in rows), 0)


def stopped(pid: int) -> None:
    """SIGSTOP process `pid` and return once it is stopped."""
    os.kill(pid, signal.SIGSTOP)
    for _ in range(STOP_TRIES):
        if process_state(pid) == "T":
            return
        os.sched_yield()
    raise AssertionError(f"process {pid} did not stop")


def kill_inside(herald: Deployment, pids: list[int], where: str) -> int:
    """SIGKILL one of processes `pids` in the middle of a transaction (`where` says which): watch
    their connections until one is inside such a transaction, stop that process (SIGSTOP), and if
    it is still inside, kill it where it stands (else let it go on and watch again). Returns the
    pid killed."""
    with herald.connect() as conn:
        for _ in range(WATCH_TRIES):
            pid = caught_inside(conn, pids, where)
            if not pid:
                continue
            stopped(pid)
            if caught_inside(conn, [pid], where):
                os.kill(pid, signal.SIGKILL)
                return pid
            os.kill(pid, signal.SIGCONT)
    raise AssertionError(f"none of processes {pids} was caught inside a transaction")


# -- killing one process of a role under load -----------------------------------------------


@dataclass
class Scenario:
    """A running deployment, and what killing one of its processes left to check."""

    herald: Deployment
    hooks: Hooks
    api: Role
    processors: list[Role]
    deliveries: dict[str, Role]
    victim: str = ""  # what was killed: an API process, a processor, a delivery worker
    resent: set[str] = field(default_factory=set)  # keys the killed worker was sending

    def kill_api_worker(self) -> None:
        """SIGKILL an API process while it commits a group; `herald api` starts another."""
        workers = child_pids(self.api.process.pid)
        assert len(workers) == 2, workers
        killed = kill_inside(self.herald, workers, APPENDING)
        self.victim = f"api worker {killed}"

        def replaced() -> bool:
            live = child_pids(self.api.process.pid)
            return len(live) == 2 and killed not in live

        poll_until(replaced, what="herald api restarts its worker", attempts=RESTART_POLLS)

    def kill_processor(self) -> None:
        """SIGKILL a processor inside a transaction; a new one takes its partitions once their
        leases run out."""
        names = {owner_named(self.herald, each): each for each in self.processors}
        killed = kill_inside(
            self.herald, [each.process.pid for each in names.values()], STATE_LOCKED
        )
        self.victim, victim = next(
            (name, each) for name, each in names.items() if each.process.pid == killed
        )
        victim.process.wait(timeout=EXIT_TIMEOUT_S)
        self.processors = [each for each in self.processors if each is not victim]
        self.processors.append(self.herald.processor())

    def kill_delivery(self) -> None:
        """SIGKILL a delivery worker while the receiver holds requests it sent (they reached
        the receiver, unanswered), then start it again under the same name."""
        name = "delivery-b"
        self.hooks.hold()
        try:
            poll_until(
                lambda: bool(self._claimed_by(name) & self.hooks.waiting),
                what=f"the receiver holds a webhook {name} sent",
                attempts=RESTART_POLLS,
            )
            self.deliveries[name].kill()
        finally:
            self.hooks.release()
        self.victim = name
        # What it was sending that the receiver got: sent again, under the same key.
        self.resent = self._claimed_by(name) & self.hooks.keys()
        self.deliveries[name] = self.herald.delivery(name)

    def _claimed_by(self, worker: str) -> set[str]:
        rows = query(
            self.herald,
            "SELECT message_id FROM outbox WHERE claimed_by = %s AND status = 'queued'",
            worker,
        )
        return {message_id for (message_id,) in rows}


KILLS: dict[str, Callable[[Scenario], None]] = {
    "api": Scenario.kill_api_worker,
    "processor": Scenario.kill_processor,
    "delivery": Scenario.kill_delivery,
}
KILL_AT = 0.3  # share of the events acknowledged when the kill comes
PACE_S = 0.05  # each client's pause between batches: a steady load rather than one burst


@dataclass(frozen=True)
class Result:
    """What a scenario left: read from PostgreSQL and the receiver once everything settled."""

    role: str  # whose process was killed: api, processor or delivery
    work: Workload
    load: Load
    api_url: str
    victim: str
    resent: set[str]
    logged: dict[str, int]  # uuid -> event record id (seq << 24 | position)
    logged_rows: int  # rows of event_ids (one per logged event)
    records: dict[int, tuple[int, str]]  # event record id -> (customer id, outcome)
    processed: int  # the partitions' `processed` counters, summed
    customers: dict[int, tuple[dict[str, Any], int | None]]  # id -> (attributes, merged_into)
    keys: list[tuple[str, str, int]]  # customer_keys: (name, value, customer id)
    ranges: dict[int, list[tuple[int, int, str, int]]]  # see read_ranges
    batches: dict[int, list[int]]  # see read_batches
    messages: list[tuple[str, str, int, str, int, str]]  # see read_messages
    hooks: dict[str, Counter[str]]  # the receiver's view: ref -> key -> requests
    exit_codes: dict[str, int]  # of the processors and delivery workers, stopped with SIGTERM


@pytest.fixture(scope="module", params=list(KILLS), ids=lambda role: f"kill-{role}")
def result(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Result]:
    role: str = request.param
    work = workload()
    home = tmp_path_factory.mktemp(f"kill-{role}")
    with receiving() as hooks, deployment(home) as herald:
        scenario = Scenario(
            herald,
            hooks,
            api=herald.api("--workers", "2"),
            processors=[herald.processor(), herald.processor()],
            deliveries={name: herald.delivery(name) for name in ("delivery-a", "delivery-b")},
        )
        create_journey(herald, hooks)
        wait_shared(herald, *scenario.processors)
        load = Load(
            herald.api_url,
            client_batches(work, random.Random(role)),
            kill_after=round(KILL_AT * work.events),
            kill=lambda: KILLS[role](scenario),
            pause_s=PACE_S,
        )
        load.run()
        work.add_extra(load.extra)
        wait_processed(herald, work.events)
        wait_drained(herald, len(work.orders))
        yield read_result(role, work, load, scenario)


def wait_processed(herald: Deployment, events: int) -> None:
    """Poll until the partitions' counters say `events` events were processed."""

    def processed() -> bool:
        [(total,)] = query(herald, "SELECT coalesce(sum(processed), 0) FROM partitions")
        return int(total) >= events

    poll_until(processed, what=f"{events} events processed", attempts=CAUGHT_UP_POLLS)


def wait_drained(herald: Deployment, messages: int) -> None:
    """Poll until the outbox holds `messages` messages (or more), all of them sent."""

    def drained() -> bool:
        [(sent, total)] = query(
            herald, "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FROM outbox"
        )
        return bool(sent == total >= messages)

    poll_until(drained, what=f"{messages} webhooks sent", attempts=CAUGHT_UP_POLLS)


def read_result(role: str, work: Workload, load: Load, scenario: Scenario) -> Result:
    herald = scenario.herald
    ids = query(herald, "SELECT id, seq, position FROM event_ids")
    records = query(herald, "SELECT id, customer_id, outcome FROM event_records")
    customers = query(herald, "SELECT id, attributes, merged_into FROM customers")
    [(processed,)] = query(herald, "SELECT sum(processed) FROM partitions")
    processors = {f"processor {each.process.pid}": each for each in scenario.processors}
    return Result(
        role=role,
        work=work,
        load=load,
        api_url=herald.api_url,
        victim=scenario.victim,
        resent=scenario.resent,
        logged={str(uuid.UUID(bytes=bytes(i))): seq << 24 | at for i, seq, at in ids},
        logged_rows=len(ids),
        records={record: (customer, outcome) for record, customer, outcome in records},
        processed=int(processed),
        customers={row[0]: (json.loads(row[1]), row[2]) for row in customers},
        keys=[
            (name, value, owner)
            for name, value, owner in query(
                herald, "SELECT name, value, customer_id FROM customer_keys"
            )
        ],
        ranges=read_ranges(herald),
        batches=read_batches(herald),
        messages=read_messages(herald),
        hooks=scenario.hooks.keys_by_ref(),
        exit_codes={
            name: each.terminate() for name, each in (processors | scenario.deliveries).items()
        },
    )


def read_messages(herald: Deployment) -> list[tuple[str, str, int, str, int, str]]:
    """The outbox: (message id, enrollment, step number, status, attempts, webhook body)."""
    rows = query(
        herald,
        "SELECT message_id, enrollment_id, step_number, status, attempts, message FROM outbox",
    )
    return [(*row[:5], json.loads(row[5])["body"]) for row in rows]


def read_ranges(herald: Deployment) -> dict[int, list[tuple[int, int, str, int]]]:
    """processing_log: per partition, its (from_seq, to_seq, owner, at_us) ranges by from_seq."""
    ranges: dict[int, list[tuple[int, int, str, int]]] = {}
    for partition, first, last, owner, at_us in query(
        herald,
        "SELECT partition, from_seq, to_seq, owner, at_us FROM processing_log ORDER BY from_seq",
    ):
        ranges.setdefault(partition, []).append((first, last, owner, at_us))
    return ranges


def read_batches(herald: Deployment) -> dict[int, list[int]]:
    seqs: dict[int, list[int]] = {}
    for partition, seq in query(herald, "SELECT partition, seq FROM event_batches ORDER BY seq"):
        seqs.setdefault(partition, []).append(seq)
    return seqs


def assert_ranges_cover_the_log_once(
    ranges: dict[int, list[tuple[int, int, str, int]]], batches: dict[int, list[int]]
) -> None:
    """Per partition: processing ranges that never overlap and cover every record batch."""
    for partition, seqs in batches.items():
        spans = ranges.get(partition, [])
        overlapping = [
            (before, after)
            for before, after in zip(spans, spans[1:], strict=False)
            if after[0] <= before[1]
        ]
        assert overlapping == [], f"partition {partition} processed twice: {overlapping}"
        uncovered = [seq for seq in seqs if not any(low <= seq <= high for low, high, *_ in spans)]
        assert uncovered == [], f"partition {partition}: seqs {uncovered[:5]} never processed"


# -- what must hold after each kill ---------------------------------------------------------


def test_the_kill_came_under_load_and_every_batch_was_acknowledged(result: Result) -> None:
    sent = [event["uuid"] for stream in result.work.streams for event in stream]

    assert result.load.killed and result.victim
    assert sorted(result.load.acknowledged) == sorted(sent)
    if result.role == "api":  # killed while committing: its requests got no answer
        assert result.load.refused, "no request was in flight in the killed API process"
    assert result.exit_codes == dict.fromkeys(result.exit_codes, 0)  # SIGTERM: a clean stop


def test_every_acknowledged_event_is_in_the_log_once(result: Result) -> None:
    acknowledged = set(result.load.acknowledged)

    missing = acknowledged - result.logged.keys()
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events were lost"
    assert result.logged_rows == len(result.logged) == len(acknowledged)


def test_every_event_is_processed_exactly_once(result: Result) -> None:
    # One record per logged event (the record id is its place in the log), none elsewhere;
    # the partitions' counters (advanced in the same transactions) agree.
    assert result.records.keys() == set(result.logged.values())
    assert result.processed == len(result.logged)
    assert Counter(outcome for _, outcome in result.records.values()) == result.work.outcomes
    assert_ranges_cover_the_log_once(result.ranges, result.batches)


def test_events_read_by_uuid_show_their_processing(result: Result) -> None:
    probes = result.load.acknowledged[:: len(result.load.acknowledged) // 200]
    with httpx.Client(base_url=result.api_url, headers=auth(ADMIN_KEY)) as client:
        outcomes = [client.get(f"/api/events/{uuid_}").json()["processing"] for uuid_ in probes]

    assert [item["outcome"] for item in outcomes if item["outcome"] == "pending"] == []


def test_customers_are_what_the_events_define(result: Result) -> None:
    live = {cid for cid, (_, merged_into) in result.customers.items() if merged_into is None}
    found: dict[int, Expected] = {
        cid: Expected(attributes=result.customers[cid][0]) for cid in live
    }
    for name, value, owner in result.keys:
        if name == "_id":
            assert owner in live, f"identifier {value} names merged customer {owner}"
            found[owner].identifiers.add(value)
    by_uuid = {record: uuid_ for uuid_, record in result.logged.items()}
    for record, (customer, _) in result.records.items():
        found[follow(result.customers, customer)].uuids.add(by_uuid[record])
    named = {
        str(customer.attributes.get("email") or min(customer.identifiers)): customer
        for customer in found.values()
    }

    assert len(named) == len(found) == len(result.work.expected)
    wrong = [name for name, customer in result.work.expected.items() if named.get(name) != customer]
    assert wrong == [], f"{len(wrong)} customers differ, e.g. {wrong[0]}: {named.get(wrong[0])}"


def follow(customers: dict[int, tuple[dict[str, Any], int | None]], customer_id: int) -> int:
    """The live customer `customer_id` became, through its merges."""
    for _ in range(16):
        merged_into = customers[customer_id][1]
        if merged_into is None:
            return customer_id
        customer_id = merged_into
    raise AssertionError(f"customer {customer_id} merges in a loop")


def test_each_triggered_webhook_is_sent_once_under_one_key(result: Result) -> None:
    by_ref = {json.loads(body)["ref"]: row for *row, body in result.messages}
    steps = Counter((enrollment, step) for _, enrollment, step, *_ in result.messages)

    # One message per `ordered` event, one per (enrollment, step), each sent on its first try.
    assert by_ref.keys() == result.work.orders
    assert len(result.messages) == len(steps) == len(result.work.orders)
    assert {(status, attempts) for *_, status, attempts in by_ref.values()} == {("sent", 1)}
    # The receiver saw each under its message id only, once; twice only what a killed worker
    # was sending (its requests reached the receiver, unanswered).
    assert result.hooks.keys() == by_ref.keys()
    keys = {ref: set(counts) for ref, counts in result.hooks.items()}
    assert keys == {ref: {row[0]} for ref, row in by_ref.items()}
    twice = {key for counts in result.hooks.values() for key, seen in counts.items() if seen > 1}
    assert twice == result.resent
    assert max(seen for counts in result.hooks.values() for seen in counts.values()) <= 2
    assert bool(result.resent) == (result.role == "delivery")


# -- leases ---------------------------------------------------------------------------------

HANDOVER_PACE_S = 0.25  # the load goes on while the stopped processor's leases run out


@dataclass
class Handover:
    """Stops one of two processors under load and watches its partitions move to the other."""

    herald: Deployment
    victim: Role
    names: tuple[str, str]  # the survivor's, the victim's
    kill: bool  # SIGKILL inside a transaction, else SIGTERM
    held: dict[int, tuple[int, int]] = field(default_factory=dict)  # see run()
    early: list[str] = field(default_factory=list)  # the survivor's moves before a lease ran out

    def run(self) -> None:
        """Stop the victim; note, per partition it held, its checkpoint and its lease's end
        (0: handed back); poll until the survivor holds every partition."""
        survivor, victim = self.names
        if self.kill:
            kill_inside(self.herald, [self.victim.process.pid], STATE_LOCKED)
            self.victim.process.wait(timeout=EXIT_TIMEOUT_S)
            mine = {partition for partition, owner in self._owners() if owner == victim}
        else:
            mine = {partition for partition, owner in self._owners() if owner == victim}
            assert self.victim.terminate() == 0, self.victim.stderr()
        for partition, _, checkpoint, until_us in self._partitions():
            if partition in mine:
                self.held[partition] = (checkpoint, until_us)
        # SIGTERM hands the partitions back: the survivor takes them at its next renewal (every
        # third of the lease). After SIGKILL they move once the lease has run out, plus that.
        within_s = LEASE_S if not self.kill else 2 * LEASE_S
        poll_until(
            lambda: self._moved(survivor),
            what=f"the survivor holds every partition within {within_s:g} s",
            attempts=round(within_s / POLL_INTERVAL_S),
        )

    def _moved(self, survivor: str) -> bool:
        rows = self._partitions()
        ranges = query(
            self.herald,
            "SELECT partition, from_seq FROM processing_log WHERE owner = %s",
            survivor,
        )
        now_us = time.time() * 1_000_000  # after the reads: what they saw happened before
        for partition, owner, _, _ in rows:
            if partition in self.held and owner == survivor and now_us < self.held[partition][1]:
                self.early.append(f"partition {partition} taken before its lease ran out")
        for partition, first in ranges:
            checkpoint, until_us = self.held.get(partition, (0, 0))
            if first > checkpoint and now_us < until_us:
                self.early.append(f"partition {partition} processed before its lease ran out")
        return all(owner == survivor for _, owner, _, _ in rows)

    def _owners(self) -> list[tuple[int, str | None]]:
        return [(partition, owner) for partition, owner, _, _ in self._partitions()]

    def _partitions(self) -> list[tuple[Any, ...]]:
        return query(
            self.herald, "SELECT partition, owner, checkpoint_seq, lease_until_us FROM partitions"
        )


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_stopped_processors_partitions_move_to_the_other_and_none_is_processed_twice(
    tmp_path: Path, stop: str
) -> None:
    work = workload()
    with deployment(tmp_path) as herald:
        herald.api()
        survivor, victim = herald.processor(), herald.processor()
        handover = Handover(
            herald, victim, wait_shared(herald, survivor, victim), stop == "sigkill"
        )
        load = Load(
            herald.api_url,
            client_batches(work, random.Random(stop)),
            kill_after=round(KILL_AT * work.events),
            kill=handover.run,
            pause_s=HANDOVER_PACE_S,
        )
        load.run()
        work.add_extra(load.extra)
        wait_processed(herald, work.events)
        ranges, batches = read_ranges(herald), read_batches(herald)
        [(logged, records, processed)] = query(
            herald,
            "SELECT (SELECT count(*) FROM event_ids), (SELECT count(*) FROM event_records),"
            " (SELECT sum(processed) FROM partitions)",
        )
        assert survivor.terminate() == 0, survivor.stderr()

    survivor_name, victim_name = handover.names
    assert len(handover.held) == PARTITIONS // 2
    assert handover.early == []
    assert (logged, records, processed) == (work.events,) * 3
    assert_ranges_cover_the_log_once(ranges, batches)
    # One owner at a time: the victim's ranges end at its last checkpoint, the survivor's
    # ranges go on from there.
    for partition, (checkpoint, _) in handover.held.items():
        spans = [(first, last, owner) for first, last, owner, _ in ranges[partition]]
        assert {owner for *_, owner in spans} <= {survivor_name, victim_name}
        assert all(last <= checkpoint for _, last, owner in spans if owner == victim_name)
        assert any(first > checkpoint for first, _, owner in spans if owner == survivor_name)


# -- two API processes of their own --------------------------------------------------------


def test_two_herald_api_processes_started_together_on_a_fresh_database_both_serve(
    tmp_path: Path,
) -> None:
    # Two `herald api` on two ports (two hosts, say): both make the first start's workspace;
    # one finds the other's (it exited with "workspace 'default' already exists" before).
    batch = [event("page_view", f"anon-{number}", {}) for number in range(20)]
    with deployment(tmp_path) as herald:
        ports = free_port(), free_port()
        apis = [herald.api(port=port, wait=False) for port in ports]
        poll_until(
            lambda: all([herald.ready(api, port) for api, port in zip(apis, ports, strict=True)]),
            what="both API processes answer /readyz",
            attempts=RESTART_POLLS,
        )
        answers = [
            httpx.post(
                f"http://127.0.0.1:{port}/api/events/batch/",
                json={"batch": batch},
                headers=auth(WRITE_KEY),
            ).json()
            for port in ports
        ]
        workspaces = query(herald, "SELECT name FROM workspaces")

    assert workspaces == [("default",)]
    assert [(answer["accepted"], answer["duplicates"]) for answer in answers] == [(20, 0), (0, 20)]
