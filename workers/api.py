"""The HTTP API (FastAPI): difference images, jobs, health, metrics.

``create_app`` builds an app around `Settings`; its lifespan starts the
services (embedded Redis and LocalCluster where nothing is configured)
and stops them. Handlers validate, then delegate: the Butler resolves
the inputs, the cache serves hits, the broker runs misses.

Errors are answered in one JSON shape by `workers.http_errors`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from cache import CacheUnavailableError, Manifest
from recreate import __version__
from recreate.butler import MAX_DETECTOR, MAX_VISIT
from recreate.errors import (
    DataNotFoundError,
    RecreateError,
    TransientError,
)
from recreate.recreation import FORMATS, product_key, request_recipe
from workers.broker import INTERACTIVE
from workers.campaign_api import router as campaign_router
from workers.http_errors import (
    ErrorModel,
    add_error_handlers,
    add_request_metrics,
    bad_parameter,
)
from workers.services import Services, start_services
from workers.settings import Settings
from workers.tasks import TaskResult, TaskSpec

log = logging.getLogger(__name__)

API = "/api/v1"
FITS = "application/fits"


class JobModel(BaseModel):
    """A recreation that outlived the request that started it."""

    id: str = Field(description="Job id (derived from the product key).")
    state: str = Field(description="running, done or failed.")
    instrument: str
    visit: int
    detector: int
    format: str
    url: str = Field(description="Where to GET the difference image.")
    created: float
    updated: float
    error: dict[str, str] | None = None


class HealthModel(BaseModel):
    """Whether each part of the service answers."""

    status: str = Field(description="ok, or degraded if a part is down.")
    version: str
    components: dict[str, Any]


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    on_ready: Callable[[Services], None] | None = None,
) -> FastAPI:
    """Return the API app.

    Parameters
    ----------
    settings
        Configuration; read from the environment when omitted.
    services
        Already started services (tests); started by the lifespan
        otherwise, and then stopped by it too.
    on_ready
        Called with the services once they are up (``recreate run``
        prints a curl command).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services is None
        app.state.services = services or await start_services(settings)
        if on_ready is not None:
            await asyncio.to_thread(on_ready, app.state.services)
        try:
            yield
        finally:
            if own:
                await app.state.services.close()

    app = FastAPI(
        title="recreate",
        version=__version__,
        description="Rubin LSST difference images, recreated on demand "
        "and cached.",
        lifespan=lifespan,
    )
    add_error_handlers(app)
    add_request_metrics(app)
    _add_routes(app)
    app.include_router(campaign_router)
    return app


def _services(request: Request) -> Services:
    """Return the app's services."""
    services: Services = request.app.state.services
    return services


# --------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorModel, "description": "Unknown visit or detector."},
    422: {
        "model": ErrorModel,
        "description": "Malformed key or format, or no template coverage.",
    },
    503: {
        "model": ErrorModel,
        "description": "Overloaded or a part is down; see Retry-After.",
    },
}


def _add_routes(app: FastAPI) -> None:
    """Register the API's routes."""
    for method in ("GET", "HEAD"):
        _add_diffim_route(app, method)
    app.add_api_route(
        f"{API}/jobs/{{job_id}}",
        get_job,
        methods=["GET"],
        summary="Get a recreation job",
        description="State of a recreation that answered 202.",
        response_model=JobModel,
        responses={404: {"model": ErrorModel}},
        operation_id="get_job",
    )
    app.add_api_route(
        f"{API}/health",
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


def _add_diffim_route(app: FastAPI, method: str) -> None:
    """Register GET or HEAD of a difference image (own operation ids)."""
    app.add_api_route(
        f"{API}/diffims/{{visit}}/{{detector}}",
        get_diffim,
        methods=[method],
        summary="Get a difference image",
        description="The difference image of one visit and detector, as "
        "FITS: from the cache when it is there (X-Cache: hit), recreated "
        "otherwise (X-Cache: miss). A recreation that outlives the sync "
        "timeout answers 202 with a job URL and goes on filling the "
        "cache. ETag is the SHA-256 of the bytes; If-None-Match gives 304.",
        response_class=Response,
        responses={
            200: {"content": {FITS: {}}, "description": "The FITS file."},
            202: {"model": JobModel, "description": "Still running."},
            304: {"description": "Not modified (ETag matched)."},
            **_ERRORS,
        },
        operation_id=f"{method.lower()}_diffim",
    )


VisitPath = Annotated[str, Path(description="Visit id (integer).")]
DetectorPath = Annotated[str, Path(description="Detector id (integer).")]
InstrumentQuery = Annotated[
    str | None, Query(description="Instrument, if the repo holds several.")
]
FormatQuery = Annotated[
    str | None,
    Query(description="Output format: dp1 (default) or lsst-images."),
]


async def get_diffim(
    request: Request,
    visit: VisitPath,
    detector: DetectorPath,
    instrument: InstrumentQuery = None,
    format: FormatQuery = None,  # noqa: A002 - the public parameter name
) -> Response:
    """Serve one difference image; see the route's description."""
    services = _services(request)
    visit_id = _parse_id("visit", visit, MAX_VISIT)
    detector_id = _parse_id("detector", detector, MAX_DETECTOR)
    output_format = _parse_format(format, services.settings)
    found = await services.find_inputs(visit_id, detector_id, instrument)
    recipe = request_recipe(found)
    key = product_key(recipe, output_format)
    spec = TaskSpec(
        found.instrument, visit_id, detector_id, output_format, key
    )
    head_only = request.method == "HEAD"
    etags = _if_none_match(request)
    manifest = await _cache(services, "head", key)
    if manifest is not None and _matches(etags, manifest.sha256):
        return _not_modified(manifest.sha256)
    if manifest is not None:
        cached = await _cache(services, "get", key)
        if cached is not None:
            services.metrics.cache_hits.inc()
            return _fits_response(
                services, cached.data, cached.manifest, "hit", head_only
            )
        services.metrics.corrupt_values.inc()
    services.metrics.cache_misses.inc()
    return await _recompute(request, services, spec, etags, head_only)


async def _recompute(
    request: Request,
    services: Services,
    spec: TaskSpec,
    etags: set[str],
    head_only: bool,
) -> Response:
    """Run (or join) the product's task; serve it, or answer 202."""
    task = services.broker.start(spec, priority=INTERACTIVE)
    services.metrics.inflight.set(services.broker.inflight)
    result = await services.broker.wait(
        task, services.settings.sync_timeout_seconds
    )
    if result is None:
        return _accepted(request, services, spec, task)
    if _matches(etags, result.sha256):
        return _not_modified(result.sha256)
    data, manifest = await _result_bytes(services, spec, result)
    return _fits_response(services, data, manifest, "miss", head_only)


async def _result_bytes(
    services: Services, spec: TaskSpec, result: TaskResult
) -> tuple[bytes, Manifest | dict[str, Any]]:
    """Return a finished product's bytes and metadata."""
    if result.payload is not None:
        return result.payload, {"sha256": result.sha256, **result.meta}
    cached = await _cache(services, "get", spec.product_key)
    if cached is None:
        raise TransientError(
            f"the difference image of {spec.describe()} left the cache "
            "before it could be sent; ask again"
        )
    return cached.data, cached.manifest


async def _cache(services: Services, method: str, key: str) -> Any:
    """Call the result store off the loop; None when Redis is down."""
    if services.store is None:
        return None
    call = getattr(services.store, method)
    try:
        return await asyncio.to_thread(call, key)
    except CacheUnavailableError as error:
        log.warning("cache unavailable (%s): serving without it", error)
        return None


def _parse_id(name: str, raw: str, limit: int) -> int:
    """Return a non-negative integer id, or a 422 naming the value."""
    try:
        value = int(raw)
    except ValueError:
        raise bad_parameter(
            "path", name, f"{name} must be an integer, got {raw!r}"
        ) from None
    if value < 0:
        raise bad_parameter(
            "path", name, f"{name} must not be negative, got {value}"
        )
    if value >= limit:
        raise bad_parameter(
            "path",
            name,
            f"{name} {value} is out of range (0 to {limit - 1})",
        )
    return value


def _parse_format(raw: str | None, settings: Settings) -> str:
    """Return the output format, or a 422 naming the bad one."""
    if raw is None:
        return settings.default_format
    if raw not in FORMATS:
        raise bad_parameter(
            "query",
            "format",
            f"unknown format {raw!r}; choose one of {', '.join(FORMATS)}",
        )
    return raw


def _if_none_match(request: Request) -> set[str]:
    """Return the entity tags of If-None-Match, unquoted."""
    header = request.headers.get("if-none-match", "")
    tags = {part.strip() for part in header.split(",") if part.strip()}
    return {tag.removeprefix("W/").strip('"') for tag in tags}


def _matches(etags: set[str], sha256: str) -> bool:
    """Whether If-None-Match names this representation."""
    return "*" in etags or sha256 in etags


def _not_modified(sha256: str) -> Response:
    """Return a 304 for a representation the client already has."""
    return Response(status_code=304, headers={"ETag": f'"{sha256}"'})


def _fits_response(
    services: Services,
    data: bytes,
    manifest: Manifest | dict[str, Any],
    cache_state: str,
    head_only: bool,
) -> Response:
    """Return the FITS bytes with ETag, X-Cache and the recipe headers."""
    if isinstance(manifest, dict):
        sha256, meta = manifest["sha256"], manifest
    else:
        sha256, meta = manifest.sha256, manifest.meta
    headers = {
        "ETag": f'"{sha256}"',
        "X-Cache": cache_state,
        "Cache-Control": "no-cache",
        "Content-Disposition": "attachment; filename="
        f"diffim_{meta.get('instrument', 'x')}_{meta.get('visit', 0)}_"
        f"{meta.get('detector', 0)}.fits",
        "Content-Length": str(len(data)),
        **_recipe_headers(meta),
    }
    if not head_only:
        services.metrics.bytes_served.inc(len(data))
    return Response(
        content=b"" if head_only else data,
        media_type=FITS,
        headers=headers,
    )


def _recipe_headers(meta: dict[str, Any]) -> dict[str, str]:
    """Return the recipe as X-Recreate-* headers."""
    names = {
        "recipe_hash": "X-Recreate-Recipe-Hash",
        "config_hash": "X-Recreate-Config-Hash",
        "code_version": "X-Recreate-Code-Version",
        "planes_sha256": "X-Recreate-Planes-Sha256",
        "format": "X-Recreate-Format",
        "recompute_seconds": "X-Recreate-Recompute-Seconds",
    }
    headers = {
        header: str(meta[name])
        for name, header in names.items()
        if name in meta
    }
    if "input_ids" in meta:
        headers["X-Recreate-Inputs"] = ",".join(meta["input_ids"])
    return headers


def _accepted(
    request: Request,
    services: Services,
    spec: TaskSpec,
    task: asyncio.Task[TaskResult],
) -> Response:
    """Answer 202: the task goes on; poll the job, then GET again."""
    job_url = str(request.url_for("get_job", job_id=spec.product_key))
    record = services.open_job(spec, str(request.url), task)
    return JSONResponse(
        JobModel(**record).model_dump(),
        status_code=202,
        headers={
            "Location": job_url,
            "Retry-After": str(services.settings.retry_after_seconds),
        },
    )


async def get_job(request: Request, job_id: str) -> JobModel:
    """Return a job record, or 404 naming the id."""
    record = _services(request).job(job_id)
    if record is None:
        raise DataNotFoundError(f"no job {job_id!r}")
    return JobModel(**record)


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
