"""Journeys benchmark: event-to-webhook latency and webhooks/s with 1,000 live journeys.

`herald serve` as the README starts it (processor and delivery children on), a workspace with
1,000 live journeys (999 triggered by events nobody sends, one by `signup` that sends a webhook
carrying the event's send time), and a receiver on 127.0.0.1 answering 200 at once.

1. latency: `signup` events (one per request, a new customer each) at a steady rate while a second
   process loads ingestion with batches of 100 at a fixed rate; the receiver measures, per
   webhook, now minus the send time carried in the payload.
2. throughput: a burst of `signup` events in batches of 100; webhooks/s from the first send to the
   last webhook received.

    python bench/journeys.py [--journeys 1000] [--rate 100] [--load-rps 450] [--burst 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import KEY, free_port, report, start_herald, summarize
from bench.loadgen import Load, run

ADMIN_KEY = "hk_a_bench-admin-key"


class Receiver:
    """An HTTP/1.1 keep-alive receiver on its own thread and loop: records latencies."""

    def __init__(self) -> None:
        self.port = free_port()
        self.latencies_s: list[float] = []
        self.received_at: list[float] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self._ready.set()
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                now = time.time()
                self.received_at.append(now)
                self.latencies_s.append(now - float(json.loads(body)["t"]))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def journeys(count: int, receiver_port: int) -> list[dict[str, Any]]:
    welcome = {
        "name": "welcome",
        "trigger": {"event": "signup"},
        "entry": "every_time",
        "start": "hook",
        "steps": {
            "hook": {
                "type": "webhook",
                "url": f"http://127.0.0.1:{receiver_port}/welcome",
                "body": '{"t": {{ event.payload.t }}, "customer": "{{ customer.id }}"}',
            }
        },
    }
    others = [
        {
            "name": f"other-{n}",
            "trigger": {"event": f"never_sent_{n}"},
            "start": "hook",
            "steps": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/never"}},
        }
        for n in range(count - 1)
    ]
    return [welcome, *others]


def signup(n: int) -> dict[str, Any]:
    return {
        "event": "signup",
        "source": "custom",
        "correlationKey": "_id",
        "correlationValue": f"signup-{n}",
        "payload": {"t": time.time()},
    }


async def send_signups(url: str, *, rate: float, duration_s: float, start: int) -> int:
    """One signup per request at `rate` per second; return how many were sent."""
    sent = 0
    began = time.perf_counter()
    async with httpx.AsyncClient(headers={"Authorization": f"Api-Key {KEY}"}) as client:
        while (elapsed := time.perf_counter() - began) < duration_s:
            due = sent / rate
            if due > elapsed:
                await asyncio.sleep(due - elapsed)
            answer = await client.post(url, json={"batch": [signup(start + sent)]})
            answer.raise_for_status()
            sent += 1
    return sent


async def send_burst(url: str, *, count: int, start: int) -> None:
    async with httpx.AsyncClient(
        headers={"Authorization": f"Api-Key {KEY}"}, timeout=30.0
    ) as client:
        for first in range(0, count, 100):
            batch = [signup(start + n) for n in range(first, min(count, first + 100))]
            (await client.post(url, json={"batch": batch})).raise_for_status()


def wait_for(receiver: Receiver, total: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(receiver.latencies_s) < total and time.monotonic() < deadline:
        time.sleep(0.05)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--journeys", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0, help="signups per second")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument(
        "--load-rps", type=float, default=450.0, help="batch-100 requests/s (450: half of capacity)"
    )
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    receiver = Receiver()
    receiver.start()
    results: list[dict[str, Any]] = []
    os.environ["HERALD_BOOTSTRAP_ADMIN_KEY"] = ADMIN_KEY
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(1) as pool:
        port = free_port()
        herald = start_herald(Path(tmp), port)
        base = f"http://127.0.0.1:{port}"
        try:
            admin = {"Authorization": f"Api-Key {ADMIN_KEY}"}
            for document in journeys(args.journeys, receiver.port):
                httpx.post(f"{base}/api/journeys", json=document, headers=admin).raise_for_status()
            url = f"{base}/api/events/batch/"
            load = Load(port, KEY, 100, 16, args.duration, rate_rps=args.load_rps)
            background = pool.submit(run, load)
            sent = asyncio.run(send_signups(url, rate=args.rate, duration_s=args.duration, start=0))
            outcome = background.result()
            wait_for(receiver, sent, 60)
            latencies = receiver.latencies_s[:sent]
            results.append(summarize("background ingestion", load, outcome))
            results.append(
                {
                    "run": "event-to-webhook latency",
                    "journeys": args.journeys,
                    "signups": sent,
                    "webhooks": len(latencies),
                    "p50_ms": percentile(latencies, 0.5) * 1000,
                    "p99_ms": percentile(latencies, 0.99) * 1000,
                    "max_ms": max(latencies) * 1000,
                }
            )
            print(results[-2], results[-1], sep="\n", flush=True)
            already = len(receiver.latencies_s)
            began = time.time()
            asyncio.run(send_burst(url, count=args.burst, start=sent))
            wait_for(receiver, already + args.burst, 300)
            done = receiver.received_at[-1] if receiver.received_at else time.time()
            delivered = len(receiver.latencies_s) - already
            results.append(
                {
                    "run": "webhook burst",
                    "signups": args.burst,
                    "webhooks": delivered,
                    "seconds": done - began,
                    "webhooks_per_s": delivered / (done - began),
                }
            )
            print(results[-1], flush=True)
        finally:
            herald.terminate()
            herald.wait()
    summary = report(results)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
