"""The client against the real `herald serve` on 127.0.0.1: what it sends is what Herald stores,
in order, once; Herald's refusals reach the caller; batches Herald finds too large are split."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from herald_client import Client, Config, Rejection

from tests.e2e.conftest import ADMIN_KEY, Herald, Server, Servers, auth, herald_env
from tests.sdk.conftest import WRITE_KEY, HeraldReader

pytestmark = pytest.mark.slow


def new_customer() -> str:
    return str(uuid.uuid4()).upper()


def test_identify_then_track_make_one_identified_customer_with_events_in_order(
    herald_server: Server,
) -> None:
    customer, email = new_customer(), f"{uuid.uuid4().hex}@youremail.com"

    with Client(WRITE_KEY, host=herald_server.url) as client:
        identify = client.identify(customer, email, {"plan": "pro"})
        purchases = [client.track(customer, "purchase", {"n": n}) for n in range(3)]

    found = HeraldReader(herald_server.url).processed_customer(email, events=5)
    assert found["attributes"] == {"email": email, "plan": "pro"}
    assert found["identifiers"] == [customer]
    events = [record["event"] for record in found["events"]]
    assert [event["event"] for event in events] == ["$identify", "$set", *["purchase"] * 3]
    assert [events[0]["uuid"], *(event["uuid"] for event in events[2:])] == [identify, *purchases]
    assert [record["outcome"] for record in found["events"]][0] == "identified"


def test_close_sends_everything_queued(herald_server: Server) -> None:
    customer = new_customer()
    config = Config(max_batch_events=500, flush_interval_s=60)  # only full batches and close()

    client = Client(WRITE_KEY, host=herald_server.url, config=config)
    sent = [client.track(customer, "page_view", {"n": n}) for n in range(5_250)]
    assert client.close()

    stored = HeraldReader(herald_server.url).events(customer)
    assert [event["uuid"] for event in stored] == sent
    assert client.stats().sent == 5_250


def test_rejected_events_reach_the_callback_with_index_field_and_reason(
    herald_server: Server,
) -> None:
    declared = httpx.post(
        f"{herald_server.url}/api/schema/attributes",
        json={"name": "sdk_age", "type": "number"},
        headers=auth(ADMIN_KEY),
    )
    assert declared.status_code in (200, 201), declared.text
    customer = new_customer()
    rejections: list[Rejection] = []

    with Client(WRITE_KEY, host=herald_server.url, on_rejected=rejections.extend) as client:
        good = client.track(customer, "purchase")
        bad = client.set(customer, {"sdk_age": "old"})
        after = client.track(customer, "purchase")
        assert client.flush(timeout_s=30)
        stats = client.stats()

    assert [(r.uuid, r.event, r.correlation_value, r.index) for r in rejections] == [
        (bad, "$set", customer, 1)
    ]
    assert rejections[0].field == "payload.sdk_age"
    assert "number" in rejections[0].message
    stored = HeraldReader(herald_server.url).events(customer)
    assert [event["uuid"] for event in stored] == [good, after]
    assert (stats.sent, stats.rejected) == (2, 1)


@pytest.fixture(scope="module")
def small_herald(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A `herald serve` taking at most 3 events and 2,000 bytes per request (413 past that)."""
    home = tmp_path_factory.mktemp("small-herald")
    env = herald_env(
        home / "herald.db",
        HERALD_BOOTSTRAP_API_KEY=WRITE_KEY,
        HERALD_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
        HERALD_MAX_BATCH_EVENTS="3",
        HERALD_MAX_BODY_BYTES="2000",
    )
    logs: Path = home / "logs"
    logs.mkdir()
    with Servers(logs) as servers:
        yield servers.start(Herald(home, home / "herald.db", env))


def test_a_batch_herald_finds_too_large_is_split_until_it_fits(
    small_herald: Server, caplog: pytest.LogCaptureFixture
) -> None:
    customer = new_customer()
    config = Config(max_batch_events=10, flush_interval_s=60)

    with caplog.at_level(logging.INFO, logger="herald_client"):
        with Client(WRITE_KEY, host=small_herald.url, config=config) as client:
            sent = [client.track(customer, "purchase", {"n": n}) for n in range(10)]
            assert client.flush(timeout_s=30)
            later = [client.track(customer, "purchase", {"n": n}) for n in range(10, 13)]

    stored = HeraldReader(small_herald.url).events(customer)
    assert [event["uuid"] for event in stored] == sent + later
    stats = client.stats()
    assert (stats.sent, stats.failed, stats.rejected) == (13, 0, 0)
    splits = [record.message for record in caplog.records if "(413); splitting" in record.message]
    assert [message.split(" events (")[0][-2:] for message in splits] == ["10", " 5"]


def test_an_event_too_large_on_its_own_is_rejected(small_herald: Server) -> None:
    customer = new_customer()
    rejections: list[Rejection] = []

    with Client(WRITE_KEY, host=small_herald.url, on_rejected=rejections.extend) as client:
        small = client.track(customer, "purchase")
        large = client.track(customer, "upload", {"blob": "x" * 2_500})
        assert client.flush(timeout_s=30)

    assert [(r.uuid, r.index, r.field) for r in rejections] == [(large, 0, None)]
    assert "HTTP 413 payload_too_large" in rejections[0].message
    assert [event["uuid"] for event in HeraldReader(small_herald.url).events(customer)] == [small]
