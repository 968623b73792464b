"""The server's Prometheus metrics: requests, latency, in-flight calls, per-key calls, the worker
processes and the usage store. Served at ``/metrics`` to a bearer of the metrics token only.

No label carries a SecretId: a key is labelled by :func:`key_label`, a short hash of its SecretId (the
operator can compute it: ``k`` + the first 12 hex digits of SHA-256 of the SecretId).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from denseface.rpc.accounts import Gate
from denseface.server.workers import ProcessPool


def key_label(secret_id: str) -> str:
    """The label of a key in metrics and logs: not its SecretId, a short hash of it."""
    return "k" + hashlib.sha256(secret_id.encode("utf-8")).hexdigest()[:12]


class Metrics:
    def __init__(self, pool: Callable[[], ProcessPool | None], gate: Gate) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_WorkerCollector(pool))
        self.registry.register(_StoreCollector(gate))
        self.requests = Counter(
            "denseface_requests",
            "API requests by action and result code",
            ["action", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "denseface_request_seconds",
            "API request latency",
            ["action"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.in_flight = Gauge("denseface_in_flight", "API requests being handled", registry=self.registry)
        self.key_calls = Counter(
            "denseface_key_calls",
            "Authenticated API calls by key (key_label: a hash of the SecretId), action and result code "
            "(this replica)",
            ["key", "action", "code"],
            registry=self.registry,
        )
        self.refused = Counter(
            "denseface_refused_early",
            "Requests refused before their signature was verified, by code (nothing read past headers "
            "but a bounded body)",
            ["code"],
            registry=self.registry,
        )


class _WorkerCollector(Collector):
    """The worker processes' state, read from the pool at every scrape (nothing while none runs)."""

    def __init__(self, pool: Callable[[], ProcessPool | None]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self._pool()
        if pool is None:
            return
        stats = pool.stats()
        yield GaugeMetricFamily("denseface_workers", "Worker processes configured", value=stats.size)
        yield GaugeMetricFamily(
            "denseface_workers_alive", "Worker processes up with their models loaded", value=stats.alive
        )
        yield GaugeMetricFamily("denseface_workers_busy", "Worker processes running a job", value=stats.busy)
        yield GaugeMetricFamily(
            "denseface_jobs_queued", "Jobs waiting for an idle worker", value=stats.queued
        )
        yield CounterMetricFamily(
            "denseface_worker_restarts",
            "Worker processes started to replace one that stopped",
            stats.restarts,
        )
        yield CounterMetricFamily("denseface_worker_jobs", "Jobs the worker processes finished", stats.jobs)
        yield CounterMetricFamily(
            "denseface_worker_handoff_seconds",
            "Time of the finished jobs spent outside the workers' own work (sending, waking, receiving)",
            stats.handoff_seconds,
        )
        pids = GaugeMetricFamily(
            "denseface_worker_pid", "PID of the process in each worker slot", labels=["slot", "state"]
        )
        for worker in stats.workers:
            pids.add_metric([str(worker.slot), worker.state], worker.pid or 0)
        yield pids


class _StoreCollector(Collector):
    """The time this replica waited for the usage store (admit, settle, record): the metering cost."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "denseface_store_seconds",
            f"Wall time spent waiting for the usage store ({self._gate.store.name})",
            self._gate.store_seconds,
        )
        yield CounterMetricFamily(
            "denseface_store_calls",
            "Calls to the usage store (admit, settle, record)",
            self._gate.store_calls,
        )


__all__ = ["Metrics", "key_label"]
