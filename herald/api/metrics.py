"""Prometheus metrics, on a registry of the app's own (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from herald.store.base import PartitionStatus

_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "herald_http_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "herald_events",
            "Events received, by outcome (accepted, duplicate, rejected).",
            ["outcome"],
            registry=self.registry,
        )
        self.commit_events = Histogram(
            "herald_commit_events",
            "Events per group commit.",
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "herald_commit_seconds",
            "Time to write and fsync one group commit.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pending = Gauge(
            "herald_pending_events",
            "Events waiting for a group commit.",
            registry=self.registry,
        )
        self.behind_events = Gauge(
            "herald_processor_behind_events",
            "Committed events not yet processed, by partition.",
            ["partition"],
            registry=self.registry,
        )
        self.behind_seconds = Gauge(
            "herald_processor_behind_seconds",
            "Age of the oldest committed event not yet processed (0 when caught up).",
            registry=self.registry,
        )
        self.processed = Gauge(
            "herald_processor_processed_events",
            "Events processed since the database was made (all processors).",
            registry=self.registry,
        )
        self.processors = Gauge(
            "herald_processor_live",
            "Processors holding at least one partition lease.",
            registry=self.registry,
        )

        # Labelled children looked up once: labels() takes a lock and builds a key per call.
        self._accepted = self.events.labels("accepted")
        self._duplicates = self.events.labels("duplicate")
        self._rejected = self.events.labels("rejected")
        self._request_children: dict[tuple[str, int], Any] = {}

    def observe_commit(self, events: int, seconds: float) -> None:
        self.commit_events.observe(events)
        self.commit_seconds.observe(seconds)

    def track_pending(self, read: Callable[[], int]) -> None:
        self.pending.set_function(lambda: float(read()))

    def count_events(self, accepted: int, duplicates: int, rejected: int) -> None:
        if accepted:
            self._accepted.inc(accepted)
        if duplicates:
            self._duplicates.inc(duplicates)
        if rejected:
            self._rejected.inc(rejected)

    def count_request(self, route: str, status: int) -> None:
        key = (route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, str(status))
        child.inc()

    def observe_processing(self, partitions: Sequence[PartitionStatus]) -> None:
        for item in partitions:
            self.behind_events.labels(str(item.partition)).set(item.behind_events)
        self.behind_seconds.set(max((item.behind_s for item in partitions), default=0.0))
        self.processed.set(sum(item.processed for item in partitions))
        self.processors.set(len({item.owner for item in partitions if item.owner}))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
