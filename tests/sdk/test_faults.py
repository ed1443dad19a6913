"""The client against a faulty Herald: a real HTTP server on 127.0.0.1 that answers 503, 401,
500 or holds a request, in front of the real `herald serve` (or answering 201 itself)."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from pathlib import Path

import pytest
from herald_client import Client, ClientClosed, Config, Failure, Overflow, QueueFull, Rejection

from tests.e2e.conftest import Server, free_port, poll_until
from tests.sdk.conftest import WRITE_KEY, FaultServer, HeraldReader, Reply, held_client

FAST_RETRIES = Config(backoff_base_s=0.01, backoff_max_s=0.05)


def new_customer() -> str:
    return str(uuid.uuid4()).upper()


@pytest.mark.slow
def test_503_twice_then_201_stores_every_event_once(
    fault_server: FaultServer, herald_server: Server
) -> None:
    # The first 503 comes after Herald stored the batch (an answer lost on the way back).
    fault_server.replies = [
        Reply(status=503, forward=True, retry_after="0"),
        Reply(status=503, forward=False, retry_after="0"),
    ]
    customer = new_customer()

    with Client(WRITE_KEY, host=fault_server.url, config=FAST_RETRIES) as client:
        sent = [client.track(customer, "purchase", {"n": n}) for n in range(20)]
        assert client.flush(timeout_s=30)
        stats = client.stats()

    assert [request.status for request in fault_server.received] == [503, 503, 201]
    assert all(request.uuids == sent for request in fault_server.received)
    stored = HeraldReader(herald_server.url).events(customer)
    assert [event["uuid"] for event in stored] == sent
    assert [event["payload"]["n"] for event in stored] == list(range(20))
    assert (stats.retries, stats.duplicates, stats.sent, stats.failed) == (2, 20, 0, 0)


@pytest.mark.parametrize("status", [400, 401, 403, 415, 500])
def test_an_answer_retrying_cannot_fix_goes_to_on_error_at_once(
    recording_server: FaultServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    recording_server.default = Reply(status=status)
    failures: list[Failure] = []

    with Client(WRITE_KEY, host=recording_server.url, on_error=failures.append) as client:
        sent = [client.track("c", "purchase") for _ in range(3)]
        assert client.flush(timeout_s=30)
        stats = client.stats()

    assert len(recording_server.received) == 1
    assert [(failure.status, [event.uuid for event in failure.events]) for failure in failures] == [
        (status, sent)
    ]
    assert f"HTTP {status} injected" in failures[0].reason
    assert (stats.failed, stats.retries) == (3, 0)
    assert "3 events not sent" in caplog.text


def test_retries_are_bounded_then_the_batch_goes_to_on_error(
    recording_server: FaultServer,
) -> None:
    recording_server.default = Reply(status=503, retry_after="0")
    failures: list[Failure] = []
    config = Config(max_retries=2, backoff_base_s=0.01, backoff_max_s=0.05)

    with Client(
        WRITE_KEY, host=recording_server.url, config=config, on_error=failures.append
    ) as client:
        client.track("c", "purchase")
        assert client.flush(timeout_s=30)

    assert len(recording_server.received) == 3
    assert len(failures) == 1
    assert failures[0].reason.startswith("gave up after 3 tries; the last: HTTP 503")


def test_a_connection_closed_without_an_answer_is_retried(recording_server: FaultServer) -> None:
    recording_server.replies = [Reply(hang_up=True)]

    with Client(WRITE_KEY, host=recording_server.url, config=FAST_RETRIES) as client:
        sent = client.track("c", "purchase")
        assert client.flush(timeout_s=30)
        stats = client.stats()

    assert [request.status for request in recording_server.received] == [0, 201]
    assert recording_server.received[1].uuids == [sent]
    assert (stats.retries, stats.sent) == (1, 1)


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_at_once(
    recording_server: FaultServer,
) -> None:
    recording_server.replies = [Reply(), Reply(hang_up=True)]

    with Client(WRITE_KEY, host=recording_server.url, config=FAST_RETRIES) as client:
        client.track("c", "purchase")
        assert client.flush(timeout_s=30)
        second = client.track("c", "purchase")
        assert client.flush(timeout_s=30)
        stats = client.stats()

    assert [request.status for request in recording_server.received] == [201, 0, 201]
    assert recording_server.received[2].uuids == [second]
    assert (stats.retries, stats.sent) == (0, 2)


def test_a_full_queue_blocks_then_raises_queue_full(recording_server: FaultServer) -> None:
    config = Config(max_queue_events=5, max_batch_events=1, block_timeout_s=0.05)
    client, release, first = held_client(recording_server, config)
    waiting = [client.track("c", "purchase", {"n": n}) for n in range(1, 6)]

    with pytest.raises(QueueFull, match="the queue held 5 events for 0.05 s"):
        client.track("c", "purchase", {"n": 6})
    release.set()
    assert client.close()

    received = [uuid for request in recording_server.received for uuid in request.uuids]
    assert received == [first, *waiting]
    assert client.stats().blocked == 1


def test_a_blocked_call_goes_on_once_there_is_room(recording_server: FaultServer) -> None:
    config = Config(max_queue_events=5, max_batch_events=1, block_timeout_s=60)
    client, release, first = held_client(recording_server, config)
    waiting = [client.track("c", "purchase", {"n": n}) for n in range(1, 6)]
    late: list[str] = []
    caller = threading.Thread(target=lambda: late.append(client.track("c", "purchase")))
    caller.start()
    poll_until(lambda: client.stats().blocked == 1, what="the sixth call waits for room")

    release.set()
    caller.join(timeout=30)
    assert client.close()

    received = [uuid for request in recording_server.received for uuid in request.uuids]
    assert received == [first, *waiting, *late]


def test_drop_oldest_drops_the_oldest_waiting_events_counts_and_logs_them(
    recording_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(max_queue_events=5, max_batch_events=1, overflow=Overflow.DROP_OLDEST)
    client, release, first = held_client(recording_server, config)

    with caplog.at_level(logging.WARNING, logger="herald_client"):
        queued = [client.track("c", "purchase", {"n": n}) for n in range(1, 9)]
    release.set()
    assert client.close()

    received = [uuid for request in recording_server.received for uuid in request.uuids]
    assert received == [first, *queued[3:]]
    assert client.stats().dropped == 3
    drops = [record for record in caplog.records if "dropped the oldest event" in record.message]
    assert len(drops) == 1  # one line per DROP_LOG_INTERVAL_S, with the count so far
    assert queued[0] in drops[0].message


def test_close_reports_what_herald_never_took(recording_server: FaultServer) -> None:
    recording_server.default = Reply(status=503, retry_after="0")
    failures: list[Failure] = []
    config = Config(max_batch_events=2, max_retries=None, backoff_base_s=0.01)
    client = Client(WRITE_KEY, host=recording_server.url, config=config, on_error=failures.append)
    sent = [client.track("c", "purchase", {"n": n}) for n in range(5)]
    poll_until(lambda: len(recording_server.received) >= 2, what="the first batch is retried")

    assert not client.close(timeout_s=0.1)

    poll_until(lambda: client.stats().failed == 5, what="the batch in flight is reported too")
    reported = sorted(event.uuid for failure in failures for event in failure.events)
    assert reported == sorted(sent)


HERALD_201_WITH_ERRORS = json.dumps(
    {
        "accepted": 1,
        "duplicates": 0,
        "rejected": 2,
        "errors": [
            {"index": 1, "message": "expected a number", "field": "payload.age", "uuid": "x"},
            {"index": 2, "message": "required for $identify", "field": "payload.distinct_id"},
            {"index": 2, "message": "a second problem of the same event"},
            {"index": 9, "message": "an index outside the batch is ignored"},
        ],
        "warnings": [{"index": 0, "message": "userId is not part of the event", "field": "userId"}],
    }
).encode()


def test_per_event_errors_of_a_201_become_rejections_even_if_the_callback_raises(
    recording_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    recording_server.replies = [Reply(status=201, body=HERALD_201_WITH_ERRORS)]
    seen: list[Rejection] = []

    def on_rejected(rejections: list[Rejection]) -> None:
        seen.extend(rejections)
        raise RuntimeError("a bug in the caller's callback")

    with Client(WRITE_KEY, host=recording_server.url, on_rejected=on_rejected) as client:
        sent = [client.track("c", "signup"), client.set("c", {"age": "x"})]
        sent.append(client.identify("c", "someone"))
        assert client.flush(timeout_s=30)
        after = client.track("c", "purchase")  # the sender lives on
        assert client.flush(timeout_s=30)
        stats = client.stats()

    assert [(r.uuid, r.event, r.index, r.field, r.message) for r in seen] == [
        (sent[1], "$set", 1, "payload.age", "expected a number"),
        (sent[2], "$identify", 2, "payload.distinct_id", "required for $identify"),
        (sent[2], "$identify", 2, None, "a second problem of the same event"),
    ]
    assert (stats.sent, stats.rejected) == (2, 2)
    assert recording_server.received[1].uuids == [after]
    assert "Herald rejected 2 events" in caplog.text
    assert "the on_rejected callback raised" in caplog.text
    assert "userId is not part of the event" in caplog.text


def test_a_2xx_without_a_json_body_counts_as_sent(recording_server: FaultServer) -> None:
    recording_server.replies = [Reply(status=200, body=b"OK")]

    with Client(WRITE_KEY, host=recording_server.url) as client:
        client.track("c", "purchase")
        assert client.flush(timeout_s=30)
        assert client.stats().sent == 1


def test_a_client_inherited_through_fork_refuses_events_in_the_child(
    recording_server: FaultServer,
) -> None:
    with Client(WRITE_KEY, host=recording_server.url) as client:
        pid = os.fork()
        if pid == 0:  # the child: its copy of the client has no sender thread
            try:
                client.track("c", "purchase")
            except ClientClosed as exc:
                os._exit(0 if "made before os.fork()" in str(exc) else 2)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        client.track("c", "purchase")  # the parent's client goes on

    assert os.waitstatus_to_exitcode(status) == 0
    assert len(recording_server.received) == 1


def test_nothing_listening_is_a_network_error_retried_then_reported(tmp_path: Path) -> None:
    failures: list[Failure] = []
    config = Config(max_retries=1, backoff_base_s=0.01)
    nowhere = f"http://127.0.0.1:{free_port()}"

    with Client(WRITE_KEY, host=nowhere, config=config, on_error=failures.append) as client:
        sent = client.track("c", "purchase")
        assert client.flush(timeout_s=30)
        assert client.close()  # a second close() has nothing left to do

    assert [(failure.status, [event.uuid for event in failure.events]) for failure in failures] == [
        (None, [sent])
    ]
    assert "gave up after 2 tries; the last: network error: ConnectionRefusedError" in (
        failures[0].reason
    )
    assert client.stats().retries == 1


def test_close_wakes_a_call_waiting_for_room_with_client_closed(
    recording_server: FaultServer,
) -> None:
    config = Config(max_queue_events=1, max_batch_events=1, block_timeout_s=60)
    client, release, _ = held_client(recording_server, config)
    client.track("c", "purchase")
    outcome: list[BaseException] = []

    def wait_for_room() -> None:
        try:
            client.track("c", "purchase")
        except ClientClosed as exc:
            outcome.append(exc)

    caller = threading.Thread(target=wait_for_room)
    caller.start()
    poll_until(lambda: client.stats().blocked == 1, what="the third call waits for room")

    assert not client.close(timeout_s=0.1)  # the first event is still held by the server
    caller.join(timeout=30)
    release.set()

    assert [str(exc) for exc in outcome] == [
        "the client is closed; make a new one to send more events"
    ]
