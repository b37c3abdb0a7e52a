"""SODA cutouts: what a request asks for, and how one cutout is made.

A cutout order is one identifier and one stencil (``CIRCLE``,
``POLYGON`` or ``POS`` with CIRCLE, RANGE or POLYGON: Rubin's own
service lacks RANGE), a detail level (``CUTOUTDETAIL``: Image,
MaskedImage or Exposure) and a response format (FITS, or a PNG drawn
by `recreate.preview` as the previews are: zscale, and, when the detail
level keeps the mask, masked pixels tinted and detections outlined).
`cut` makes it through the region seam (`workers.regions`): the
detector's geometry, the stencil's pixel box clipped at the detector's
edges, then the region's pixels, however the seam makes them. A stencil
that misses the detector is no cutout (SODA's 204).

The synchronous route lives here; the asynchronous one (UWS) in
`workers.ivoa.uws`, which runs the same orders.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Request, Response

from recreate.cutouts import EXPOSURE, detail_level, reduce_detail
from recreate.errors import InvalidRequestError
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox
from recreate.preview import fits_to_png
from recreate.skyshapes import (
    SkyRange,
    SkyShape,
    shape_extent,
    shape_outline,
    shape_region,
)
from workers.ivoa.answers import TEXT_FAILURES, in_text, text_failure
from workers.ivoa.datalink import CUTOUT_FORMATS, FITS, PNG
from workers.ivoa.ids import ImageId, ids_of, parse_id
from workers.ivoa.params import (
    MultiValuedParamError,
    Params,
    TransientFaultError,
    UsageError,
    circle,
    polygon,
    pos,
    read_params,
    single,
)
from workers.ivoa.vosi import Capability, add_get_and_post, add_vosi_routes
from workers.limits import spender
from workers.product_answers import Pending
from workers.regions import RegionService, box_of_sky_points, clip_box

if TYPE_CHECKING:
    from workers.services import Services
    from workers.settings import Settings

PREFIX = "/api/cutout"

#: Response formats by the names clients use for them.
_FORMAT_NAMES = {
    "application/fits": FITS,
    "fits": FITS,
    "image/fits": FITS,
    "image/png": PNG,
    "png": PNG,
}

router = APIRouter()


@dataclass(frozen=True)
class CutoutOrder:
    """One cutout: an image, a stencil, a detail level, a format."""

    identifier: str
    image: ImageId
    stencil: SkyShape
    detail: str = EXPOSURE
    response_format: str = FITS


@dataclass(frozen=True)
class Cut:
    """A cutout made: its bytes and what they are."""

    data: bytes
    media_type: str
    box: PixelBox
    cache_state: str

    def filename(self, image: ImageId) -> str:
        """Return the file name a client should save it under."""
        suffix = ".png" if self.media_type == PNG else ".fits"
        return f"cutout_{image.visit}_{image.detector}{suffix}"


def parse_orders(
    params: Params, settings: Settings, *, sync: bool
) -> list[CutoutOrder]:
    """Return the cutout orders of a request: each ID with each stencil.

    Raises
    ------
    UsageError
        If an ID or stencil is malformed, a stencil is too large or
        open, there is none, the detail level or the format is unknown,
        or there are more IDs than allowed.
    MultiValuedParamError
        If a synchronous request names several IDs or stencils.
    NotFoundFaultError
        If an ID names another repository.
    """
    identifiers = ids_of(settings, params)
    stencils = _stencils(params, settings)
    if sync and len(identifiers) > 1:
        raise MultiValuedParamError(
            f"a synchronous cutout takes one ID; got {len(identifiers)} "
            "(use the asynchronous service for several)"
        )
    if sync and len(stencils) > 1:
        raise MultiValuedParamError(
            f"a synchronous cutout takes one stencil; got {len(stencils)}"
        )
    if len(identifiers) > settings.ivoa_max_ids:
        raise UsageError(
            f"{len(identifiers)} IDs in one request; at most "
            f"{settings.ivoa_max_ids}"
        )
    detail = detail_of(single(params, "CUTOUTDETAIL"))
    response_format = format_of(single(params, "RESPONSEFORMAT"))
    images = [(raw, parse_id(settings, raw)) for raw in identifiers]
    return [
        CutoutOrder(raw, image, stencil, detail, response_format)
        for raw, image in images
        for stencil in stencils
    ]


def _stencils(params: Params, settings: Settings) -> list[SkyShape]:
    """Return the stencils of a request, each checked and bounded."""
    stencils: list[SkyShape] = [
        *(circle("CIRCLE", value) for value in params.get("CIRCLE", [])),
        *(polygon("POLYGON", value) for value in params.get("POLYGON", [])),
        *(pos("POS", value) for value in params.get("POS", [])),
    ]
    if not stencils:
        raise UsageError("give a stencil: CIRCLE, POLYGON or POS")
    for stencil in stencils:
        if isinstance(stencil, SkyRange) and not all(
            math.isfinite(v) for v in stencil
        ):
            raise UsageError(
                f"an open RANGE cannot be cut out: {tuple(stencil)}"
            )
        extent = shape_extent(stencil)
        if extent > settings.cutout_max_degrees:
            raise UsageError(
                f"the stencil spans {extent:.4g} degrees; a cutout may span "
                f"at most {settings.cutout_max_degrees:g}"
            )
    return stencils


def detail_of(raw: str | None) -> str:
    """Return the detail level named (default: the whole Exposure)."""
    if raw is None:
        return EXPOSURE
    try:
        return detail_level(raw)
    except InvalidRequestError as error:
        raise UsageError(f"CUTOUTDETAIL: {error}") from None


def format_of(raw: str | None) -> str:
    """Return the media type of a RESPONSEFORMAT (default: FITS)."""
    if raw is None:
        return FITS
    found = _FORMAT_NAMES.get(raw.strip().lower())
    if found is None:
        raise UsageError(
            f"RESPONSEFORMAT {raw!r} is not served; choose one of "
            f"{', '.join(CUTOUT_FORMATS)}"
        )
    return found


async def cut(
    regions: RegionService,
    order: CutoutOrder,
    before_solve: Callable[[], Awaitable[None]] | None = None,
) -> Cut | Pending | None:
    """Make one cutout: None when the stencil misses the detector.

    A `Pending` comes back when the product is still being recreated
    after the sync timeout (its recreation goes on). ``before_solve``
    is awaited before a solve (the caller's ``recompute`` budget).

    Raises
    ------
    DataNotFoundError, NoOverlapError
        If the image does not exist or cannot be recreated.
    """
    request = order.image.request()
    geometry = await regions.geometry(request)
    box = await asyncio.to_thread(stencil_box, geometry, order.stencil)
    if box is None:
        return None
    region = await regions.region(request, box, before_solve=before_solve)
    if isinstance(region, Pending):
        return region
    data = await asyncio.to_thread(render, region.data, order)
    return Cut(data, order.response_format, region.box, region.cache_state)


def stencil_box(geometry: ImageGeometry, stencil: SkyShape) -> PixelBox | None:
    """Return the stencil's pixel box on the detector (None: no overlap).

    The box holds the stencil's outline, clipped at the detector's
    edges. Only outline points near the detector are projected (the
    visit's distortion polynomial is not meant for points far off it),
    with the detector's corners that lie in the stencil: after clipping
    the box is the same.
    """
    from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

    corners = _corner_vectors(geometry)
    detector = ConvexPolygon.convexHull(
        [UnitVector3d(*vector) for vector in corners]
    )
    region = shape_region(stencil)
    if detector.isDisjointFrom(region):
        return None
    ra, dec = shape_outline(stencil)
    xyz = _unit_vectors(ra, dec)
    centre = corners.mean(axis=0)
    centre /= np.linalg.norm(centre)
    reach = float(np.min(corners @ centre))
    # Points within 1.5 detector radii of its centre (and a few pixels).
    near = xyz @ centre >= math.cos(1.5 * math.acos(min(1.0, reach)) + 1e-4)
    inside = [
        LonLat(UnitVector3d(*c))
        for c in corners
        if region.contains(UnitVector3d(*c))
    ]
    ras = [*ra[near], *(p.getLon().asDegrees() for p in inside)]
    decs = [*dec[near], *(p.getLat().asDegrees() for p in inside)]
    if not ras:
        return None
    box = clip_box(box_of_sky_points(geometry, ras, decs), geometry)
    return None if box.empty else box


def _corner_vectors(geometry: ImageGeometry) -> Any:
    """Return unit vectors of the detector's four outer pixel corners."""
    if geometry.wcs is None:
        raise UsageError("the image has no sky WCS: it cannot be cut on sky")
    height, width = geometry.shape
    xs = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
    ra, dec = geometry.wcs.all_pix2world(xs, ys, 0)
    return _unit_vectors(np.asarray(ra), np.asarray(dec))


def _unit_vectors(ra: Any, dec: Any) -> Any:
    """Return unit vectors (rows) of positions in degrees."""
    a, d = np.radians(ra), np.radians(dec)
    return np.column_stack(
        [np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)]
    )


def render(data: bytes, order: CutoutOrder) -> bytes:
    """Return a region's bytes at the order's detail level and format."""
    reduced = reduce_detail(data, order.detail)
    if order.response_format == PNG:
        return fits_to_png(reduced)
    return reduced


def cut_response(
    cut_made: Cut | Pending | None, order: CutoutOrder
) -> Response:
    """Return the HTTP answer of a synchronous cutout."""
    if cut_made is None:
        return Response(status_code=204)
    if isinstance(cut_made, Pending):
        return text_failure(
            TransientFaultError(
                f"the difference image of {order.image.request().describe()} "
                "is still being recreated; ask again shortly"
            )
        )
    box = cut_made.box
    return Response(
        cut_made.data,
        media_type=cut_made.media_type,
        headers={
            "Content-Disposition": "attachment; filename="
            + cut_made.filename(order.image),
            "X-Cache": cut_made.cache_state,
            "X-Recreate-Box": f"{box.x0},{box.y0},{box.x0 + box.width},"
            f"{box.y0 + box.height}",
        },
    )


@in_text
async def cutout_sync(request: Request) -> Response:
    """Answer one synchronous cutout; see the route's description."""
    services: Services = request.app.state.services
    params = await read_params(request)
    (order,) = parse_orders(params, services.settings, sync=True)
    made = await cut(services.regions, order, spender(request, "recompute"))
    return cut_response(made, order)


def _capabilities() -> list[Capability]:
    return [
        Capability("ivo://ivoa.net/std/SODA#sync-1.0", "/sync"),
        Capability("ivo://ivoa.net/std/SODA#async-1.0", "/jobs"),
    ]


_SYNC_DESCRIPTION = (
    "SODA 1.0 synchronous cutout of one difference image (ID, or VISIT and "
    "DETECTOR) with one stencil: CIRCLE, POLYGON or POS (CIRCLE, RANGE, "
    "POLYGON), in degrees. CUTOUTDETAIL: Image, MaskedImage or Exposure "
    "(default). RESPONSEFORMAT: application/fits (default) or image/png. "
    "A stencil is clipped at the detector's edges; one that misses it is "
    "204. Errors are text/plain: UsageError, MultiValuedParamError, "
    "NotFoundFaultError, TransientFaultError (503, Retry-After)."
)

# Rubin's RSP budget: 35 cutouts per user and 15 minutes.
add_get_and_post(
    router,
    f"{PREFIX}/sync",
    cutout_sync,
    operation="cutout_sync",
    summary="SODA synchronous cutout",
    description=_SYNC_DESCRIPTION,
    responses={
        200: {"content": {FITS: {}, PNG: {}}},
        204: {"description": "The stencil misses the detector."},
        **TEXT_FAILURES,
    },
    budget="cutout",
)
add_vosi_routes(router, PREFIX, "SODA", _capabilities)
