"""HTTP regions and solutions: ``?box=``, ``?ra=&dec=&size=``, solutions.

``GET /api/v1/diffims/{visit}/{detector}?box=X0,Y0,X1,Y1`` (parent
pixels, X1 and Y1 exclusive) or ``?ra=&dec=&size=`` (a ``size`` x
``size`` box centred on the pixel the position falls in) answer the
region as the full product is answered: the same formats, ETag,
If-None-Match, X-Cache, ``X-Recreate-*`` headers, 202 with a job while
the solve outlives the sync timeout. The region comes from the region
service (`workers.regions`): rendered from the detector's solution.

Validation comes first, before any work: a malformed box, a side over
``region_max_size``, a box wholly outside the detector (named, with the
detector's own box) are 422 and leave nothing in the cache. A box partly
outside is clipped: ``X-Recreate-Box`` says what is served and
``X-Recreate-Clipped-From`` what was asked for.

``GET /api/v1/solutions/{visit}/{detector}[?recipe=]`` answers the
solution itself (FITS, `recreate.solution.fits`), solved on demand.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Query, Request, Response

from recreate.errors import InvalidRequestError
from recreate.numerics.box import PixelBox
from workers.http_errors import bad_parameter
from workers.product_answers import Pending
from workers.regions import box_around, clip_box, detector_box
from workers.responses import if_none_match, respond

if TYPE_CHECKING:
    from recreate.io.region import ImageGeometry
    from workers.models import ProductRequest
    from workers.services import Services

#: Media type of a solution file.
FITS = "application/fits"

BoxQuery = Annotated[
    str | None,
    Query(
        description="A region: X0,Y0,X1,Y1 parent pixels, X1 and Y1 exclusive."
    ),
]
RaQuery = Annotated[
    float | None, Query(description="A region's centre: RA, degrees.")
]
DecQuery = Annotated[
    float | None, Query(description="A region's centre: Dec, degrees.")
]
SizeQuery = Annotated[
    int | None, Query(description="A region's side around ra, dec, px.")
]


@dataclass(frozen=True)
class RegionQuery:
    """A region as asked for: a pixel box, or a sky position and size.

    Attributes
    ----------
    box
        ``(x0, y0, x1, y1)`` parent pixels, X1 and Y1 exclusive.
    ra, dec, size
        The centre (degrees) and side (pixels) instead.
    """

    box: tuple[int, int, int, int] | None = None
    ra: float | None = None
    dec: float | None = None
    size: int | None = None

    @property
    def parameter(self) -> str:
        """The query parameter a complaint about the region names."""
        return "box" if self.box is not None else "size"

    def check_size(self, largest: int) -> None:
        """Refuse a side over ``largest`` (a 422 naming it)."""
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            width, height = x1 - x0, y1 - y0
        else:
            width = height = self.size or 0
        if max(width, height) > largest:
            raise bad_parameter(
                "query",
                self.parameter,
                f"the region is {width}x{height} px; at most {largest} px "
                "a side (region_max_size)",
            )

    def checked(self) -> RegionQuery:
        """Return the query; refuse a position or size out of range."""
        ra, dec, size = self.ra, self.dec, self.size
        if ra is None or not (math.isfinite(ra) and 0 <= ra <= 360):
            raise bad_parameter(
                "query", "ra", f"ra must be 0 to 360, got {ra}"
            )
        if dec is None or not (math.isfinite(dec) and -90 <= dec <= 90):
            raise bad_parameter(
                "query", "dec", f"dec must be -90 to 90, got {dec}"
            )
        if size is None or size < 1:
            raise bad_parameter(
                "query", "size", f"size must be positive, got {size}"
            )
        return self

    def pixels(self, geometry: ImageGeometry) -> PixelBox:
        """Return the box asked for, not clipped."""
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            return PixelBox(x0, y0, x1 - x0, y1 - y0)
        if self.ra is None or self.dec is None or self.size is None:
            msg = "a region query needs a box, or ra, dec and size"
            raise AssertionError(msg)
        return box_around(geometry, self.ra, self.dec, self.size)


def region_query(
    box: str | None,
    ra: float | None,
    dec: float | None,
    size: int | None,
) -> RegionQuery | None:
    """Return the region the query asks for (None: the whole product).

    Raises
    ------
    ParameterError
        A 422 naming the parameter: a malformed box, both a box and a
        position, a position without its three parts, a size or a
        position out of range.
    """
    sky = (ra, dec, size)
    if box is None and all(value is None for value in sky):
        return None
    if box is not None:
        if any(value is not None for value in sky):
            raise bad_parameter(
                "query", "box", "give either box or ra, dec and size, not both"
            )
        return RegionQuery(box=_parse_box(box))
    missing = [
        name
        for name, value in zip(("ra", "dec", "size"), sky, strict=True)
        if value is None
    ]
    if missing:
        raise bad_parameter(
            "query",
            missing[0],
            f"a position needs ra, dec and size; {', '.join(missing)} missing",
        )
    return RegionQuery(ra=ra, dec=dec, size=size).checked()


def _parse_box(raw: str) -> tuple[int, int, int, int]:
    """Return ``(x0, y0, x1, y1)`` from ``X0,Y0,X1,Y1``, or a 422."""
    parts = raw.split(",")
    try:
        x0, y0, x1, y1 = (int(part) for part in parts)
    except ValueError:
        raise bad_parameter(
            "query",
            "box",
            f"box must be four integers X0,Y0,X1,Y1, got {raw!r}",
        ) from None
    if x1 <= x0 or y1 <= y0:
        raise bad_parameter(
            "query",
            "box",
            f"box {raw!r} holds no pixel: X1 and Y1 are exclusive and must "
            "exceed X0 and Y0",
        )
    return x0, y0, x1, y1


def _corners(box: PixelBox) -> str:
    """Return ``X0,Y0,X1,Y1`` (X1 and Y1 exclusive)."""
    return f"{box.x0},{box.y0},{box.x0 + box.width},{box.y0 + box.height}"


async def serve_region(
    request: Request,
    services: Services,
    product: ProductRequest,
    query: RegionQuery,
    *,
    before_solve: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """Answer a region of a difference image (see the module).

    ``before_solve`` is awaited before a solve (the caller's budget).
    """
    settings = services.settings
    query.check_size(settings.region_max_size)
    geometry = await services.regions.geometry(product)
    try:
        asked = query.pixels(geometry)
    except InvalidRequestError as error:
        raise bad_parameter(
            "query",
            "ra",
            f"the position ra={query.ra}, dec={query.dec} is outside "
            f"{product.describe()}: {error}",
        ) from None
    box = clip_box(asked, geometry)
    if box.empty:
        raise bad_parameter(
            "query",
            query.parameter,
            f"the region {_corners(asked)} is outside {product.describe()}, "
            f"whose box is {_corners(detector_box(geometry))}",
        )
    answer = await services.regions.serve(
        product,
        box,
        etags=if_none_match(request),
        body=request.method != "HEAD",
        url=str(request.url),
        before_solve=before_solve,
    )
    response = respond(request, answer, settings.retry_after_seconds)
    if isinstance(answer, Pending):
        return response
    response.headers["X-Recreate-Box"] = _corners(box)
    if box != asked:
        response.headers["X-Recreate-Clipped-From"] = _corners(asked)
    if "content-disposition" in response.headers:
        name = (
            f"diffim_{product.visit}_{product.detector}_"
            f"{_corners(box).replace(',', '_')}"
            f"{product.output_format.suffix}"
        )
        response.headers["Content-Disposition"] = (
            f"attachment; filename={name}"
        )
    return response


async def serve_solution(
    request: Request,
    services: Services,
    product: ProductRequest,
    *,
    before_solve: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """Answer the solution of a key: stored, or solved now."""
    solutions = services.regions.solution_service
    spec = await solutions.resolve(product)
    found = await solutions.get(
        spec, url=str(request.url), before_solve=before_solve
    )
    if isinstance(found, Pending):
        return respond(request, found, services.settings.retry_after_seconds)
    sha256 = hashlib.sha256(found.data).hexdigest()
    headers = {
        "ETag": f'"{sha256}"',
        "X-Cache": "hit" if found.was_stored else "miss",
        "X-Recreate-Solution": found.source,
        "X-Recreate-Recipe": found.solution.recipe,
        "X-Recreate-Recipe-Hash": spec.recipe_hash,
        "X-Recreate-Config-Hash": found.solution.config_hash,
        "X-Recreate-Code-Version": found.solution.code_version,
        "Cache-Control": "no-cache",
        "Content-Disposition": "attachment; filename=solution_"
        f"{spec.instrument}_{spec.visit}_{spec.detector}_"
        f"{found.solution.recipe}.fits",
    }
    etags = if_none_match(request)
    if "*" in etags or sha256 in etags:
        return Response(status_code=304, headers={"ETag": headers["ETag"]})
    return Response(found.data, media_type=FITS, headers=headers)
