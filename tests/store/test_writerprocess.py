"""The writer process's loop, run here over a real socket pair and a real log.

`serve` is what `herald serve`'s writer process runs: the requests are written to the socket
first and the socket is half-closed, so the loop reads them, commits, answers and returns.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from herald.store.base import AppendRequest, AppendResult
from herald.store.logwriter import LogWriter
from herald.store.writerprocess import Committed, Frame, Submit, frame, serve
from herald.types import WorkspaceId
from tests.store.conftest import append_request, started, whole_log, wire_event

WORKSPACE = WorkspaceId(1)
_decode_frame = msgspec.msgpack.Decoder(Frame).decode


@pytest.fixture
def log(tmp_path: Path) -> Iterator[LogWriter]:
    writer = LogWriter(tmp_path / "herald.db", synchronous="full")
    writer.open()
    yield writer
    writer.close()


def answers(peer: socket.socket) -> list[Committed]:
    """Every frame the writer sent back, once it has closed its side."""
    data = b""
    while chunk := peer.recv(1 << 20):
        data += chunk
    frames: list[Committed] = []
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack_from("<I", data, offset)
        message = _decode_frame(data[offset + 4 : offset + 4 + length])
        assert isinstance(message, Committed)
        frames.append(message)
        offset += 4 + length
    return frames


def serve_requests(
    log: LogWriter, requests: list[AppendRequest], *, max_group: int = 20_000
) -> list[Committed]:
    """Send `requests` and end-of-file from a thread, run the writer loop here, and answer."""
    peer, writer_side = socket.socketpair()
    with peer, writer_side:
        data = b"".join(frame(Submit(number, r)) for number, r in enumerate(requests, start=1))

        def send() -> None:
            peer.sendall(data)
            peer.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        serve(writer_side, log, max_group)
        sender.join()
        writer_side.shutdown(socket.SHUT_WR)
        return answers(peer)


def test_requests_that_arrived_together_are_committed_together_and_each_answered(
    log: LogWriter,
) -> None:
    batches = [[wire_event("alice"), wire_event("bob")], [wire_event("carol")], [wire_event()]]
    requests = [append_request(WORKSPACE, batch) for batch in batches]

    (committed,) = serve_requests(log, requests)

    assert [outcome.id for outcome in committed.outcomes] == [1, 2, 3]
    assert [outcome.result for outcome in committed.outcomes] == [
        AppendResult(accepted=2, duplicates=0, rejected=0),
        AppendResult(accepted=1, duplicates=0, rejected=0),
        AppendResult(accepted=1, duplicates=0, rejected=0),
    ]
    assert committed.events == 4


def test_a_group_holds_at_most_max_group_events(log: LogWriter) -> None:
    requests = [append_request(WORKSPACE, [wire_event()]) for _ in range(3)]

    committed = serve_requests(log, requests, max_group=2)

    assert [[outcome.id for outcome in group.outcomes] for group in committed] == [[1, 2], [3]]


def test_a_failed_commit_is_answered_with_the_reason_for_every_request(log: LogWriter) -> None:
    requests = [append_request(WORKSPACE, [wire_event()]) for _ in range(2)]
    with contextlib.closing(sqlite3.connect(log.path, isolation_level=None)) as admin:
        admin.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON event_batches"
            " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )

        (committed,) = serve_requests(log, requests)

    assert [outcome.result for outcome in committed.outcomes] == [None, None]
    assert all("disk on fire" in (outcome.error or "") for outcome in committed.outcomes)


async def test_a_request_larger_than_the_socket_buffer_is_committed_whole(
    tmp_path: Path,
) -> None:
    batch = [wire_event(f"customer-{number}", name="x" * 200) for number in range(3_000)]
    log = LogWriter(tmp_path / "herald.db", synchronous="full")
    log.open()
    try:
        (committed,) = serve_requests(log, [append_request(WORKSPACE, batch)])
    finally:
        log.close()

    assert committed.outcomes[0].result == AppendResult(accepted=3_000, duplicates=0, rejected=0)
    async with started(log.path) as store:
        assert len(await whole_log(store)) == 3_000
