"""Ingestion benchmark: Herald against its two ceilings, in one run, on this machine.

1. Herald, started as the README does (`herald serve`, SQLite, fsync on, exact dedupe on), loaded
   from a second process over loopback with batches of 1, 100 and 1,000 events (unique uuids).
2. The no-work ceiling: the same HTTP stack (uvicorn + httptools + uvloop + Starlette, same
   middleware shape) reading the body and answering 201 without doing anything.
3. The raw store ceiling: the same rows, schema, dedupe and durability written by a tight loop
   through the store's own group-commit function, in groups of 1,000 events.
Then a paced run at half of Herald's batch-100 capacity for p50/p99, and optionally a soak run
that samples the server's memory.

    python bench/ingest.py [--duration 10] [--soak 300] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import EVENT_TEMPLATE, Load, Outcome, run

KEY = "hk_w_bench-write-key"
NOOP_APP = "bench.noop:app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, path: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=0.5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not become ready")


def start_herald(workdir: Path, port: int, *, processor: bool = True) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        HERALD_BOOTSTRAP_API_KEY=KEY,
        HERALD_LOG_LEVEL="WARNING",
        HERALD_EMBEDDED_PROCESSOR="1" if processor else "0",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "herald", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(port, "/readyz")
    return process


def start_noop(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            NOOP_APP,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parents[1],
    )
    wait_ready(port, "/healthz")
    return process


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def summarize(name: str, load: Load, outcome: Outcome) -> dict[str, Any]:
    latencies = sorted(outcome.latencies_s) or [0.0]

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "run": name,
        "batch": load.batch,
        "connections": load.connections,
        "paced_rps": load.rate_rps,
        "requests_per_s": outcome.requests / outcome.elapsed_s,
        "events_per_s": outcome.accepted / outcome.elapsed_s,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": outcome.errors,
        "requests": outcome.requests,
    }


def drive(pool: ProcessPoolExecutor, load: Load) -> Outcome:
    return pool.submit(run, load).result()


def raw_store_ceiling(workdir: Path, events: int, group: int = 1000) -> dict[str, Any]:
    """The store's own write path, fed pre-checked events in groups of `group`, in a tight loop."""
    from herald.core.events import Accepted, partition_of
    from herald.store.base import AppendRequest
    from herald.store.logwriter import LogWriter
    from herald.types import WorkspaceId

    writer = LogWriter(workdir / "raw.db", synchronous="full")
    writer.open()
    customers = [str(uuid.uuid4()).upper() for _ in range(1000)]
    requests = []
    for start in range(0, events, group):
        accepted = []
        for n in range(start, start + group):
            event_id = uuid.uuid4()
            customer = customers[n % 1000]
            raw = EVENT_TEMPLATE % (str(event_id).upper().encode(), customer.encode())
            accepted.append(Accepted(event_id.bytes, partition_of(1, customer), raw))
        requests.append(AppendRequest(WorkspaceId(1), accepted, [], datetime.now(UTC), None))
    began = time.perf_counter()
    for request in requests:
        writer.write_group([request])
    elapsed = time.perf_counter() - began
    writer.close()
    return {"run": "raw store ceiling", "batch": group, "events_per_s": events / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of paced soak (0: none)")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--batches", default="1,100,1000")
    parser.add_argument(
        "--no-processor",
        action="store_true",
        help="serve without its embedded processor (ingestion alone, as before issue 3)",
    )
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    connections = {1: 64, 100: 32, 1000: 8}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(1) as pool:
        workdir = Path(tmp)
        results.append(raw_store_ceiling(workdir, 500_000))
        print(results[-1], flush=True)

        port = free_port()
        noop = start_noop(port)
        try:
            for batch in batches:
                load = Load(port, KEY, batch, connections.get(batch, 16), args.duration)
                results.append(summarize("no-work ceiling", load, drive(pool, load)))
                print(results[-1], flush=True)
        finally:
            noop.terminate()
            noop.wait()

        port = free_port()
        herald = start_herald(workdir, port, processor=not args.no_processor)
        try:
            rss_start = rss_mib(herald.pid)
            capacity = {}
            for batch in batches:
                load = Load(port, KEY, batch, connections.get(batch, 16), args.duration)
                results.append(summarize("herald", load, drive(pool, load)))
                capacity[batch] = results[-1]["requests_per_s"]
                print(results[-1], flush=True)
            if 100 in capacity:
                half = Load(port, KEY, 100, 32, args.duration, rate_rps=capacity[100] / 2)
                results.append(summarize("herald, half load", half, drive(pool, half)))
                print(results[-1], flush=True)
                if args.soak:
                    soak = Load(port, KEY, 100, 32, args.soak, rate_rps=capacity[100] / 2)
                    before = rss_mib(herald.pid)
                    outcome = drive(pool, soak)
                    results.append(
                        summarize("herald, soak", soak, outcome)
                        | {"rss_before_mib": before, "rss_after_mib": rss_mib(herald.pid)}
                    )
                    print(results[-1], flush=True)
            results.append(
                {"run": "herald rss", "start_mib": rss_start, "end_mib": rss_mib(herald.pid)}
            )
        finally:
            herald.terminate()
            herald.wait()

    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(report(results), indent=2))


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's results with the machine and the time they were measured on."""
    return {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": results,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    ceiling = {r["batch"]: r for r in results if r["run"] == "no-work ceiling"}
    raw = next((r["events_per_s"] for r in results if r["run"] == "raw store ceiling"), None)
    print("\n| run | batch | req/s | events/s | p50 ms | p99 ms | vs no-work | vs raw store |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        if "requests_per_s" not in r:
            continue
        base = ceiling.get(r["batch"])
        vs_noop = (
            f"{r['requests_per_s'] / base['requests_per_s']:.0%}"
            if base and r["run"] != "no-work ceiling"
            else ""
        )
        vs_raw = f"{r['events_per_s'] / raw:.0%}" if raw and r["run"] == "herald" else ""
        print(
            f"| {r['run']} | {r['batch']} | {r['requests_per_s']:,.0f} | {r['events_per_s']:,.0f} |"
            f" {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {vs_noop} | {vs_raw} |"
        )
    if raw:
        print(f"\nraw store ceiling (groups of 1,000): {raw:,.0f} events/s")


if __name__ == "__main__":
    main()
