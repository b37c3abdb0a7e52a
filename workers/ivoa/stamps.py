"""Light curves: stamps of one position in every epoch that covers it.

``POST /api/v1/stamps`` with ``{"ra", "dec", "size" (51), "band",
"time_min", "time_max" (MJD), "limit"}`` finds every recreatable
visit-detector whose outline holds the position (`recreate.discovery`,
the function SIA uses), sorted by time, and answers 202 with a job:
``GET /api/v1/stamps/{id}`` shows its progress; once done, ``/fits`` is
one multi-extension FITS (an IMAGE/MASK/VARIANCE set per epoch) and
``/png`` a strip of the stamps. Each stamp comes through the region
seam, a few at a time; an epoch that fails is listed with its error and
the others go on. The same cutouts are a SODA job with several IDs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recreate.cutouts import Stamp, stamp_series_fits, stamp_series_png
from recreate.discovery import ImageFootprint
from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    RecreateError,
)
from recreate.formats import get_format
from workers.http_errors import ErrorModel
from workers.ivoa.jobs import COMPLETED, Progress, Work
from workers.ivoa.vosi import base_url
from workers.limits import rate_limit, spender
from workers.models import ProductRequest
from workers.product_answers import Pending
from workers.regions import RegionService, box_around, clip_box

if TYPE_CHECKING:
    from workers.services import Services

log = logging.getLogger(__name__)

PREFIX = "/api/v1/stamps"
KIND = "stamps"
FITS = "application/fits"
PNG = "image/png"
RESULTS = {"fits": FITS, "png": PNG}

#: Seconds between asks for a product still being recreated.
PENDING_RETRY_SECONDS = 2.0

router = APIRouter()


class StampsRequest(BaseModel):
    """A light curve: a position, a stamp size, optional limits."""

    model_config = ConfigDict(extra="forbid")

    ra: float = Field(ge=0, le=360, description="Degrees.")
    dec: float = Field(ge=-90, le=90, description="Degrees.")
    size: int = Field(51, ge=1, description="Side of a stamp, pixels.")
    band: str | None = Field(None, description="Only this band.")
    time_min: float | None = Field(None, description="Earliest, MJD (TAI).")
    time_max: float | None = Field(None, description="Latest, MJD (TAI).")
    limit: int | None = Field(None, ge=1, description="At most this many.")
    instrument: str | None = None

    @model_validator(mode="after")
    def _ordered_times(self) -> StampsRequest:
        """Refuse a time range that ends before it starts."""
        if (
            self.time_min is not None
            and self.time_max is not None
            and self.time_min > self.time_max
        ):
            msg = f"time_min {self.time_min} is after time_max {self.time_max}"
            raise ValueError(msg)
        return self


class StampJobModel(BaseModel):
    """A light curve's job: its state, progress and results."""

    id: str
    phase: str = Field(
        description="PENDING, QUEUED, EXECUTING, COMPLETED, "
        "ERROR or ABORTED (UWS's phases)."
    )
    url: str
    progress: dict[str, int] = Field(description="done and total epochs.")
    epochs: list[dict[str, Any]] = Field(
        description="visit, detector, band, mjd of each epoch, by time."
    )
    failed: list[dict[str, Any]] = Field(
        description="Epochs that could not be cut, with their error."
    )
    results: dict[str, str] = Field(
        description="URLs of the FITS and the PNG, once COMPLETED."
    )
    error: dict[str, str] | None = None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def select_epochs(
    footprints: list[ImageFootprint], body: StampsRequest, limit: int
) -> list[dict[str, Any]]:
    """Return the epochs of a light curve: in its time range, by time."""
    epochs = []
    for f in footprints:
        mjd = (
            None
            if f.t_min is None or f.t_max is None
            else (f.t_min + f.t_max) / 2
        )
        if body.time_min is not None and (mjd is None or mjd < body.time_min):
            continue
        if body.time_max is not None and (mjd is None or mjd > body.time_max):
            continue
        epochs.append(
            {
                "visit": f.visit,
                "detector": f.detector,
                "band": f.band,
                "mjd": mjd,
                "instrument": f.instrument,
            }
        )
    return epochs[:limit]


def stamps_work(
    regions: RegionService,
    body: StampsRequest,
    epochs: list[dict[str, Any]],
    concurrency: int,
    before_solve: Callable[[], Awaitable[None]] | None = None,
) -> Work:
    """Return the work of a light curve: each stamp, then the two files.

    ``before_solve`` is awaited before each solve an epoch starts (the
    ``recompute`` budget of whoever asked); an epoch over budget fails
    with ``rate_limited``, the others go on.
    """

    async def work(progress: Progress) -> None:
        progress.total = len(epochs)
        made: list[Stamp | None] = [None] * len(epochs)
        failed: list[dict[str, Any]] = []
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, epoch: dict[str, Any]) -> None:
            async with gate:
                try:
                    data = await stamp_bytes(
                        regions, epoch, body, before_solve
                    )
                except Exception as error:  # noqa: BLE001 - others go on
                    failed.append({**_key(epoch), **_failure(error)})
                else:
                    made[index] = Stamp(
                        epoch["visit"],
                        epoch["detector"],
                        epoch["band"],
                        epoch["mjd"],
                        data,
                    )
                await progress.advance(failed=failed)

        await asyncio.gather(*(one(i, e) for i, e in enumerate(epochs)))
        fits_bytes, png_bytes = await asyncio.to_thread(
            series_files, [s for s in made if s is not None], body
        )
        await progress.keep("fits", fits_bytes, FITS)
        await progress.keep("png", png_bytes, PNG)

    return work


def series_files(
    stamps: list[Stamp], body: StampsRequest
) -> tuple[bytes, bytes]:
    """Return the multi-extension FITS and the PNG strip of stamps."""
    fits_bytes = stamp_series_fits(stamps, body.ra, body.dec, body.size)
    png_bytes = stamp_series_png(stamps, body.size)
    return fits_bytes, png_bytes


async def stamp_bytes(
    regions: RegionService,
    epoch: dict[str, Any],
    body: StampsRequest,
    before_solve: Callable[[], Awaitable[None]] | None = None,
) -> bytes:
    """Return one epoch's stamp (its region, in the DP1 layout)."""
    request = ProductRequest(
        epoch["visit"],
        epoch["detector"],
        epoch["instrument"],
        get_format("dp1"),
    )
    geometry = await regions.geometry(request)
    box = clip_box(
        box_around(geometry, body.ra, body.dec, body.size), geometry
    )
    if box.empty:
        raise InvalidRequestError(
            f"({body.ra}, {body.dec}) is off {request.describe()}"
        )
    while True:
        region = await regions.region(request, box, before_solve=before_solve)
        if not isinstance(region, Pending):
            return region.data
        await asyncio.sleep(PENDING_RETRY_SECONDS)


def _key(epoch: dict[str, Any]) -> dict[str, Any]:
    return {"visit": epoch["visit"], "detector": epoch["detector"]}


def _failure(error: Exception) -> dict[str, str]:
    """Return an epoch's error as its code and message."""
    if isinstance(error, RecreateError):
        return {"code": error.code, "message": str(error)}
    log.error("a light-curve stamp failed", exc_info=error)
    return {"code": "internal_error", "message": type(error).__name__}


def _model(request: Request, record: dict[str, Any]) -> StampJobModel:
    """Return the API model of a light curve's record."""
    url = base_url(request) + f"{PREFIX}/{record['id']}"
    results = {}
    if record["phase"] == COMPLETED:
        results = {name: f"{url}/{name}" for name in RESULTS}
    return StampJobModel(
        id=record["id"],
        phase=record["phase"],
        url=url,
        progress=record.get("progress", {}),
        epochs=record.get("epochs", []),
        failed=record.get("failed", []),
        results=results,
        error=record.get("error"),
    )


async def _record(services: Services, job_id: str) -> dict[str, Any]:
    record = None
    if job_id.startswith(f"{KIND}-"):
        record = await services.async_jobs.get(job_id)
    if record is None:
        raise DataNotFoundError(
            f"no light curve {job_id!r} (unknown or expired)"
        )
    return record


async def create_stamps(request: Request, body: StampsRequest) -> JSONResponse:
    """Start a light curve; see the route's description."""
    services = _services(request)
    settings = services.settings
    if body.size > settings.stamp_max_size:
        raise InvalidRequestError(
            f"size {body.size} is over the largest stamp, "
            f"{settings.stamp_max_size}"
        )
    footprints = await asyncio.to_thread(
        services.butler.covering,
        body.ra,
        body.dec,
        instrument=body.instrument or settings.instrument,
        bands=[body.band] if body.band else [],
    )
    limit = min(
        body.limit or settings.stamp_max_epochs, settings.stamp_max_epochs
    )
    epochs = select_epochs(footprints, body, limit)
    if not epochs:
        where = f" in band {body.band!r}" if body.band else ""
        if body.time_min is not None or body.time_max is not None:
            where += " in the time range"
        raise DataNotFoundError(
            "no recreatable difference image covers "
            f"({body.ra}, {body.dec}){where}"
        )
    runner = services.async_jobs
    record = await runner.create(
        KIND,
        body.model_dump(),
        epochs=epochs,
        failed=[],
        progress={"done": 0, "total": len(epochs)},
    )
    work = stamps_work(
        services.regions,
        body,
        epochs,
        settings.cutout_job_concurrency,
        spender(request, "recompute"),
    )
    await runner.start(record["id"], work)
    model = _model(request, {**record, "phase": "QUEUED"})
    return JSONResponse(
        model.model_dump(), status_code=202, headers={"Location": model.url}
    )


async def get_stamps(request: Request, job_id: str) -> StampJobModel:
    """Return a light curve's job."""
    return _model(request, await _record(_services(request), job_id))


async def delete_stamps(request: Request, job_id: str) -> Response:
    """Cancel and forget a light curve."""
    services = _services(request)
    await _record(services, job_id)
    await services.async_jobs.delete(job_id)
    return Response(status_code=204)


async def get_stamp_file(request: Request, job_id: str, name: str) -> Response:
    """Return a finished light curve's FITS or PNG."""
    services = _services(request)
    record = await _record(services, job_id)
    if name not in RESULTS:
        raise DataNotFoundError(
            f"a light curve has no {name!r}; ask for fits or png"
        )
    if record["phase"] != COMPLETED:
        raise DataNotFoundError(
            f"light curve {job_id} is not finished (phase {record['phase']})"
        )
    data = await services.async_jobs.result(job_id, name)
    if data is None:
        data = await _remake(services, record, name)
    filename = f"stamps_{job_id}.{name}"
    return Response(
        data,
        media_type=RESULTS[name],
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


async def _remake(
    services: Services, record: dict[str, Any], name: str
) -> bytes:
    """Make a light curve's file again (the cache lost it)."""
    body = StampsRequest(**record["parameters"])
    failed = {(f["visit"], f["detector"]) for f in record.get("failed", [])}
    stamps = []
    for epoch in record["epochs"]:
        if (epoch["visit"], epoch["detector"]) in failed:
            continue
        data = await stamp_bytes(services.regions, epoch, body)
        stamps.append(
            Stamp(
                epoch["visit"],
                epoch["detector"],
                epoch["band"],
                epoch["mjd"],
                data,
            )
        )
    fits_bytes, png_bytes = await asyncio.to_thread(series_files, stamps, body)
    return fits_bytes if name == "fits" else png_bytes


#: What the light-curve routes answer when they fail (the API's JSON).
_FAILURES: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorModel,
        "description": "No image covers it, or no such light curve.",
    },
    422: {"model": ErrorModel, "description": "A bad parameter."},
    503: {"model": ErrorModel, "description": "A part is down; Retry-After."},
}


router.add_api_route(
    PREFIX,
    create_stamps,
    methods=["POST"],
    summary="Start a light curve (stamp series)",
    description="Stamps of one position in every recreatable difference "
    "image that covers it, sorted by time: 202 with a job to follow; once "
    "COMPLETED, its results are a multi-extension FITS and a PNG strip.",
    status_code=202,
    response_model=StampJobModel,
    responses=_FAILURES,
    operation_id="create_stamps",
    # A light curve is a series of cutouts: it spends the budget once.
    dependencies=[Depends(rate_limit("cutout"))],
)
router.add_api_route(
    f"{PREFIX}/{{job_id}}",
    get_stamps,
    methods=["GET"],
    summary="Get a light curve's job",
    description="Phase, progress (epochs done of total), epochs, failures "
    "and, once COMPLETED, the URLs of the FITS and the PNG.",
    response_model=StampJobModel,
    responses=_FAILURES,
    operation_id="get_stamps",
)
router.add_api_route(
    f"{PREFIX}/{{job_id}}",
    delete_stamps,
    methods=["DELETE"],
    summary="Cancel a light curve",
    description="Stops the job and forgets it and its results.",
    status_code=204,
    response_class=Response,
    responses=_FAILURES,
    operation_id="delete_stamps",
)
router.add_api_route(
    f"{PREFIX}/{{job_id}}/{{name}}",
    get_stamp_file,
    methods=["GET"],
    summary="Get a light curve's FITS or PNG",
    description="fits: one IMAGE/MASK/VARIANCE set per epoch (EXTVER = "
    "epoch) and an EPOCHS table; png: the stamps side by side.",
    response_class=Response,
    responses={200: {"content": {FITS: {}, PNG: {}}}, **_FAILURES},
    operation_id="get_stamps_file",
)
