"""A small HTTP/1.1 load generator: keep-alive connections on raw asyncio streams (uvloop).

Run in its own process so it never shares the server's interpreter. Closed loop (each connection
sends as fast as answers come) or paced (a fixed total rate; latency then counts from the planned
send time, so a slow server cannot hide its queueing).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field

import msgspec
import uvloop

EVENT_TEMPLATE = (
    b'{"timestamp":"2024-03-15T02:31:05.295Z","uuid":"%s","event":"purchase","source":"mobile",'
    b'"correlationKey":"_id","payload":{"cart":true},"correlationValue":"%s"}'
)


@dataclass(frozen=True)
class Load:
    port: int
    key: str
    batch: int
    connections: int
    duration_s: float
    rate_rps: float | None = None  # None: closed loop
    path: str = "/api/events/batch/"


@dataclass
class Outcome:
    requests: int = 0
    events: int = 0
    accepted: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0


class _Bodies:
    """Batches of the seeds' event shape with unique uuids and ~1,000 distinct customers."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self._counter = itertools.count()
        self._prefix = uuid.uuid4().hex[:16]
        self._customers = [str(uuid.uuid4()).upper().encode() for _ in range(1000)]

    def next(self) -> bytes:
        events = []
        for _ in range(self.batch):
            n = next(self._counter)
            p = self._prefix
            event_id = (
                f"{p[:8]}-{p[8:12]}-{p[12:16]}-{n >> 48:04x}-{n & 0xFFFFFFFFFFFF:012x}".encode()
            )
            events.append(EVENT_TEMPLATE % (event_id, self._customers[n % 1000]))
        return b'{"batch":[' + b",".join(events) + b"]}"


async def _connection(
    load: Load, bodies: _Bodies, outcome: Outcome, start: float, slot: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
    head = (
        f"POST {load.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {load.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    ).encode()
    decode = msgspec.json.decode
    interval = load.connections / load.rate_rps if load.rate_rps else 0.0
    planned = start + slot * interval / max(load.connections, 1)
    deadline = start + load.duration_s
    try:
        while True:
            if interval:
                now = time.perf_counter()
                if planned > now:
                    await asyncio.sleep(planned - now)
                sent_at = planned
                planned += interval
            else:
                sent_at = time.perf_counter()
            if sent_at >= deadline:
                return
            body = bodies.next()
            writer.write(head % len(body) + body)
            status, answer = await _read_response(reader)
            outcome.latencies_s.append(time.perf_counter() - sent_at)
            outcome.requests += 1
            outcome.events += bodies.batch
            if status == 201:
                accepted = decode(answer).get("accepted", bodies.batch) if answer else bodies.batch
                outcome.accepted += accepted
            else:
                outcome.errors[status] = outcome.errors.get(status, 0) + 1
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, (await reader.readexactly(length) if length else b"")


async def _run(load: Load) -> Outcome:
    bodies = _Bodies(load.batch)
    outcome = Outcome()
    start = time.perf_counter() + 0.05
    await asyncio.gather(
        *(_connection(load, bodies, outcome, start, slot) for slot in range(load.connections))
    )
    outcome.elapsed_s = time.perf_counter() - start
    return outcome


def run(load: Load) -> Outcome:
    """Entry point for a child process."""
    return uvloop.run(_run(load))
