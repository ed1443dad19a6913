"""Processing benchmark: the processor against the raw store's read+write ceiling, in one run.

1. Fill an event log (SQLite, as `serve` writes it) with 1,000,000 events over 100,000
   correlation values, in requests of 100 events; 20% of the values end with an `$identify`.
2. Herald's processor (the code `serve` runs in its processor child, fsync on) drains it.
3. The ceiling: the same log read the same way (per-partition pages, JSON decode) and the same
   volume written to the state database (one event record per event, one customer and one key per
   correlation value), in transactions of the same size, with no identity logic at all.
4. Lag under load: `herald serve` with its embedded processor, loaded at half its measured
   batch-100 capacity; every 100 ms the age of the oldest unprocessed event is read from /metrics
   (an upper bound of every event's lag at that moment).

    python bench/processing.py [--events 1000000] [--values 100000] [--lag-duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import KEY, drive, free_port, report, start_herald, summarize
from bench.loadgen import Load

REQUEST_EVENTS = 100

if TYPE_CHECKING:
    from herald.store.base import AppendRequest


def fill_log(path: Path, events: int, values: int, identify_share: float) -> int:
    """Write the benchmark's log through the store's own writer; return the events written."""
    from herald.store.logwriter import LogWriter
    from herald.store.sqlite import SqliteStore

    async def workspace() -> None:
        store = SqliteStore(path)
        await store.start()
        await store.create_workspace("default")
        await store.close()

    asyncio.run(workspace())
    writer = LogWriter(path, synchronous="normal")
    writer.open()
    written = 0
    for request in benchmark_requests(events, values, identify_share):
        writer.write_group([request])
        written += len(request.accepted)
    writer.close()
    return written


def benchmark_requests(events: int, values: int, identify_share: float) -> Iterator[AppendRequest]:
    """The benchmark's log as requests of 100 events of workspace 1: `events` over `values`
    correlation values, in shuffled rounds; `identify_share` of them end with an `$identify`."""
    from herald.core.events import Accepted, partition_of
    from herald.store.base import AppendRequest
    from herald.types import WorkspaceId

    rng = random.Random(7)
    names = [str(uuid.UUID(int=rng.getrandbits(128))).upper() for _ in range(values)]
    identifying = set(rng.sample(range(values), int(values * identify_share)))
    rounds = events // values
    stream: list[tuple[int, bool]] = []
    for round_number in range(rounds):
        order = list(range(values))
        rng.shuffle(order)
        last = round_number == rounds - 1
        stream.extend((value, last and value in identifying) for value in order)
    for start in range(0, len(stream), REQUEST_EVENTS):
        accepted = []
        for value, identify in stream[start : start + REQUEST_EVENTS]:
            name = names[value]
            raw = _event(name, identify, value).encode()
            accepted.append(Accepted(uuid.uuid4().bytes, partition_of(1, name), raw))
        yield AppendRequest(WorkspaceId(1), accepted, [], datetime.now(UTC), None)


def _event(name: str, identify: bool, value: int) -> str:
    if identify:
        return (
            '{"event":"$identify","source":"custom","correlationKey":"_id",'
            f'"correlationValue":"{name}","payload":{{"distinct_id":"user{value}@example.com"}}}}'
        )
    return (
        '{"timestamp":"2024-03-15T02:31:05.295Z","event":"page_view","source":"web",'
        f'"correlationKey":"_id","correlationValue":"{name}","payload":{{"path":"/pricing"}}}}'
    )


def run_processor(path: Path, step_events: int | None = None) -> dict[str, Any]:
    from herald.processor.loop import MAX_STEP_EVENTS, Processor

    processor = Processor(path, synchronous="full", max_step_events=step_events or MAX_STEP_EVENTS)
    processor.open()
    began = time.perf_counter()
    applied = processor.drain()
    elapsed = time.perf_counter() - began
    processor.close()
    return {
        "run": "herald processor",
        "events": applied,
        "seconds": elapsed,
        "events_per_s": applied / elapsed,
    }


def run_ceiling(path: Path, step_events: int | None = None) -> dict[str, Any]:
    """Read every partition page by page, decode, and write the same volume; no decisions."""
    import msgspec

    from herald.core.events import PARTITIONS
    from herald.processor.loop import (
        MAX_STEP_EVENTS,
        STATE_CACHE_KIB,
        STATE_CHECKPOINT_PAGES,
        STATE_SYNCHRONOUS,
    )
    from herald.store.ledger import record_id
    from herald.store.sqlitedb import connect

    step_events = step_events or MAX_STEP_EVENTS

    decode = msgspec.json.Decoder(list[dict[str, Any]]).decode
    log = connect(path, synchronous="full")
    state_file = path.with_name("ceiling.state")
    state = connect(state_file, synchronous=STATE_SYNCHRONOUS)
    state.execute(f"PRAGMA cache_size = -{STATE_CACHE_KIB}")
    state.execute(f"PRAGMA wal_autocheckpoint = {STATE_CHECKPOINT_PAGES}")
    state.execute(
        "CREATE TABLE records (id INTEGER PRIMARY KEY, customer_id INTEGER, outcome TEXT)"
    )
    state.execute("CREATE INDEX records_by_customer ON records (customer_id, id)")
    state.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, attributes TEXT)")
    state.execute(
        "CREATE TABLE keys (name TEXT, value TEXT, customer_id INTEGER,"
        " PRIMARY KEY (name, value, customer_id)) WITHOUT ROWID"
    )
    known: dict[str, int] = {}
    checkpoints = dict.fromkeys(range(PARTITIONS), 0)
    began = time.perf_counter()
    total = 0
    while True:
        rows = []
        for partition, checkpoint in checkpoints.items():
            rows.extend(
                log.execute(
                    "SELECT seq, partition, events FROM event_batches"
                    " WHERE partition = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (partition, checkpoint, max(1, step_events // PARTITIONS // 6)),
                ).fetchall()
            )
        if not rows:
            break
        records, customers, keys = [], [], []
        for seq, partition, blob in rows:
            checkpoints[partition] = max(checkpoints[partition], seq)
            for index, event in enumerate(decode(blob)):
                value = event["correlationValue"]
                customer_id = known.get(value)
                if customer_id is None:
                    customer_id = known[value] = len(known) + 1
                    customers.append((customer_id, "{}"))
                    keys.append(("_id", value, customer_id))
                records.append((record_id(seq, index), customer_id, "attributed"))
        state.execute("BEGIN IMMEDIATE")
        state.executemany("INSERT INTO customers VALUES (?, ?)", customers)
        state.executemany("INSERT INTO keys VALUES (?, ?, ?)", keys)
        state.executemany("INSERT INTO records VALUES (?, ?, ?)", records)
        state.execute("COMMIT")
        total += len(records)
    elapsed = time.perf_counter() - began
    return {
        "run": "raw read+write ceiling",
        "events": total,
        "seconds": elapsed,
        "events_per_s": total / elapsed,
    }


def lag_under_load(workdir: Path, duration_s: float) -> list[dict[str, Any]]:
    """Serve with its embedded processor at half its batch-100 capacity; sample the lag."""
    results = []
    port = free_port()
    herald = start_herald(workdir, port)
    try:
        with ProcessPoolExecutor(1) as pool:
            full = Load(port, KEY, 100, 32, 8.0)
            results.append(summarize("serve + processor, full load", full, drive(pool, full)))
            print(results[-1], flush=True)
            _wait_caught_up(port)
            half = Load(port, KEY, 100, 32, duration_s, rate_rps=results[-1]["requests_per_s"] / 2)
            samples: list[float] = []
            stop = threading.Event()
            sampler = threading.Thread(target=_sample_lag, args=(port, samples, stop))
            sampler.start()
            outcome = drive(pool, half)
            stop.set()
            sampler.join()
            samples.sort()
            row = summarize("serve + processor, half load", half, outcome)
            row |= {
                "lag_samples": len(samples),
                "lag_p50_s": samples[len(samples) // 2],
                "lag_p99_s": samples[int(len(samples) * 0.99)],
                "lag_max_s": samples[-1],
            }
            results.append(row)
            print(results[-1], flush=True)
    finally:
        herald.terminate()
        herald.wait()
    return results


def _behind_s(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    line = next(line for line in text.splitlines() if line.startswith("herald_processor_behind_s"))
    return float(line.split()[-1])


def _sample_lag(port: int, samples: list[float], stop: threading.Event) -> None:
    while not stop.wait(0.1):
        samples.append(_behind_s(port))


def _wait_caught_up(port: int) -> None:
    deadline = time.monotonic() + 300
    while _behind_s(port) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--identify-share", type=float, default=0.2)
    parser.add_argument("--lag-duration", type=float, default=20.0, help="0: skip the lag run")
    parser.add_argument("--profile", type=Path, default=None, help="pyinstrument HTML of the run")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--step-events", type=int, default=None, help="events per transaction")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        began = time.perf_counter()
        written = fill_log(workdir / "herald.db", args.events, args.values, args.identify_share)
        print(f"log filled: {written:,} events in {time.perf_counter() - began:.1f} s", flush=True)
        results.append(run_ceiling(workdir / "herald.db", args.step_events))
        print(results[-1], flush=True)
        if args.profile:
            from pyinstrument import Profiler

            with Profiler() as profiler:
                results.append(run_processor(workdir / "herald.db", args.step_events))
            args.profile.write_text(profiler.output_html())
        else:
            results.append(run_processor(workdir / "herald.db", args.step_events))
        results[-1]["vs_ceiling"] = results[-1]["events_per_s"] / results[0]["events_per_s"]
        print(results[-1], flush=True)
        _summarize_state(workdir / "herald.db.state", results)
        if args.lag_duration:
            lagdir = workdir / "lag"
            lagdir.mkdir()
            results.extend(lag_under_load(lagdir, args.lag_duration))
    summary = report(results)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


def _summarize_state(path: Path, results: list[dict[str, Any]]) -> None:
    state = sqlite3.connect(path)
    (customers,) = state.execute("SELECT count(*) FROM customers").fetchone()
    outcomes = dict(state.execute("SELECT outcome, count(*) FROM event_records GROUP BY outcome"))
    results.append({"run": "state after processing", "customers": customers, **outcomes})
    print(results[-1], flush=True)


if __name__ == "__main__":
    main()
