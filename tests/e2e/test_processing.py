"""Processing with real processes: `herald serve` and its embedded processor, `herald processor`
run apart (HERALD_EMBEDDED_PROCESSOR=0), `herald status`, and the customers API on the result.

The seeds end to end; a processor killed with SIGKILL three times in the middle of a 60,000-event
backlog with merges, checked against the customers the events define; two processors on one
database (order per customer, no log range processed twice); leases moving off a killed
processor; clean stops. Every wait polls something a user can observe (`herald status --json`,
GET /metrics, a customer read) until it holds or a deadline passes; the state is also read
straight from `<db>.state`. Processor processes are killed at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.core.events import IDENTIFY, PARTITIONS, SET
from tests.e2e.conftest import (
    ADMIN_KEY,
    EXIT_TIMEOUT_S,
    POLL_INTERVAL_S,
    WRITE_KEY,
    Herald,
    Server,
    Servers,
    auth,
    interleave,
    poll_until,
)

pytestmark = pytest.mark.slow

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SEED_CUSTOMER = "FBBBCB26-B75E-4342-B40B-568BF879F7C5"
SEED_EMAIL = "example@youremail.com"
STATUS_POLLS = 200  # x (POLL_INTERVAL_S + one `herald status` run, ~0.3 s): about a minute
REQUEST_TIMEOUT_S = 30.0
MAX_PAGES = 1_000

Event = dict[str, Any]
Batch = list[Event]


# -- processes ----------------------------------------------------------------------------


@dataclass
class Worker:
    """One `herald processor` process; its output goes to files, so reading never blocks."""

    process: subprocess.Popen[bytes]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def owns(self, owner: str) -> bool:
        """Whether a partition `owner` (host:pid:random) names this process."""
        return f":{self.process.pid}:" in owner

    def kill(self) -> int:
        """SIGKILL (a crash: no shutdown code runs) and reap it."""
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=EXIT_TIMEOUT_S)

    def terminate(self) -> int:
        """SIGTERM, as a supervisor stops it, and wait for it to exit."""
        self.process.terminate()
        return self.process.wait(timeout=EXIT_TIMEOUT_S)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=EXIT_TIMEOUT_S)
        if self.process.stdin is not None:
            self.process.stdin.close()


@dataclass
class Workers:
    """Starts `herald processor` processes and remembers them, so teardown can kill every one."""

    logs: Path
    started: list[Worker] = field(default_factory=list)

    def start(self, herald: Herald, *args: str, stdin_pipe: bool = False) -> Worker:
        stderr_path = self.logs / f"processor-{len(self.started)}.err"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "herald", "processor", *args],
                env=herald.env,
                cwd=herald.home,
                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        worker = Worker(process, stderr_path)
        self.started.append(worker)
        return worker


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    logs = tmp_path / "processor-logs"
    logs.mkdir()
    workers = Workers(logs)
    yield workers
    with contextlib.ExitStack() as stops:  # every stop runs, even if one of them fails
        for worker in workers.started:
            stops.callback(worker.stop)


def apart(herald: Herald, *, lease_s: str) -> Herald:
    """`herald` with serve's embedded processor off, leaving processing to `herald processor`."""
    return herald.with_settings(HERALD_EMBEDDED_PROCESSOR="0", HERALD_PROCESSOR_LEASE_S=lease_s)


# -- what a user observes -----------------------------------------------------------------


def status(herald: Herald) -> list[dict[str, Any]]:
    """`herald status --json`: one object per partition."""
    result = herald.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    partitions: list[dict[str, Any]] = json.loads(result.stdout)
    return partitions


def behind(partitions: list[dict[str, Any]]) -> int:
    return sum(partition["behind_events"] for partition in partitions)


def processed(partitions: list[dict[str, Any]]) -> int:
    return sum(partition["processed"] for partition in partitions)


def owners(partitions: list[dict[str, Any]]) -> Counter[str | None]:
    """How many partitions each owner holds (None: nobody's)."""
    return Counter(partition["owner"] for partition in partitions)


def wait_processed(herald: Herald, total: int) -> None:
    """Poll `herald status --json` until `total` events are processed and none is behind."""

    def caught_up() -> bool:
        partitions = status(herald)
        return behind(partitions) == 0 and processed(partitions) == total

    poll_until(caught_up, what=f"{total} events processed", attempts=STATUS_POLLS)


def metrics_processed(server: Server) -> int:
    """herald_processor_processed_events of GET /metrics (much quicker to poll than the CLI)."""
    text = httpx.get(f"{server.url}/metrics", timeout=REQUEST_TIMEOUT_S).text
    found = re.search(r"^herald_processor_processed_events (\S+)$", text, re.MULTILINE)
    assert found is not None, text
    return int(float(found.group(1)))


def admin_client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=auth(ADMIN_KEY), timeout=REQUEST_TIMEOUT_S)


def send(server: Server, batches: list[Batch]) -> None:
    """POST each batch in turn (so the log holds them in this order); all must be accepted."""
    with httpx.Client(
        base_url=server.url, headers=auth(WRITE_KEY), timeout=REQUEST_TIMEOUT_S
    ) as client:
        for batch in batches:
            response = client.post("/api/events/batch/", json={"batch": batch})
            assert response.status_code == 201, response.text
            assert response.json()["accepted"] == len(batch), response.text


def pages(client: httpx.Client, path: str, items: str, limit: int) -> list[dict[str, Any]]:
    """Every item of a paged GET, following next_cursor."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page[items])
        cursor = page["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError(f"GET {path} still had a next_cursor after {MAX_PAGES} pages")


def customers(client: httpx.Client, *, limit: int = 1_000) -> list[dict[str, Any]]:
    return pages(client, "/api/customers", "customers", limit)


def customer_events(client: httpx.Client, customer_id: str) -> list[dict[str, Any]]:
    return pages(client, f"/api/customers/{customer_id}/events", "events", 1_000)


def read_only(database: Path) -> contextlib.closing[sqlite3.Connection]:
    """A read-only connection to one of Herald's SQLite files (the log, or `<db>.state`)."""
    return contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True))


def state_of(herald: Herald) -> Path:
    return herald.database.with_name(herald.database.name + ".state")


# -- 1. the seeds, end to end -------------------------------------------------------------


def seed_batch(name: str, containing: str) -> Batch:
    """The first JSON example of a seed document that is a batch and mentions `containing`."""
    text = (SEEDS / name).read_text()
    decoder = json.JSONDecoder()
    for start in (match.start() for match in re.finditer(r"\{", text)):
        with contextlib.suppress(json.JSONDecodeError):
            example, _ = decoder.raw_decode(text, start)
            if "batch" in example and containing in json.dumps(example):
                batch: Batch = example["batch"]
                return batch
    raise AssertionError(f"{name} has no batch example mentioning {containing!r}")


FIVE_EVENTS = seed_batch("events-batch-guide.txt", "item_to_cart")
IDENTIFY_THEN_TRIGGER = seed_batch("events-batch-api-reference.txt", "trigger_some_message")


def read_customer(client: httpx.Client, primary_key: str) -> httpx.Response:
    return client.post("/api/customers/read", json={"primary_key": primary_key})


def test_the_seeds_hold_the_batches_these_tests_send() -> None:
    assert [sent["event"] for sent in FIVE_EVENTS] == [
        "purchase",
        "agree_to_marketing",
        "onboarding_started",
        "onboarding_started",
        "item_to_cart",
    ]
    assert [sent["event"] for sent in IDENTIFY_THEN_TRIGGER] == [
        "$identify",
        "trigger_some_message",
    ]


def test_the_guides_five_events_make_one_customer_holding_them_in_order(
    server: Server, herald: Herald
) -> None:
    send(server, [FIVE_EVENTS])

    wait_processed(herald, len(FIVE_EVENTS))  # by serve's embedded processor

    with admin_client(server) as client:
        [customer] = customers(client)
        events = customer_events(client, customer["id"])
    assert customer["identifiers"] == [SEED_CUSTOMER]
    assert [item["event"]["uuid"].upper() for item in events] == [
        sent["uuid"] for sent in FIVE_EVENTS
    ]
    assert [item["outcome"] for item in events] == ["created"] + ["attributed"] * 4


def test_identify_then_trigger_makes_one_identified_customer_holding_both_events(
    server: Server,
) -> None:
    send(server, [IDENTIFY_THEN_TRIGGER])

    with admin_client(server) as client:
        poll_until(
            lambda: read_customer(client, SEED_EMAIL).status_code == 200,
            what=f"customer {SEED_EMAIL} readable",
            attempts=STATUS_POLLS,
        )
        customer = read_customer(client, SEED_EMAIL).json()
        events = customer_events(client, customer["id"])
        listed = customers(client)
    assert customer["attributes"] == {"email": SEED_EMAIL}
    assert customer["identifiers"] == [SEED_CUSTOMER]
    assert [item["event"]["event"] for item in events] == ["$identify", "trigger_some_message"]
    assert [item["outcome"] for item in events] == ["identified", "attributed"]
    assert [item["id"] for item in listed] == [customer["id"]]


def test_identify_after_the_guides_events_identifies_the_same_customer(
    server: Server, herald: Herald
) -> None:
    send(server, [FIVE_EVENTS, IDENTIFY_THEN_TRIGGER])

    wait_processed(herald, len(FIVE_EVENTS) + len(IDENTIFY_THEN_TRIGGER))

    with admin_client(server) as client:
        customer = read_customer(client, SEED_EMAIL).json()
        events = customer_events(client, customer["id"])
        listed = customers(client)
    assert customer["identifiers"] == [SEED_CUSTOMER]
    assert [item["id"] for item in listed] == [customer["id"]]
    assert [item["event"]["event"] for item in events] == [
        *(sent["event"] for sent in FIVE_EVENTS),
        "$identify",
        "trigger_some_message",
    ]
    assert [item["outcome"] for item in events] == [
        "created",
        *["attributed"] * 4,
        "identified",
        "attributed",
    ]


# -- 2. processors killed -9 in the middle of a backlog ------------------------------------

ANONYMOUS_IDS = 5_000
EVENTS_PER_ID = 24  # ~121,000 events: several processing steps, so each kill lands inside one
KNOWN_ONLY_EMAILS = 100  # customers only ever addressed by email (correlationKey "email")
BACKLOG_BATCH_EVENTS = 1_000
KILL_AT = (0.15, 0.35, 0.55)  # kill -9 once this share of the backlog is processed
MIDDLE = (0.1, 0.9)  # ... and the share processed at each kill must lie in between
API_SAMPLE = 30  # merged customers (three anonymous ids each) read back through the API


@dataclass
class Expected:
    """One customer as the events sent define it, whatever order partitions ran in."""

    identifiers: set[str] = field(default_factory=set)
    attributes: dict[str, Any] = field(default_factory=dict)
    uuids: set[str] = field(default_factory=set)

    def summary(self) -> str:
        return f"{sorted(self.identifiers)} {self.attributes} with {len(self.uuids)} events"


@dataclass(frozen=True)
class Backlog:
    batches: list[Batch]
    expected: dict[str, Expected]  # by name: the primary key (email) if any, else the `_id`
    conflicts: int  # `$identify` events of an identified customer to another email

    @property
    def events(self) -> int:
        return sum(len(batch) for batch in self.batches)


def email_number(number: int) -> int | None:
    """Which email anonymous id `number` identifies as: in threes, in pairs, alone, or never.

    Ids sharing an email are merged into one customer; `slot_of` numbers them within it.
    """
    if number < 1_500:
        return number // 3
    if number < 2_700:
        return 500 + (number - 1_500) // 2
    if number < 3_500:
        return 1_100 + number - 2_700
    return None


EMAILS = 1_900  # email_number() of every id below 3_500


def user_email(number: int) -> str:
    return f"user-{number}@example.com"


def slot_of(number: int) -> int:
    if number < 1_500:
        return number % 3
    if number < 2_700:
        return (number - 1_500) % 2
    return 0


def anonymous_events(number: int, rng: random.Random) -> tuple[str, str | None, list[Event]]:
    """One anonymous id's events in send order: page views, `$set`s, and its `$identify`s.

    Some ids identify twice to their email (no effect), some then to another one (a conflict:
    an identified customer is never merged into another).
    """
    anonymous_id = f"anon-{number:05d}"
    email_index, slot = email_number(number), slot_of(number)
    last = EVENTS_PER_ID - 1
    identifies: dict[int, str] = {}
    if email_index is not None:
        identifies[rng.randrange(last)] = user_email(email_index)
        if number % 7 == 0:
            identifies[last] = user_email(email_index)
        elif number % 7 == 1:
            identifies[last] = user_email((email_index + 1) % EMAILS)
    events = []
    for index in range(EVENTS_PER_ID):
        payload: dict[str, Any]
        if index in identifies:
            name, payload = IDENTIFY, {"distinct_id": identifies[index]}
        elif index % 3 == 2:
            name, payload = SET, {f"device_{slot}": f"{anonymous_id}/{index}", f"n_{slot}": index}
        else:
            name, payload = "page_view", {"index": index}
        events.append(event(name, "_id", anonymous_id, payload))
    email = user_email(email_index) if email_index is not None else None
    return anonymous_id, email, events


def event(name: str, key: str, value: str, payload: dict[str, Any]) -> Event:
    return {
        "event": name,
        "source": "custom",
        "correlationKey": key,
        "correlationValue": value,
        "uuid": str(uuid.uuid4()),
        "payload": payload,
    }


def identity_backlog(seed: int = 20_240_315) -> Backlog:
    """ANONYMOUS_IDS ids sending interleaved, with merges: ids of one email identify to it one
    after another, and some emails also get events addressed by email (correlationKey email)."""
    rng = random.Random(seed)
    expected: dict[str, Expected] = {}
    streams: list[list[Event]] = []
    conflicts = 0
    for number in range(ANONYMOUS_IDS):
        anonymous_id, email, events = anonymous_events(number, rng)
        customer = expected.setdefault(email or anonymous_id, Expected())
        customer.identifiers.add(anonymous_id)
        customer.attributes.update({"email": email} if email else {})
        for sent in events:
            customer.uuids.add(sent["uuid"])
            if sent["event"] == SET:
                customer.attributes.update(sent["payload"])
            if sent["event"] == IDENTIFY and sent["payload"]["distinct_id"] != email:
                conflicts += 1
        streams.append(events)
    emails = [user_email(number) for number in range(0, EMAILS, 4)]
    emails += [f"known-{number}@example.com" for number in range(KNOWN_ONLY_EMAILS)]
    for email in emails:
        purchases = [event("purchase", "email", email, {"order": order}) for order in range(2)]
        customer = expected.setdefault(email, Expected(attributes={"email": email}))
        customer.uuids.update(sent["uuid"] for sent in purchases)
        streams.append(purchases)
    ordered = interleave(streams, rng)
    batches = [
        ordered[start : start + BACKLOG_BATCH_EVENTS]
        for start in range(0, len(ordered), BACKLOG_BATCH_EVENTS)
    ]
    return Backlog(batches, expected, conflicts)


@dataclass(frozen=True)
class Processed:
    """What processing left in `<db>.state`, read straight from the files."""

    live: dict[int, dict[str, Any]]  # customer id -> attributes
    merged_into: dict[int, int]
    public_ids: dict[int, str]  # customer id -> the UUID the API shows
    identifiers: dict[str, list[int]]  # `_id` value -> the customers holding it
    email_keys: dict[str, list[int]]  # primary-key value -> the customers the key index names
    keys_of_merged: int  # customer_keys rows still pointing at merged customers
    record_customers: dict[int, int]  # event record id -> customer id
    outcomes: Counter[str]
    logged_ids: dict[int, str]  # event record id (seq << 24 | index) -> the event's uuid


def read_processed(herald: Herald) -> Processed:
    with read_only(state_of(herald)) as state:
        rows = state.execute("SELECT id, attributes, merged_into, uuid FROM customers").fetchall()
        keys: dict[str, dict[str, list[int]]] = {"_id": {}, "email": {}}
        for name, value, customer_id in state.execute(
            "SELECT name, value, customer_id FROM customer_keys ORDER BY customer_id"
        ):
            keys[name].setdefault(value, []).append(customer_id)
        (keys_of_merged,) = state.execute(
            "SELECT count(*) FROM customer_keys WHERE customer_id IN"
            " (SELECT id FROM customers WHERE merged_into IS NOT NULL)"
        ).fetchone()
        records = state.execute("SELECT id, customer_id, outcome FROM event_records").fetchall()
    with read_only(herald.database) as log:
        logged_ids = {
            seq << 24 | index: str(uuid.UUID(bytes=ids[index * 16 : index * 16 + 16]))
            for seq, count, ids in log.execute("SELECT seq, count, ids FROM event_batches")
            for index in range(count)
        }
    return Processed(
        live={row[0]: json.loads(row[1]) for row in rows if row[2] is None},
        merged_into={row[0]: row[2] for row in rows if row[2] is not None},
        public_ids={row[0]: str(uuid.UUID(bytes=row[3])) for row in rows},
        identifiers=keys["_id"],
        email_keys=keys["email"],
        keys_of_merged=keys_of_merged,
        record_customers={record_id: customer_id for record_id, customer_id, _ in records},
        outcomes=Counter(outcome for _, _, outcome in records),
        logged_ids=logged_ids,
    )


def as_expected(result: Processed) -> dict[str, Expected]:
    """The live customers in the form of `Backlog.expected` (ids renamed away)."""
    found: dict[int, Expected] = {
        customer_id: Expected(attributes=attributes)
        for customer_id, attributes in result.live.items()
    }
    for value, holders in result.identifiers.items():
        for customer_id in holders:
            found[customer_id].identifiers.add(value)
    for record_id, customer_id in result.record_customers.items():
        found[follow(result.merged_into, customer_id)].uuids.add(result.logged_ids[record_id])
    return {
        str(customer.attributes.get("email") or min(customer.identifiers, default="?")): customer
        for customer in found.values()
    }


@pytest.fixture(scope="module")
def backlog() -> Backlog:
    return identity_backlog()


@pytest.mark.parametrize("running", [1, 2], ids=["one-processor", "two-processors"])
def test_processors_killed_in_the_middle_of_a_backlog_leave_no_duplicate(
    herald: Herald, servers: Servers, workers: Workers, backlog: Backlog, running: int
) -> None:
    herald = apart(herald, lease_s="1")
    server = servers.start(herald)
    send(server, backlog.batches)
    before = status(herald)
    total = backlog.events

    live = [workers.start(herald) for _ in range(running)]
    kills = [0]  # events processed when each kill came
    for share in KILL_AT:
        # Past the share, and past the last kill: a processor that started since is mid-step.
        kills.append(wait_metrics_processed(server, max(round(share * total), kills[-1] + 1)))
        assert live.pop(0).kill() == -signal.SIGKILL
        live.append(workers.start(herald))
    wait_processed(herald, total)
    result = read_processed(herald)
    exit_codes = [worker.terminate() for worker in live]

    assert behind(before) == total and set(owners(before)) == {None}  # serve left them alone
    low, high = (round(share * total) for share in MIDDLE)
    assert all(low <= count <= high for count in kills[1:]), f"killed at {kills} of {total}"
    assert exit_codes == [0] * running
    assert "Traceback" not in "".join(worker.stderr() for worker in workers.started)
    assert_processed_once_and_merged(result, backlog)
    assert_customers_api_agrees(server, result, backlog)


def wait_metrics_processed(server: Server, count: int) -> int:
    """Poll GET /metrics until at least `count` events are processed, and return how many (the
    CLI is too slow to catch processors in the middle of the backlog)."""
    seen = [0]

    def reached() -> bool:
        seen[0] = metrics_processed(server)
        return seen[0] >= count

    poll_until(reached, what=f"{count} events processed", attempts=round(30 / POLL_INTERVAL_S))
    return seen[0]


def assert_processed_once_and_merged(result: Processed, backlog: Backlog) -> None:
    # Every event recorded exactly once: one record per (seq, index) of the log.
    assert len(result.logged_ids) == backlog.events
    assert result.record_customers.keys() == result.logged_ids.keys()
    assert result.outcomes["conflict"] == backlog.conflicts, result.outcomes
    # No customer duplicated: an identifier, a primary key, each on one live customer.
    shared = sorted(value for value, ids in result.identifiers.items() if len(ids) != 1)
    assert shared == [], f"{len(shared)} identifiers on several customers, e.g. {shared[:3]}"
    on_merged = {value for value, [owner] in result.identifiers.items() if owner not in result.live}
    assert on_merged == set()
    emails: dict[str, list[int]] = {}
    for customer_id, attributes in sorted(result.live.items()):
        if "email" in attributes:
            emails.setdefault(attributes["email"], []).append(customer_id)
    twice = sorted(email for email, ids in emails.items() if len(ids) > 1)
    assert twice == [], f"{len(twice)} emails on several live customers, e.g. {twice[:3]}"
    stale = sorted(email for email, ids in result.email_keys.items() if emails.get(email) != ids)
    assert stale == [], f"the key index disagrees on {len(stale)} emails, e.g. {stale[:3]}"
    # Merges complete: a merged customer keeps no identifier and leads to a live customer.
    assert result.keys_of_merged == 0
    assert result.merged_into and all(
        follow(result.merged_into, customer_id) in result.live for customer_id in result.merged_into
    )
    recorded_on = set(result.record_customers.values())
    assert recorded_on <= result.live.keys() | result.merged_into.keys()
    # And the customers are what the events say, up to their ids.
    found = as_expected(result)
    missing = sorted(backlog.expected.keys() - found.keys())
    extra = sorted(found.keys() - backlog.expected.keys())
    assert (missing[:5], extra[:5]) == ([], []), f"{len(missing)} missing, {len(extra)} extra"
    wrong = [name for name, customer in backlog.expected.items() if found[name] != customer]
    assert wrong == [], (
        f"{len(wrong)} customers differ, e.g. {wrong[0]}:\n"
        f"found    {found[wrong[0]].summary()}\nexpected {backlog.expected[wrong[0]].summary()}"
    )


def assert_customers_api_agrees(server: Server, result: Processed, backlog: Backlog) -> None:
    """Merged customers as the API shows them: read by email, their events in commit order."""
    record_of = {uuid: record_id for record_id, uuid in result.logged_ids.items()}
    with admin_client(server) as client:
        for email in (user_email(number) for number in range(API_SAMPLE)):
            read = read_customer(client, email)
            assert read.status_code == 200, read.text
            customer, expected = read.json(), backlog.expected[email]
            uuids = [item["event"]["uuid"] for item in customer_events(client, customer["id"])]
            assert set(customer["identifiers"]) == expected.identifiers
            assert customer["attributes"] == expected.attributes
            assert sorted(uuids) == sorted(expected.uuids)
            assert uuids == sorted(uuids, key=record_of.__getitem__)
        merged_id, into_id = next(iter(result.merged_into.items()))
        merged = client.get(f"/api/customers/{result.public_ids[merged_id]}")
    assert merged.status_code == 200, merged.text
    assert merged.json()["id"] == result.public_ids[follow(result.merged_into, into_id)]


def follow(merged_into: dict[int, int], customer_id: int) -> int:
    """The customer `customer_id` became, through its merges."""
    for _ in range(16):
        if customer_id not in merged_into:
            break
        customer_id = merged_into[customer_id]
    return customer_id


# -- 3. two processors on one database: order per customer, no range processed twice -------

ORDER_VALUES = 160
ORDER_BATCHES = 8  # half sent before the second processor starts, half after it has its share
SETS_PER_BATCH = 5  # `$set {n}` events per correlation value and batch


def numbered_sets(values: list[str], batch_number: int) -> Batch:
    """`$set {"n": n}` for each value, n counting up across batches, values interleaved."""
    first = batch_number * SETS_PER_BATCH
    return [
        event(SET, "_id", value, {"n": n})
        for n in range(first, first + SETS_PER_BATCH)
        for value in values
    ]


def processing_ranges(herald: Herald) -> dict[int, list[tuple[int, int, str]]]:
    """processing_log: per partition, the (from_seq, to_seq, owner) ranges by from_seq."""
    with read_only(state_of(herald)) as state:
        rows = state.execute(
            "SELECT partition, from_seq, to_seq, owner FROM processing_log ORDER BY from_seq"
        ).fetchall()
    ranges: dict[int, list[tuple[int, int, str]]] = {}
    for partition, first, last, owner in rows:
        ranges.setdefault(partition, []).append((first, last, owner))
    return ranges


def logged_seqs(herald: Herald) -> dict[int, list[int]]:
    """The event log's record batches: per partition, their seqs."""
    with read_only(herald.database) as log:
        rows = log.execute("SELECT partition, seq FROM event_batches ORDER BY seq").fetchall()
    seqs: dict[int, list[int]] = {}
    for partition, seq in rows:
        seqs.setdefault(partition, []).append(seq)
    return seqs


def wait_owners(herald: Herald, wanted: dict[str, int], what: str) -> None:
    """Poll `herald status --json` until the live owners hold exactly `wanted` partitions."""

    def holds() -> bool:
        return dict(owners(status(herald))) == wanted

    poll_until(holds, what=what, attempts=STATUS_POLLS)


def owner_of(herald: Herald, worker: Worker) -> str:
    """The name `worker` holds partitions under (`herald status` shows it as the owner)."""
    names: list[str] = []

    def named() -> bool:
        names[:] = [name for name in owners(status(herald)) if name and worker.owns(name)]
        return bool(names)

    poll_until(
        named, what=f"processor {worker.process.pid} holds a partition", attempts=STATUS_POLLS
    )
    return names[0]


def test_two_processors_apply_each_customers_events_in_send_order(
    herald: Herald, servers: Servers, workers: Workers
) -> None:
    herald = apart(herald, lease_s="2")
    server = servers.start(herald)
    values = [f"order-{number:03d}" for number in range(ORDER_VALUES)]
    batches = [numbered_sets(values, number) for number in range(ORDER_BATCHES)]
    half = ORDER_BATCHES // 2
    first = workers.start(herald)
    first_name = owner_of(herald, first)
    wait_owners(herald, {first_name: PARTITIONS}, "the first processor holds every partition")
    send(server, batches[:half])

    second = workers.start(herald)
    second_name = owner_of(herald, second)
    share = PARTITIONS // 2
    wait_owners(herald, {first_name: share, second_name: share}, "the processors share")
    send(server, batches[half:])
    wait_processed(herald, sum(len(batch) for batch in batches))

    with admin_client(server) as client:
        listed = customers(client, limit=50)
        histories = {
            customer["identifiers"][0]: customer_events(client, customer["id"])
            for customer in listed
        }
    sent_n = list(range(ORDER_BATCHES * SETS_PER_BATCH))
    applied_n = {
        value: [item["event"]["payload"]["n"] for item in history]
        for value, history in histories.items()
    }
    outcomes = {
        value: [item["outcome"] for item in history] for value, history in histories.items()
    }
    assert sorted(histories) == values
    assert [customer["attributes"] for customer in listed] == [{"n": sent_n[-1]}] * ORDER_VALUES
    assert applied_n == dict.fromkeys(values, sent_n)
    assert outcomes == dict.fromkeys(values, ["created"] + ["attributed"] * (len(sent_n) - 1))
    assert_ranges_cover_the_log_once(herald)
    owners_seen = {owner for ranges in processing_ranges(herald).values() for *_, owner in ranges}
    assert owners_seen == {first_name, second_name}


def assert_ranges_cover_the_log_once(herald: Herald) -> None:
    """processing_log: per partition, ranges that never overlap and cover every record batch."""
    ranges = processing_ranges(herald)
    for partition, seqs in logged_seqs(herald).items():
        spans = ranges.get(partition, [])
        overlapping = [
            (before, after)
            for before, after in zip(spans, spans[1:], strict=False)
            if after[0] <= before[1]
        ]
        assert overlapping == [], f"partition {partition}"
        uncovered = [seq for seq in seqs if not any(low <= seq <= high for low, high, _ in spans)]
        assert uncovered == [], f"partition {partition}"


# -- 4. a killed processor's partitions move to the one left -------------------------------

LEASE_S = 2.0
TAKEOVER_VALUES = 256  # enough correlation values to land in every partition


def test_a_killed_processors_partitions_move_to_the_other_within_the_lease(
    herald: Herald, servers: Servers, workers: Workers
) -> None:
    herald = apart(herald, lease_s=str(LEASE_S))
    server = servers.start(herald)
    values = [f"late-{number:03d}" for number in range(TAKEOVER_VALUES)]
    survivor, victim = workers.start(herald), workers.start(herald)
    survivor_name, victim_name = owner_of(herald, survivor), owner_of(herald, victim)
    share = PARTITIONS // 2
    wait_owners(herald, {survivor_name: share, victim_name: share}, "the processors share")
    send(server, [[event("signed_up", "_id", value, {}) for value in values]])
    wait_processed(herald, TAKEOVER_VALUES)

    victim.kill()
    killed_at = time.monotonic()
    wait_owners(herald, {survivor_name: PARTITIONS}, "the survivor holds every partition")
    moved_after_s = time.monotonic() - killed_at
    send(server, [[event("purchase", "_id", value, {}) for value in values]])
    wait_processed(herald, 2 * TAKEOVER_VALUES)

    # The lease runs out, the survivor renews (every third of the lease), `status` shows it.
    assert moved_after_s < 2 * LEASE_S, f"took {moved_after_s:.1f} s"
    assert len(logged_seqs(herald)) == PARTITIONS  # events in every partition, both times
    with admin_client(server) as client:
        listed = customers(client)
        histories = [customer_events(client, customer["id"]) for customer in listed]
    assert len(listed) == TAKEOVER_VALUES
    assert {tuple(item["outcome"] for item in history) for history in histories} == {
        ("created", "attributed")
    }
    assert_ranges_cover_the_log_once(herald)


def process_state(pid: int) -> str:
    """A process's state letter (Linux /proc): R running, S sleeping, T stopped, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def write_locked(database: Path) -> bool:
    """Whether some process holds the write lock of a SQLite file right now."""
    with contextlib.closing(sqlite3.connect(database, timeout=0, isolation_level=None)) as conn:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        conn.execute("ROLLBACK")
        return False


def pause(worker: Worker, herald: Herald) -> None:
    """SIGSTOP a processor between two of its transactions, as a long GC pause, a frozen VM or
    a starved CPU stops it (stopped inside one, it would block every other processor)."""
    for _ in range(100):
        worker.process.send_signal(signal.SIGSTOP)
        poll_until(lambda: process_state(worker.process.pid) == "T", what="processor stopped")
        if not write_locked(state_of(herald)):
            return
        worker.process.send_signal(signal.SIGCONT)
    raise AssertionError("the processor always held the state database's write lock")


PAUSED_VALUES = 64


def test_a_processor_paused_past_its_lease_does_not_use_what_it_knew_before(
    herald: Herald, servers: Servers, workers: Workers
) -> None:
    herald = apart(herald, lease_s="1")
    server = servers.start(herald)
    values = [f"paused-{number:02d}" for number in range(PAUSED_VALUES)]
    emails = [f"{value}@example.com" for value in values]
    first = workers.start(herald)
    send(server, [[event("page_view", "_id", value, {}) for value in values]])
    send(server, [[event("signed_up", "email", email, {}) for email in emails]])
    wait_processed(herald, 2 * PAUSED_VALUES)  # the first knows each value's anonymous customer
    pause(first, herald)
    second = workers.start(herald)
    wait_owners(herald, {owner_of(herald, second): PARTITIONS}, "the second holds every partition")
    identifies = [
        event(IDENTIFY, "_id", value, {"distinct_id": email})
        for value, email in zip(values, emails, strict=True)
    ]
    send(server, [identifies])
    wait_processed(herald, 3 * PAUSED_VALUES)  # the second merged them into the emails' customers
    assert second.terminate() == 0  # and handed every partition back

    first.process.send_signal(signal.SIGCONT)
    wait_owners(herald, {owner_of(herald, first): PARTITIONS}, "the first holds every partition")
    send(server, [[event(SET, "_id", value, {"plan": "pro"}) for value in values]])
    wait_processed(herald, 4 * PAUSED_VALUES)

    with admin_client(server) as client:
        read = [read_customer(client, email).json() for email in emails]
        histories = [customer_events(client, customer["id"]) for customer in read]
    assert [customer["attributes"].get("plan") for customer in read] == ["pro"] * PAUSED_VALUES
    assert [[item["event"]["event"] for item in history] for history in histories] == [
        ["page_view", "signed_up", IDENTIFY, SET]
    ] * PAUSED_VALUES


# -- stopping a processor -----------------------------------------------------------------


def test_sigterm_stops_a_processor_and_hands_its_partitions_back_at_once(
    herald: Herald, workers: Workers
) -> None:
    herald = herald.with_settings(HERALD_PROCESSOR_LEASE_S="600")  # only a hand-back frees them
    worker = workers.start(herald)
    wait_owners(herald, {owner_of(herald, worker): PARTITIONS}, "the processor holds all")

    exit_code = worker.terminate()

    assert exit_code == 0, worker.stderr()
    assert "Traceback" not in worker.stderr()
    assert owners(status(herald)) == {None: PARTITIONS}


def test_processor_stops_when_its_stdin_closes_with_stop_on_stdin_eof(
    herald: Herald, workers: Workers
) -> None:
    herald = herald.with_settings(HERALD_PROCESSOR_LEASE_S="600")
    worker = workers.start(herald, "--stop-on-stdin-eof", stdin_pipe=True)
    wait_owners(herald, {owner_of(herald, worker): PARTITIONS}, "the processor holds all")
    assert worker.process.stdin is not None

    worker.process.stdin.close()
    exit_code = worker.process.wait(timeout=EXIT_TIMEOUT_S)

    assert exit_code == 0, worker.stderr()
    assert owners(status(herald)) == {None: PARTITIONS}


def parent_of(pid: int) -> int:
    """A process's parent pid (Linux /proc; fields after the name: state, ppid, ...)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def embedded_processor_pid(herald: Herald, server: Server) -> int:
    """The pid of the processor serve runs as its child, from the owner `herald status` shows."""
    pids: list[int] = []

    def found() -> bool:
        named = [name for name in owners(status(herald)) if name is not None]
        pids[:] = [int(name.rsplit(":", 2)[1]) for name in named]
        return len(pids) == 1

    poll_until(found, what="serve's processor holds partitions", attempts=STATUS_POLLS)
    return pids[0]


def test_serve_kill_9_stops_its_embedded_processor_too(herald: Herald, servers: Servers) -> None:
    herald = herald.with_settings(HERALD_PROCESSOR_LEASE_S="600")  # only a hand-back frees them
    server = servers.start(herald)
    child = embedded_processor_pid(herald, server)
    assert parent_of(child) == server.process.pid

    server.kill()

    poll_until(
        lambda: owners(status(herald)) == {None: PARTITIONS},
        what="the orphaned processor handed its partitions back",
        attempts=STATUS_POLLS,
    )


def test_ctrl_c_stops_serve_and_its_embedded_processor_cleanly(
    herald: Herald, servers: Servers
) -> None:
    herald = herald.with_settings(HERALD_PROCESSOR_LEASE_S="600")  # only a hand-back frees them
    server = servers.start(herald)
    embedded_processor_pid(herald, server)  # running, past its start

    exit_code = server.interrupt()

    assert (exit_code, server.stderr().count("error")) == (0, 0), server.stderr()
    assert owners(status(herald)) == {None: PARTITIONS}


def test_serve_restarts_its_embedded_processor_when_it_dies(
    herald: Herald, servers: Servers
) -> None:
    # A lease of 10 minutes: only serve handing the dead child's partitions over lets the new
    # child take them before this test times out.
    herald = herald.with_settings(HERALD_PROCESSOR_LEASE_S="600")
    server = servers.start(herald)
    child = embedded_processor_pid(herald, server)

    os.kill(child, signal.SIGKILL)
    batch = [event("signed_up", "_id", f"after-{n}", {}) for n in range(50)]
    send(server, [batch])
    wait_processed(herald, len(batch))

    assert embedded_processor_pid(herald, server) != child


# -- 5. the commands ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "mentions"),
    [("processor", "HERALD_PROCESSOR_LEASE_S"), ("status", "--json")],
)
def test_processor_and_status_explain_themselves(
    herald: Herald, command: str, mentions: str
) -> None:
    result = herald.cli(command, "--help")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: herald {command}")
    assert mentions in result.stdout


# A table row of a partition nobody processed: partition, no owner, then 0, 0, 0 and 0.0 s.
IDLE_ROW = re.compile(r"^\W*(\d+)\W+-\W+0\W+0\W+0\W+0\.0\W*$")


def test_status_on_a_fresh_database_prints_a_table_of_idle_partitions(herald: Herald) -> None:
    result = herald.cli("status")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    idle = [IDLE_ROW.match(line) for line in result.stdout.splitlines()]
    assert [row.group(1) for row in idle if row] == [str(n) for n in range(PARTITIONS)]
    assert "0 events processed; 0 behind" in result.stdout
