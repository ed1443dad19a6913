"""SDK benchmark: what `track()` costs its caller, and what one client sustains to a local Herald.

1. **track() per call, sender idle** (enqueue only): `--calls` calls of the seeds' `purchase`
   event over 1,000 customers, timed with time.perf_counter around the loop, with no batch, byte,
   time or queue limit reached during the loop (nothing is sent); best and median of `--repeat`.
2. **track() per call, sender sending**: the same while the sender sends to Herald (a queue with
   room for every call, so the caller never waits for room); all must then be accepted.
3. The same with a queue file (`queue_path=`): each call commits its event to SQLite.
4. **sustained**: one Client (default Config: block when full), one thread calling track() as
   fast as it can for `--events` events, to `herald serve` started as bench/ingest.py starts it
   (SQLite, fsync on, its processor on unless --no-processor); events/s = events / the time from
   the first call until flush() returned (Herald answered for every event). Herald, its log
   writer and processor share the machine's cores with the client.

    python bench/sdk.py [--calls 200000] [--events 1000000] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from herald_client import Client, Config

from bench.ingest import KEY, free_port, report, start_herald

CUSTOMERS = [str(uuid.uuid4()).upper() for _ in range(1000)]
PAYLOAD = {"cart": True}


def track_loop(client: Client, calls: int) -> float:
    """Seconds for `calls` track() calls."""
    track, customers = client.track, CUSTOMERS
    began = time.perf_counter()
    for n in range(calls):
        track(customers[n % 1000], "purchase", PAYLOAD)
    return time.perf_counter() - began


def enqueue_only(calls: int, repeat: int) -> dict[str, Any]:
    """track()'s cost with the sender idle: no batch, byte, time or queue limit is reached
    during the loop (and the host is a port nobody listens on; nothing is sent)."""
    idle = Config(
        max_queue_events=calls + 1,
        max_batch_events=calls + 1,
        max_batch_bytes=1 << 40,
        flush_interval_s=3600.0,
    )
    nowhere = f"http://127.0.0.1:{free_port()}"
    logging.getLogger("herald_client").setLevel(logging.CRITICAL)  # "not sent", by design
    samples_us = []
    for _ in range(repeat):
        client = Client(KEY, host=nowhere, config=idle)
        samples_us.append(track_loop(client, calls) / calls * 1e6)
        client.close(timeout_s=0)
    logging.getLogger("herald_client").setLevel(logging.NOTSET)
    return summary("track() per call, sender idle", calls, samples_us)


def while_sending(url: str, calls: int, repeat: int, queue_path: Path | None) -> dict[str, Any]:
    """track()'s cost while the sender sends to Herald (room for every call in the queue);
    then every event must have been accepted."""
    samples_us = []
    sent = 0
    for _ in range(repeat):
        config = Config(max_queue_events=calls + 1)
        client = Client(KEY, host=url, config=config, queue_path=queue_path)
        samples_us.append(track_loop(client, calls) / calls * 1e6)
        client.close(timeout_s=120)
        sent += client.stats().sent
    name = "track() per call, sender sending" + (", queue file" if queue_path else "")
    return summary(name, calls, samples_us) | {"sent": sent, "expected": calls * repeat}


def summary(name: str, calls: int, samples_us: list[float]) -> dict[str, Any]:
    return {
        "run": name,
        "calls": calls,
        "best_us": min(samples_us),
        "median_us": statistics.median(samples_us),
        "samples_us": [round(sample, 3) for sample in samples_us],
    }


def sustained(url: str, events: int) -> dict[str, Any]:
    """Events/s from one client, from the first call until Herald answered for the last."""
    client = Client(KEY, host=url)
    began = time.perf_counter()
    loop_s = track_loop(client, events)
    flushed = client.flush(timeout_s=300)
    elapsed_s = time.perf_counter() - began
    client.close()
    stats = client.stats()
    return {
        "run": "one client, sustained",
        "events": events,
        "events_per_s": events / elapsed_s,
        "elapsed_s": elapsed_s,
        "caller_us_per_call": loop_s / events * 1e6,  # includes waits for room in the queue
        "flushed": flushed,
        "sent": stats.sent,
        "failed": stats.failed,
        "retries": stats.retries,
        "blocked_calls": stats.blocked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="track() calls per loop")
    parser.add_argument("--repeat", type=int, default=5, help="loops for the per-call figure")
    parser.add_argument("--events", type=int, default=1_000_000, help="events, sustained run")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--no-processor", action="store_true", help="serve without processing")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        herald = start_herald(Path(tmp), port, processor=not args.no_processor)
        url = f"http://127.0.0.1:{port}"
        try:
            runs: list[Callable[[], dict[str, Any]]] = [
                lambda: enqueue_only(args.calls, args.repeat),
                lambda: while_sending(url, args.calls, args.repeat, None),
                lambda: while_sending(url, args.calls // 4, args.repeat, Path(tmp) / "q.db"),
                lambda: sustained(url, args.events),
            ]
            for run in runs:
                results.append(run())
                print(results[-1], flush=True)
        finally:
            herald.terminate()
            herald.wait()
    print(json.dumps(report(results), indent=2))
    if args.json:
        args.json.write_text(json.dumps(report(results), indent=2))


if __name__ == "__main__":
    main()
