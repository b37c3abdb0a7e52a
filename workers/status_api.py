"""The service's own state: ``/api/v1/health`` and ``/metrics``.

Health is the liveness probe (always 200 while the API runs: a degraded
service still serves), the metrics Prometheus's scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from recreate import __version__
from recreate.errors import RecreateError
from workers.models import HealthModel
from workers.services import Services

__all__ = ["add_status_routes"]

log = logging.getLogger(__name__)


def add_status_routes(app: FastAPI, prefix: str) -> None:
    """Register the health and metrics routes (health under ``prefix``)."""
    app.add_api_route(
        f"{prefix}/health",
        get_health,
        methods=["GET"],
        summary="Health of the service",
        description="ok, or degraded when Redis, the scheduler or the "
        "Butler does not answer. Always 200 while the API runs: a "
        "degraded service still serves (it recomputes without a cache).",
        response_model=HealthModel,
        operation_id="get_health",
    )
    app.add_api_route(
        "/metrics",
        get_metrics,
        methods=["GET"],
        summary="Prometheus metrics",
        description="Requests, cache hits and misses, recompute seconds, "
        "tasks in flight, bytes served, the scheduler's desired workers.",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        operation_id="get_metrics",
    )


def _services(request: Request) -> Services:
    """Return the app's services."""
    services: Services = request.app.state.services
    return services


async def get_health(request: Request) -> HealthModel:
    """Report ok or degraded, part by part."""
    services = _services(request)
    # The parts are checked at once, each bounded in time: this is the
    # liveness probe, and a slow part must not get the API restarted.
    parts, scheduler = await asyncio.gather(
        asyncio.to_thread(services.health), _scheduler_health(services)
    )
    components: dict[str, Any] = {**parts, **scheduler}
    down = [name for name, status in components.items() if status == "down"]
    return HealthModel(
        status="degraded" if down else "ok",
        version=__version__,
        components=components,
    )


async def _scheduler_health(services: Services) -> dict[str, Any]:
    """Return the scheduler's status and worker count (3 s at most)."""
    try:
        info = await asyncio.wait_for(
            services.broker.scheduler_info(), timeout=3
        )
    except (RecreateError, TimeoutError, OSError):
        return {"scheduler": "down", "workers": 0}
    return {"scheduler": "ok", "workers": info["workers"]}


async def get_metrics(request: Request) -> Response:
    """Return the Prometheus exposition, with fresh scheduler gauges."""
    services = _services(request)
    services.metrics.inflight.set(services.broker.inflight)
    started = time.perf_counter()
    try:
        info = await asyncio.wait_for(
            services.broker.scheduler_info(), timeout=2
        )
        services.metrics.workers.set(info["workers"])
        services.metrics.desired_workers.set(info["desired"])
    except (RecreateError, TimeoutError, OSError):
        log.warning(
            "scheduler did not answer within %.1f s",
            time.perf_counter() - started,
        )
    return Response(
        services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST
    )
