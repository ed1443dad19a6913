"""The on-disk queue (queue_path): events a call accepted survive the death of the process that
queued them, and the next client on the same file sends them, each once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from herald_client import Client, Config, Overflow, QueueFileInUse

from tests.e2e.conftest import EXIT_TIMEOUT_S, Server, free_port
from tests.sdk.conftest import WRITE_KEY, FaultServer, HeraldReader, Reply, held_client

# Queues `count` events for a Herald that is not there yet, says so, then waits to be killed.
QUEUE_AND_WAIT = """
import sys
from herald_client import Client, Config

key, host, queue_path, customer, count = sys.argv[1:]
client = Client(key, host=host, queue_path=queue_path, config=Config(max_retries=None))
for n in range(int(count)):
    print(client.track(customer, "purchase", {"n": n}), flush=True)
print("queued", flush=True)
sys.stdin.read()
"""


def read_until_queued(process: subprocess.Popen[str]) -> list[str]:
    """The uuids the child printed, up to its line `queued`."""
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        if line == "queued\n":
            return lines
        lines.append(line.strip())
    raise AssertionError(f"the child exited with {process.wait()} before queueing everything")


@pytest.mark.slow
def test_events_queued_by_a_process_killed_with_sigkill_are_sent_by_the_next_client(
    herald_server: Server, tmp_path: Path
) -> None:
    queue_path, customer = tmp_path / "queue.db", str(uuid.uuid4()).upper()
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: every try is refused
    arguments = [WRITE_KEY, nowhere, str(queue_path), customer, "2500"]
    with subprocess.Popen(
        [sys.executable, "-c", QUEUE_AND_WAIT, *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        queued = read_until_queued(process)
        process.kill()  # SIGKILL: no close(), no atexit
        assert process.wait(timeout=EXIT_TIMEOUT_S) == -9

    with Client(WRITE_KEY, host=herald_server.url, queue_path=queue_path) as client:
        assert client.stats().queued == 2500
        assert client.flush(timeout_s=60)
        stats = client.stats()

    stored = HeraldReader(herald_server.url).events(customer)
    assert len(queued) == 2500
    assert [event["uuid"] for event in stored] == queued
    assert [event["payload"]["n"] for event in stored] == list(range(2500))
    assert (stats.sent, stats.duplicates, stats.queued) == (2500, 0, 0)


def test_close_with_herald_unreachable_keeps_the_events_for_the_next_client(
    recording_server: FaultServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue_path = tmp_path / "queue.db"
    recording_server.replies = [Reply(status=503, retry_after="60")]
    first = Client(WRITE_KEY, host=recording_server.url, queue_path=queue_path)
    sent = [first.track("c", "purchase", {"n": n}) for n in range(5)]

    assert not first.close(timeout_s=0.2)
    assert first.stats().failed == 0
    assert "closed with 5 events not yet sent in its queue file" in caplog.text

    with Client(WRITE_KEY, host=recording_server.url, queue_path=queue_path) as second:
        assert second.flush(timeout_s=30)
    assert [request.status for request in recording_server.received] == [503, 201]
    assert recording_server.received[1].uuids == sent


def test_a_queue_file_serves_one_client_at_a_time(tmp_path: Path) -> None:
    queue_path = tmp_path / "queue.db"
    config = Config(close_timeout_s=0)

    with Client(WRITE_KEY, host="http://127.0.0.1:9", queue_path=queue_path, config=config):
        with pytest.raises(QueueFileInUse, match="open in another Herald client"):
            Client(WRITE_KEY, host="http://127.0.0.1:9", queue_path=queue_path)

    Client(WRITE_KEY, host="http://127.0.0.1:9", queue_path=queue_path, config=config).close()


def test_drop_oldest_drops_from_the_queue_file(
    recording_server: FaultServer, tmp_path: Path
) -> None:
    config = Config(max_queue_events=3, max_batch_events=1, overflow=Overflow.DROP_OLDEST)
    client, release, first = held_client(recording_server, config, queue_path=tmp_path / "q.db")
    queued = [client.track("c", "purchase", {"n": n}) for n in range(1, 6)]

    release.set()
    assert client.close()

    received = [uuid for request in recording_server.received for uuid in request.uuids]
    assert received == [first, *queued[2:]]
    assert client.stats().dropped == 2
