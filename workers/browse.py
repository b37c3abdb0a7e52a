"""Small JSON listings for people and pages that browse: visits, geometry.

The viewer page (`workers.viewer`) lists the detectors of a visit, and
turns a click on a preview into a sky position with the product's WCS;
these routes give it both, from the Butler registry and the visit
image's headers (`workers.regions.RegionService.geometry`), without a
pixel read or a recreation.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from recreate.butler import MAX_DETECTOR, MAX_VISIT
from recreate.formats import FORMATS
from recreate.io.region import ImageGeometry
from recreate.preview import preview_layout
from recreate.visits import VisitSummary
from workers.http_errors import ErrorModel, bad_parameter, parse_id
from workers.models import ProductRequest
from workers.services import Services

API = "/api/v1"
#: Most visits one listing returns.
MAX_VISITS = 1000

router = APIRouter()


class DetectorModel(BaseModel):
    """One detector of a visit, and where to get its products."""

    detector: int
    ra: float | None = Field(description="Centre of its region (deg).")
    dec: float | None = Field(description="Centre of its region (deg).")
    fits: str = Field(description="The difference image (FITS).")
    preview: str = Field(description="Its PNG preview.")
    triplet: str = Field(description="Science, template, difference PNG.")
    geometry: str = Field(description="Its WCS and preview layout.")


class VisitModel(BaseModel):
    """A visit; with its detectors when one visit was asked for."""

    instrument: str
    visit: int
    band: str
    physical_filter: str
    day_obs: int
    detectors: list[DetectorModel] = Field(default_factory=list)


class VisitListModel(BaseModel):
    """The newest visits with visit images."""

    visits: list[VisitModel]


class GeometryModel(BaseModel):
    """Where a detector's pixels lie on the sky, and its previews' layout."""

    visit: int
    detector: int
    xy0: tuple[int, int] = Field(description="Parent pixel of array (0, 0).")
    shape: tuple[int, int] = Field(description="(height, width) pixels.")
    wcs: dict[str, Any] = Field(
        description="The WCS of array pixels as FITS cards (TAN or "
        "TAN-SIP; CRPIX 1-based, as FITS has it)."
    )
    center: tuple[float, float] | None = Field(
        description="(ra, dec) of the detector's centre (deg)."
    )
    corners: list[tuple[float, float]] = Field(
        description="(ra, dec) of the corners, from array (0, 0) "
        "counter-clockwise (deg)."
    )
    previews: dict[str, dict[str, int]] = Field(
        description="Layout of each preview format: block factor, panel "
        "size, panels, gap, PNG size. Rows are flipped (y grows up)."
    )


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorModel, "description": "Unknown visit or detector."},
    422: {"model": ErrorModel, "description": "Malformed parameter."},
}
InstrumentQuery = Annotated[
    str | None, Query(description="Instrument, if the repo holds several.")
]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get(
    f"{API}/visits",
    summary="List visits",
    description="The newest visits that have visit images (a difference "
    "image can be asked for each of their detectors), newest first.",
    response_model=VisitListModel,
    responses=_NOT_FOUND,
    operation_id="list_visits",
)
async def list_visits(
    request: Request,
    instrument: InstrumentQuery = None,
    limit: Annotated[int, Query(description="Most visits.")] = 100,
) -> VisitListModel:
    """Return the newest visits."""
    if not 1 <= limit <= MAX_VISITS:
        raise bad_parameter(
            "query", "limit", f"limit must be 1 to {MAX_VISITS}, got {limit}"
        )
    butler = _services(request).butler
    visits = await asyncio.to_thread(butler.list_visits, instrument, limit)
    return VisitListModel(visits=[_visit(v) for v in visits])


@router.get(
    f"{API}/visits/{{visit}}",
    summary="List a visit's detectors",
    description="The detectors of one visit that have a visit image, the "
    "centre of each on the sky, and the URLs of its products.",
    response_model=VisitModel,
    responses=_NOT_FOUND,
    operation_id="get_visit",
)
async def get_visit(
    request: Request,
    visit: Annotated[str, Path(description="Visit id (integer).")],
    instrument: InstrumentQuery = None,
) -> VisitModel:
    """Return a visit and its detectors."""
    number = parse_id("visit", visit, MAX_VISIT)
    butler = _services(request).butler
    found = await asyncio.to_thread(butler.visit_detectors, number, instrument)
    return _visit(found)


def _visit(summary: VisitSummary) -> VisitModel:
    """Return a visit's JSON, with its detectors' product URLs.

    The URLs are relative to the service's root.
    """
    base = f"{API}/diffims/{summary.visit}"
    query = f"instrument={summary.instrument}"
    detectors = [
        DetectorModel(
            detector=d.detector,
            ra=d.ra,
            dec=d.dec,
            fits=f"{base}/{d.detector}?{query}&format=dp1",
            preview=f"{base}/{d.detector}?{query}&format=png",
            triplet=f"{base}/{d.detector}?{query}&format=png-triplet",
            geometry=f"{base}/{d.detector}/geometry?{query}",
        )
        for d in summary.detectors
    ]
    return VisitModel(
        instrument=summary.instrument,
        visit=summary.visit,
        band=summary.band,
        physical_filter=summary.physical_filter,
        day_obs=summary.day_obs,
        detectors=detectors,
    )


@router.get(
    f"{API}/diffims/{{visit}}/{{detector}}/geometry",
    summary="Get a difference image's geometry",
    description="The detector's WCS (FITS cards), origin, shape, centre "
    "and corners on the sky, and the layout of its PNG previews: what a "
    "page needs to turn a click on a preview into a sky position. Read "
    "from the visit image's headers: no recreation.",
    response_model=GeometryModel,
    responses=_NOT_FOUND,
    operation_id="get_diffim_geometry",
)
async def get_geometry(
    request: Request,
    visit: Annotated[str, Path(description="Visit id (integer).")],
    detector: Annotated[str, Path(description="Detector id (integer).")],
    instrument: InstrumentQuery = None,
) -> GeometryModel:
    """Return a detector's geometry."""
    services = _services(request)
    product = ProductRequest(
        visit=parse_id("visit", visit, MAX_VISIT),
        detector=parse_id("detector", detector, MAX_DETECTOR),
        instrument=instrument,
        output_format=FORMATS[services.settings.default_format],
    )
    geometry = await services.regions.geometry(product)
    return _geometry(product, geometry)


def _geometry(
    product: ProductRequest, geometry: ImageGeometry
) -> GeometryModel:
    """Return the JSON of a detector's geometry."""
    height, width = geometry.shape
    cards: dict[str, Any] = {}
    center = None
    corners: list[tuple[float, float]] = []
    if geometry.wcs is not None:
        header = geometry.wcs.to_header(relax=True)
        cards = {
            key: value
            for key, value in header.items()
            if isinstance(value, (int, float, str)) and _finite(value)
        }
        xs = [(width - 1) / 2, 0, width - 1, width - 1, 0]
        ys = [(height - 1) / 2, 0, 0, height - 1, height - 1]
        ra, dec = geometry.wcs.all_pix2world(xs, ys, 0)
        points = [(float(r), float(d)) for r, d in zip(ra, dec, strict=True)]
        center, corners = points[0], points[1:]
    previews = {
        name: preview_layout(geometry.shape, panels).to_dict()
        for name, panels in (("png", 1), ("png-triplet", 3))
    }
    return GeometryModel(
        visit=product.visit,
        detector=product.detector,
        xy0=geometry.xy0,
        shape=geometry.shape,
        wcs=cards,
        center=center,
        corners=corners,
        previews=previews,
    )


def _finite(value: object) -> bool:
    """Whether a card's value can go into JSON (no NaN or infinity)."""
    return not isinstance(value, float) or math.isfinite(value)
