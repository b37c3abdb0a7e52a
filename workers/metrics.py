"""Prometheus metrics of the API and the broker.

Each app gets its own registry, so several apps in one process (tests)
never clash, and ``/metrics`` shows exactly this service's series.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Recompute times span a cached kernel on a small image to a cold
#: full-size detector on a busy worker.
RECOMPUTE_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300)


@dataclass
class Metrics:
    """The service's counters, gauges and histograms."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        """Create the series in this instance's registry."""
        r = self.registry
        self.requests = Counter(
            "recreate_requests",
            "HTTP requests by route and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.cache_hits = Counter(
            "recreate_cache_hits",
            "Products served from the cache.",
            registry=r,
        )
        self.cache_misses = Counter(
            "recreate_cache_misses",
            "Products not found in the cache.",
            registry=r,
        )
        self.corrupt_values = Counter(
            "recreate_cache_corrupt_values",
            "Cached values found corrupt or partial, dropped.",
            registry=r,
        )
        self.recomputes = Counter(
            "recreate_recomputes",
            "Products recomputed by a worker for this broker.",
            registry=r,
        )
        self.failures = Counter(
            "recreate_failures",
            "Recreations that failed, by error code.",
            ["code"],
            registry=r,
        )
        self.recompute_seconds = Histogram(
            "recreate_recompute_seconds",
            "Wall time of a recompute on a worker.",
            buckets=RECOMPUTE_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "recreate_inflight_tasks",
            "Recreations in flight from this broker.",
            registry=r,
        )
        self.bytes_served = Counter(
            "recreate_bytes_served", "Bytes of products sent.", registry=r
        )
        self.desired_workers = Gauge(
            "recreate_desired_workers",
            "Workers the Dask scheduler wants for its queue "
            "(adaptive target): the autoscaler's signal.",
            registry=r,
        )
        self.workers = Gauge(
            "recreate_workers",
            "Workers connected to the scheduler.",
            registry=r,
        )

    def exposition(self) -> bytes:
        """Return the text exposition format of every series."""
        return generate_latest(self.registry)
