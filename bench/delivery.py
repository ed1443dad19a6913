"""Delivery benchmark: webhooks/s from one delivery worker, against the bare HTTP ceiling.

A receiver in its own process on 127.0.0.1 (keep-alive, answers 200 at once). Queued in the
outbox: `--messages` signed webhooks. Measured in the same run:

1. worker: one `DeliveryWorker` draining the outbox (claim, send, record each try);
2. ceiling: the same aiohttp session and concurrency sending the same requests with no store.

    python bench/delivery.py [--messages 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import free_port, report
from herald.channels.base import WebhookMessage
from herald.channels.webhook import WebhookChannel, new_session
from herald.delivery import DeliveryWorker
from herald.store.base import NewMessage
from herald.store.sqlite import SqliteStore

RECEIVER = """
import asyncio, sys, uvloop

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

uvloop.run(main())
"""


def a_webhook(port: int) -> dict[str, Any]:
    return {
        "url": f"http://127.0.0.1:{port}/welcome",
        "body": '{"customer": "9d0f6b2e-5f3c-4c39-9a57-2b1c4f0c9e11", "plan": "pro"}',
        "secret": "whsec_bench",
    }


async def worker_run(directory: Path, port: int, messages: int, concurrency: int) -> float:
    """Seconds one worker takes to send `messages` queued webhooks."""
    store = SqliteStore(directory / "herald.db")
    await store.start()
    workspace = (await store.create_workspace("default")).id
    await store.enqueue_messages(
        [
            NewMessage(
                workspace_id=workspace,
                enrollment_id=str(uuid4()),
                step_number=1,
                journey="welcome",
                step="hook",
                customer_id="customer",
                kind="webhook",
                message=a_webhook(port),
            )
            for _ in range(messages)
        ]
    )
    await store.close()
    async with new_session(connections=concurrency, per_host=concurrency) as session:
        worker = DeliveryWorker(
            directory / "herald.db",
            webhooks=WebhookChannel(session),
            email=None,
            concurrency=concurrency,
        )
        worker.open()
        began = time.perf_counter()
        while worker.sent < messages:
            await worker.run_once()
        elapsed = time.perf_counter() - began
        worker.close()
    return elapsed


async def ceiling_run(port: int, messages: int, concurrency: int) -> float:
    """Seconds the bare channel takes to send `messages` webhooks, `concurrency` at a time."""
    fields = a_webhook(port)
    async with new_session(connections=concurrency, per_host=concurrency) as session:
        channel = WebhookChannel(session)
        slots = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with slots:
                await channel.send(WebhookMessage(str(uuid4()), **fields))

        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(messages)))
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as tmp:
            worker_s = uvloop.run(worker_run(Path(tmp), port, args.messages, args.concurrency))
        ceiling_s = uvloop.run(ceiling_run(port, args.messages, args.concurrency))
    finally:
        receiver.kill()
        receiver.wait()
    worker_rate, ceiling_rate = args.messages / worker_s, args.messages / ceiling_s
    result = {
        "run": "delivery",
        "messages": args.messages,
        "concurrency": args.concurrency,
        "worker_webhooks_per_s": worker_rate,
        "ceiling_webhooks_per_s": ceiling_rate,
        "share_of_ceiling": worker_rate / ceiling_rate,
    }
    print(result, flush=True)
    summary = report([result])
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
