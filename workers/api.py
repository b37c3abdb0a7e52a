"""The HTTP API (FastAPI): difference images, jobs, health, metrics.

``create_app`` builds an app around `Settings`; its lifespan starts the
services (embedded Redis and LocalCluster where nothing is configured)
and stops them. The routes validate what they were given, once, and
hand a `ProductRequest` to the product service (`workers.products`):
no route builds a key or talks to Redis or Dask itself.
`workers.responses` turns the service's answers into responses; errors
are answered in one JSON shape by `workers.http_errors`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, Response

from recreate import __version__
from recreate.butler import MAX_DETECTOR, MAX_VISIT
from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
)
from recreate.formats import (
    FORMATS,
    OutputFormat,
    format_names,
    stretched_format,
)
from recreate.pipeline.recipes import RECIPE_NAMES
from recreate.preview.scale import STRETCHES
from workers.auth import Authenticator, Identity
from workers.browse import router as browse_router
from workers.budgets import parse_quotas
from workers.campaign_api import router as campaign_router
from workers.http_errors import (
    ErrorModel,
    add_error_handlers,
    bad_parameter,
    parse_id,
)
from workers.ivoa import add_ivoa_routes
from workers.limits import Quotas, rate_limit, spender
from workers.metrics import RequestMetrics
from workers.middleware import BodyLimit, RequestIds
from workers.models import JobModel, ProductRequest
from workers.openapi import install_openapi
from workers.region_api import (
    BoxQuery,
    DecQuery,
    RaQuery,
    SizeQuery,
    region_query,
    serve_region,
    serve_solution,
)
from workers.responses import if_none_match, respond
from workers.services import Services, start_services
from workers.settings import Settings
from workers.status_api import add_status_routes
from workers.viewer import add_viewer

log = logging.getLogger(__name__)

API = "/api/v1"

#: What a job id looks like: the product key, a SHA-256 in hex.
_JOB_ID = re.compile(r"[0-9a-f]{64}")


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    on_ready: Callable[[Services], None] | None = None,
) -> FastAPI:
    """Return the API app.

    Every route gets the app-wide pieces (`workers.middleware`): a
    request id on every answer, the body limit; each route adds its
    identity and budget dependencies (`workers.auth`, `workers.limits`).

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
        # Served from the package by add_viewer, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.auth = Authenticator.from_settings(settings)
    app.state.quotas = Quotas(parse_quotas(settings.quotas))
    add_error_handlers(app)
    # The last added runs first: ids, then the body limit, then metrics.
    app.add_middleware(RequestMetrics)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIds)
    _add_routes(app)
    app.include_router(campaign_router)
    app.include_router(browse_router)
    add_viewer(app)
    add_ivoa_routes(app)
    install_openapi(app)
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
        "description": "Malformed key, format or region (outside the "
        "detector, too large), or no template coverage.",
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
        f"{API}/solutions/{{visit}}/{{detector}}",
        get_solution,
        methods=["GET"],
        summary="Get the solution of a difference image",
        description="The solution (FITS, a few tens of KB): the matching "
        "kernel and background, the variance factors, the decorrelation "
        "kernel and levels, the inputs, recipe and code version, and a "
        "checksum; every region of the difference image is rendered from "
        "it. From the solution store (X-Cache: hit), else solved now "
        "(X-Cache: miss; 202 with a job past the sync timeout).",
        response_class=Response,
        responses={
            200: {"content": {"application/fits": {}}},
            202: {"model": JobModel, "description": "Still solving."},
            304: {"description": "Not modified (ETag matched)."},
            **_ERRORS,
        },
        operation_id="get_solution",
    )
    app.add_api_route(
        f"{API}/jobs/{{job_id}}",
        get_job,
        methods=["GET"],
        summary="Get a recreation job",
        description="State of a recreation that answered 202.",
        response_model=JobModel,
        responses={404: {"model": ErrorModel}},
        operation_id="get_job",
        dependencies=[Depends(rate_limit("request"))],
    )
    add_status_routes(app, API)


def _add_diffim_route(app: FastAPI, method: str) -> None:
    """Register GET or HEAD of a difference image (own operation ids)."""
    app.add_api_route(
        f"{API}/diffims/{{visit}}/{{detector}}",
        get_diffim,
        methods=[method],
        summary="Get a difference image",
        description="The difference image of one visit and detector, as "
        "FITS, or a PNG preview (format=png or png-triplet: science, "
        "template, difference; &stretch=asinh): from the cache when it "
        "is there (X-Cache: hit), recreated otherwise (X-Cache: miss), "
        "streamed as it comes from the cache. "
        "A recreation that outlives the sync timeout answers 202 with a "
        "job URL and goes on filling the cache. ETag is the SHA-256 of "
        "the bytes; If-None-Match gives 304. A body cut short (fewer "
        "bytes than Content-Length) means a cached chunk failed its "
        "checksum while streaming: it was dropped; ask again. With box= "
        "(parent pixels X0,Y0,X1,Y1, X1 and Y1 exclusive) or ra=, dec= and "
        "size=, a region, rendered from the detector's stored solution "
        "(the same pixels as the full product; png-triplet shows the "
        "box's science and warped template beside it): clipped to the "
        "detector "
        "(X-Recreate-Box, X-Recreate-Clipped-From); wholly outside it, or "
        "over the largest size, a 422.",
        response_class=Response,
        responses={
            200: {
                "content": {fmt.media_type: {} for fmt in FORMATS.values()},
                "description": "The product, streamed.",
            },
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
    Query(
        description="Output format: "
        + "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
    ),
]
StretchQuery = Annotated[
    str | None,
    Query(
        description="Stretch of a preview format (png, png-triplet): "
        f"{', '.join(STRETCHES)} (default {STRETCHES[0]}); "
        "png&stretch=asinh is the png-asinh format.",
    ),
]
RecipeQuery = Annotated[
    str | None,
    Query(
        description="Recipe: "
        + ", ".join(RECIPE_NAMES)
        + " (default: the service's setting, else the repository's "
        "release's)."
    ),
]


async def get_diffim(
    request: Request,
    who: Annotated[Identity, Depends(rate_limit("request"))],
    visit: VisitPath,
    detector: DetectorPath,
    instrument: InstrumentQuery = None,
    format: FormatQuery = None,  # noqa: A002 - the public parameter name
    stretch: StretchQuery = None,
    recipe: RecipeQuery = None,
    box: BoxQuery = None,
    ra: RaQuery = None,
    dec: DecQuery = None,
    size: SizeQuery = None,
) -> Response:
    """Serve one difference image; see the route's description."""
    services = _services(request)
    spend_recompute = spender(request, "recompute", who)
    product = _product_request(
        services, visit, detector, instrument, recipe, (format, stretch)
    )
    region = region_query(box, ra, dec, size)
    if region is not None:
        return await serve_region(
            request, services, product, region, before_solve=spend_recompute
        )
    answer = await services.products.get(
        product,
        etags=if_none_match(request),
        body=request.method != "HEAD",
        url=str(request.url),
        before_recompute=spend_recompute,
    )
    return respond(request, answer, services.settings.retry_after_seconds)


async def get_solution(
    request: Request,
    who: Annotated[Identity, Depends(rate_limit("request"))],
    visit: VisitPath,
    detector: DetectorPath,
    instrument: InstrumentQuery = None,
    recipe: RecipeQuery = None,
) -> Response:
    """Serve the solution of one difference image."""
    services = _services(request)
    spend_recompute = spender(request, "recompute", who)
    product = _product_request(
        services, visit, detector, instrument, recipe, (None, None)
    )
    return await serve_solution(
        request, services, product, before_solve=spend_recompute
    )


def _product_request(
    services: Services,
    visit: str,
    detector: str,
    instrument: str | None,
    recipe: str | None,
    format_and_stretch: tuple[str | None, str | None],
) -> ProductRequest:
    """Return the product a route's parameters name (a 422 if bad)."""
    raw_format, stretch = format_and_stretch
    return ProductRequest(
        visit=parse_id("visit", visit, MAX_VISIT),
        detector=parse_id("detector", detector, MAX_DETECTOR),
        instrument=instrument,
        output_format=_parse_format(raw_format, stretch, services.settings),
        recipe=_parse_recipe(recipe),
    )


def _parse_format(
    raw: str | None, stretch: str | None, settings: Settings
) -> OutputFormat:
    """Return the output format, or a 422 naming the bad one."""
    name = settings.default_format if raw is None else raw
    if name not in FORMATS:
        raise bad_parameter(
            "query",
            "format",
            f"unknown format {raw!r}; choose one of "
            f"{', '.join(format_names())}",
        )
    try:
        return FORMATS[stretched_format(name, stretch)]
    except InvalidRequestError as error:
        raise bad_parameter("query", "stretch", str(error)) from None


def _parse_recipe(raw: str | None) -> str | None:
    """Return the recipe asked for, or a 422 naming the bad one."""
    if raw is not None and raw not in RECIPE_NAMES:
        raise bad_parameter(
            "query",
            "recipe",
            f"unknown recipe {raw!r}; choose one of {', '.join(RECIPE_NAMES)}",
        )
    return raw


async def get_job(request: Request, job_id: str) -> JobModel:
    """Return a job record, or 404 naming the id."""
    if not _JOB_ID.fullmatch(job_id):
        # Never looked up: a job id is a product key (SHA-256 hex).
        raise DataNotFoundError(f"no job {job_id!r}")
    record = _services(request).jobs.get(job_id)
    if record is None:
        raise DataNotFoundError(f"no job {job_id!r}")
    return JobModel(**record)
