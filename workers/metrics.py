"""Prometheus metrics of the API and the broker, and the request counter.

Each app gets its own registry, so several apps in one process (tests)
never clash, and ``/metrics`` shows exactly this service's series.
`RequestMetrics` counts every request by route, method and status: a
plain ASGI middleware, so a streamed body passes through it untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

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
        self.solves = Counter(
            "recreate_solves",
            "Solutions solved by a worker for this broker.",
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


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestMetrics:
    """ASGI middleware counting HTTP requests by route and status.

    The route is the matched path template (``/api/v1/diffims/{visit}/
    {detector}``), or ``unmatched``; the metrics are the app's own
    (``app.state.services.metrics``), once its lifespan has started them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Pass the request on; count it once its status is known."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            _count(scope, status)


def _count(scope: Scope, status: int) -> None:
    """Count one request in the app's metrics, if they are up."""
    app = scope.get("app")
    services = getattr(getattr(app, "state", None), "services", None)
    if services is None:
        return
    route = scope.get("route")
    services.metrics.requests.labels(
        route=getattr(route, "path", "unmatched"),
        method=scope["method"],
        status=status,
    ).inc()
