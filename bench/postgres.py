"""PostgreSQL benchmark: ingestion and processing on PostgreSQL, against the raw COPY ceiling.

Each part runs on a fresh schema of the database (dropped afterwards):

1. The raw append ceiling: the rows Herald writes for requests of 100 events (record batches and
   event ids), COPYed in transactions of 1,000 events by a tight loop, with nothing else: no
   lock, no duplicate check, no counters. Beside it, Herald's own append (`PgLogWriter`) on the
   same requests, in the same groups.
2. Ingestion: `herald api --workers 1` and `--workers 2` (no processor), loaded over loopback
   from another process with batches of 100 (and 1), as bench/ingest.py loads SQLite.
3. Processing: a log of `--events` events (bench/processing.py's mix) drained by one and by two
   `herald processor` processes; events/s from their start until every partition is caught up.

    python bench/postgres.py [--database-url postgresql://...] [--duration 10] [--events 300000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import KEY, drive, free_port, report, summarize, wait_ready
from bench.loadgen import Load
from bench.processing import benchmark_requests
from herald.core.schema import CustomerSchema
from herald.store.base import AppendRequest
from herald.store.logwriter import plan_group
from herald.store.postgres import (
    BATCH_TYPES,
    COPY_BATCHES,
    COPY_IDS,
    ID_TYPES,
    PgLogWriter,
    connect,
    copy_binary,
    id_rows,
    migrate,
)

DEFAULT_URL = os.environ.get(
    "HERALD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
GROUP_EVENTS = 1_000  # events per transaction in the ceiling runs (as bench/ingest.py's)


@contextlib.contextmanager
def fresh_schema(base_url: str, *, workspace: bool = True) -> Iterator[str]:
    """A URL to a new schema of `base_url`'s database, migrated (with workspace 1 unless
    `workspace` is false: `herald api` makes it, with the bench's key); dropped afterwards."""
    schema = f"herald_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base_url else "?"
    url = f"{base_url}{separator}options=-csearch_path%3D{schema}"
    try:
        db = connect(url)
        migrate(db)
        if workspace:
            db.execute(
                "INSERT INTO workspaces (name, created_at, schema) VALUES ('default', ?, ?)",
                (datetime.now(UTC).isoformat(), msgspec.json.encode(CustomerSchema()).decode()),
            )
        db.close()
        yield url
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def groups(requests: Sequence[AppendRequest]) -> list[list[AppendRequest]]:
    size = max(1, GROUP_EVENTS // max(1, len(requests[0].accepted)))
    return [list(requests[start : start + size]) for start in range(0, len(requests), size)]


def copy_ceiling(url: str, requests: Sequence[AppendRequest]) -> dict[str, Any]:
    """The same rows COPYed with nothing else, a transaction per group."""
    planned = []
    seq = 1
    for group in groups(requests):
        plan = plan_group(group, [list(request.accepted) for request in group], seq)
        planned.append((plan.rows, id_rows(plan)))
        seq = plan.next_seq
    db = connect(url)
    began = time.perf_counter()
    for rows, ids in planned:
        with db.conn.transaction():
            copy_binary(db.conn, COPY_IDS, ID_TYPES, ids)
            copy_binary(db.conn, COPY_BATCHES, BATCH_TYPES, rows)
    elapsed = time.perf_counter() - began
    db.close()
    events = sum(len(request.accepted) for request in requests)
    return {"run": "raw COPY ceiling", "batch": GROUP_EVENTS, "events_per_s": events / elapsed}


def store_append(url: str, requests: Sequence[AppendRequest]) -> dict[str, Any]:
    """Herald's append (lock, ids, batches, counters) on the same requests and groups."""
    writer = PgLogWriter(url)
    batches = groups(requests)
    began = time.perf_counter()
    for group in batches:
        writer.write_group(group)
    elapsed = time.perf_counter() - began
    writer.close()
    events = sum(len(request.accepted) for request in requests)
    return {
        "run": "herald append (no HTTP)",
        "batch": GROUP_EVENTS,
        "events_per_s": events / elapsed,
    }


def start(role: list[str], url: str, port: int | None = None) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        HERALD_DATABASE_URL=url,
        HERALD_BOOTSTRAP_API_KEY=KEY,
        HERALD_LOG_LEVEL="WARNING",
    )
    args = [sys.executable, "-m", "herald", *role]
    if port is not None:
        args += ["--port", str(port)]
    process = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
    if port is not None:
        wait_ready(port, "/readyz")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait()


def ingestion(
    pool: ProcessPoolExecutor, base_url: str, workers: int, batches: list[int], duration_s: float
) -> list[dict[str, Any]]:
    connections = {1: 64, 100: 32, 1000: 8}
    results = []
    with fresh_schema(base_url, workspace=False) as url:
        port = free_port()
        api = start(["api", "--workers", str(workers)], url, port)
        try:
            for batch in batches:
                load = Load(port, KEY, batch, connections.get(batch, 16), duration_s)
                result = summarize(f"herald api --workers {workers}", load, drive(pool, load))
                results.append(result)
                print(result, flush=True)
        finally:
            stop(api)
    return results


def processing(base_url: str, requests: Sequence[AppendRequest], processors: int) -> dict[str, Any]:
    events = sum(len(request.accepted) for request in requests)
    with fresh_schema(base_url) as url:
        writer = PgLogWriter(url)
        for group in groups(requests):
            writer.write_group(group)
        writer.close()
        db = connect(url)
        began = time.perf_counter()
        children = [start(["processor"], url) for _ in range(processors)]
        try:
            while _processed(db) < events:
                time.sleep(0.1)
            elapsed = time.perf_counter() - began
        finally:
            for child in children:
                stop(child)
            db.close()
    return {
        "run": f"herald processor x{processors}",
        "events": events,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
    }


def _processed(db: Any) -> int:
    row = db.execute("SELECT coalesce(sum(processed), 0) FROM partitions").fetchone()
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per ingestion run")
    parser.add_argument("--batches", default="100,1")
    parser.add_argument("--ceiling-events", type=int, default=300_000)
    parser.add_argument("--events", type=int, default=300_000, help="events to process")
    parser.add_argument("--values", type=int, default=30_000, help="correlation values")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    base = args.database_url
    results: list[dict[str, Any]] = []
    ceiling_requests = list(benchmark_requests(args.ceiling_events, args.ceiling_events // 10, 0))
    with fresh_schema(base) as url:
        results.append(copy_ceiling(url, ceiling_requests))
    print(results[-1], flush=True)
    with fresh_schema(base) as url:
        results.append(store_append(url, ceiling_requests))
    print(results[-1], flush=True)
    batches = [int(batch) for batch in args.batches.split(",")]
    with ProcessPoolExecutor(1) as pool:
        for workers in (1, 2):
            results.extend(ingestion(pool, base, workers, batches, args.duration))
    requests = list(benchmark_requests(args.events, args.values, 0.2))
    for processors in (1, 2):
        results.append(processing(base, requests, processors))
        print(results[-1], flush=True)
    ceiling = results[0]["events_per_s"]
    for result in results:
        if result.get("batch") == 100 and "requests_per_s" in result:
            result["share_of_copy_ceiling"] = result["events_per_s"] / ceiling
    summary = report(results)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
