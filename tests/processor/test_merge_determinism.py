"""Results never depend on how events were split into batches (DESIGN §3), merges included.

Hypothesis writes a history of a few people — anonymous events from their devices, `$identify`s
with one of a few emails, `$set`s — and Herald gets it in one batch, one event per request, and
cut at random places, each into a fresh store drained at different moments. Customer ids may
differ between runs; who is who may not: every run must end with the same customers (identifiers
and attributes) and put every event on the same one with the same outcome.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from herald.processor.loop import Processor
from herald.store.sqlite import SqliteStore
from tests.processor.conftest import (
    Clock,
    Event,
    all_customers,
    an_event,
    events_of,
    send,
)

EMAILS = ["ada@example.com", "bob@example.com", "cy@example.com"]
ATTRIBUTES = ["plan", "city", "seats"]
VALUES: list[Any] = ["pro", "free", "Lyon", 3, 12, None]  # None removes the attribute

SYNCHRONOUS = "off"  # throwaway stores: no fsync, so many runs fit in a few seconds

Signature = tuple[frozenset[str], str]  # a customer, named without its id
Outcome = tuple[Signature, str, str | None]  # an event's customer, outcome and detail


@dataclass(frozen=True)
class Run:
    """How one run sends the history: where batches end, and when the processor drains."""

    cuts: tuple[int, ...]  # batch ends (indexes into the history), ascending
    drain_each_batch: bool
    max_step_events: int = 5_000


@dataclass(frozen=True)
class Result:
    customers: frozenset[Signature]
    events: dict[str, Outcome]  # uuid -> what became of it


KINDS = ["event", "identify", "set", "by_email", "set_user_id", "identify_by_user_id"]


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """2-4 people with 1-3 devices each, and what they and a backend say about them.

    People outnumber emails, so two people may claim one email: merges and conflicts both occur.
    """
    people = draw(st.integers(min_value=2, max_value=4))
    devices = [
        [f"person-{person}-device-{device}" for device in range(draw(st.integers(1, 3)))]
        for person in range(people)
    ]
    length = draw(st.integers(min_value=1, max_value=18))
    history: list[Event] = []
    for index in range(length):
        person = draw(st.integers(0, people - 1))
        device = draw(st.sampled_from(devices[person]))
        kind = draw(st.sampled_from(KINDS))
        uuid = f"00000000-0000-4000-8000-{index:012d}"
        history.append(one_event(draw, kind, person=person, device=device, uuid=uuid))
    return history


def one_event(draw: st.DrawFn, kind: str, *, person: int, device: str, uuid: str) -> Event:
    own = EMAILS[person % len(EMAILS)]
    user_id = f"user-{person}"
    match kind:
        case "identify":  # mostly the person's own email, sometimes anyone's
            distinct_id = draw(st.sampled_from([own, own, own, *EMAILS]))
            return an_event(device, "$identify", payload={"distinct_id": distinct_id}, uuid=uuid)
        case "set":
            names = draw(st.lists(st.sampled_from(ATTRIBUTES), min_size=1, max_size=2))
            payload = {name: draw(st.sampled_from(VALUES)) for name in names}
            return an_event(device, "$set", payload=payload, uuid=uuid)
        case "by_email":  # a backend event naming the person by primary key
            return an_event(own, "paid", key="email", uuid=uuid)
        case "set_user_id":  # the app learns the backend's user id
            return an_event(device, "$set", payload={"user_id": user_id}, uuid=uuid)
        case "identify_by_user_id":  # the backend identifies by its user id (another partition)
            return an_event(
                user_id, "$identify", key="user_id", payload={"distinct_id": own}, uuid=uuid
            )
    return an_event(device, "viewed", uuid=uuid)


def signature(identifiers: Sequence[str], attributes: dict[str, Any]) -> Signature:
    return frozenset(identifiers), json.dumps(attributes, sort_keys=True)


def batches(history: list[Event], cuts: tuple[int, ...]) -> list[list[Event]]:
    edges = [0, *cuts, len(history)]
    return [history[start:end] for start, end in zip(edges, edges[1:], strict=False) if end > start]


async def process(directory: Path, history: list[Event], run: Run) -> Result:
    """Send `history` as `run` says into a fresh store, drain it, and read back the customers."""
    log_path = directory / "herald.db"
    store = SqliteStore(log_path, synchronous=SYNCHRONOUS)
    await store.start()
    processor = Processor(
        log_path, synchronous=SYNCHRONOUS, clock=Clock(), max_step_events=run.max_step_events
    )
    try:
        workspace = await store.create_workspace("default")
        processor.open()
        for batch in batches(history, run.cuts):
            await send(store, workspace, batch)
            if run.drain_each_batch:
                processor.drain()
        processor.drain()
        customers = await all_customers(store, workspace)
        events: dict[str, Outcome] = {}
        for customer in customers:
            named = signature(customer.identifiers, customer.attributes)
            for event in await events_of(store, workspace, customer.id):
                events[event.event.uuid] = (named, event.outcome, event.detail)
    finally:
        processor.close()
        await store.close()
    return Result(
        frozenset(signature(customer.identifiers, customer.attributes) for customer in customers),
        events,
    )


def result_of(history: list[Event], run: Run) -> Result:
    with tempfile.TemporaryDirectory(prefix="herald-split-") as directory:
        return asyncio.run(process(Path(directory), history, run))


@settings(max_examples=25, deadline=None)
@given(history=histories(), data=st.data())
def test_customers_do_not_depend_on_how_the_events_were_split_into_batches(
    history: list[Event], data: st.DataObject
) -> None:
    inner = range(1, len(history))
    cut_points = st.sets(st.sampled_from(inner)) if inner else st.just(set[int]())
    random_cuts = tuple(sorted(data.draw(cut_points, label="cuts")))
    runs = [
        Run(cuts=(), drain_each_batch=False),  # one request, one transaction
        Run(cuts=tuple(inner), drain_each_batch=True),  # a request and a transaction per event
        Run(cuts=random_cuts, drain_each_batch=True),
        Run(cuts=random_cuts, drain_each_batch=False, max_step_events=1),  # a step per request
    ]

    reference, *others = [result_of(history, run) for run in runs]

    assert len(reference.events) == len(history)
    assert len({named for named, _, _ in reference.events.values()}) == len(reference.customers)
    for run, result in zip(runs[1:], others, strict=True):
        assert result.customers == reference.customers, run
        assert result.events == reference.events, run
