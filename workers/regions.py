"""Regions of difference images: the one seam every cutout face calls.

A region is a box of a detector's parent pixels. The faces that cut
(SODA cutouts, stamps and light curves, previews of a cutout, the
``?box=`` parameter) turn what they were given (a sky stencil, a centre
and a size) into a `PixelBox` with the helpers here, clip it to the
detector with `clip_box`, and ask `RegionService.region` for its bytes.

Today a region is cut from the full product, which the product service
serves from the cache or recreates: the same pixels, bit for bit, but a
first stamp of a detector costs a whole recreation. Solve-once /
render-any-region (stored solutions, a render of just the box) replaces
the body of `RegionService.region` and nothing else.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits

from recreate.errors import InvalidRequestError, ProcessingError
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox
from workers.models import ProductRequest
from workers.products import Answer, Pending, ProductService, Served

__all__ = [
    "Region",
    "RegionService",
    "box_around",
    "box_of_sky_points",
    "clip_box",
    "detector_box",
]


@dataclass(frozen=True)
class Region:
    """The bytes of a region, and what they are.

    Attributes
    ----------
    data
        A FITS file in the product's layout (DP1: IMAGE, MASK, VARIANCE,
        the kernel), holding only the box, with its ``xy0`` and a WCS for
        the region.
    box
        The box the file holds (clipped to the detector).
    meta
        The full product's metadata (recipe, inputs, hashes).
    cache_state
        ``hit`` when the full product came from the cache.
    """

    data: bytes
    box: PixelBox
    meta: dict[str, Any]
    cache_state: str


def detector_box(geometry: ImageGeometry) -> PixelBox:
    """Return the detector's whole box of parent pixels."""
    height, width = geometry.shape
    return PixelBox(geometry.xy0[0], geometry.xy0[1], width, height)


def clip_box(box: PixelBox, geometry: ImageGeometry) -> PixelBox:
    """Return the part of ``box`` on the detector (empty if none)."""
    return box.intersection(detector_box(geometry))


def box_around(
    geometry: ImageGeometry, ra: float, dec: float, size: int
) -> PixelBox:
    """Return the ``size`` x ``size`` box centred on a sky position.

    The centre pixel is the one the position falls in; an even size
    puts the extra column and row on the low side. The box is not
    clipped.

    Raises
    ------
    InvalidRequestError
        If the detector has no sky WCS, or ``size`` is not positive.
    """
    if size <= 0:
        raise InvalidRequestError(f"size must be positive, got {size}")
    (x,), (y,) = _sky_to_parent(geometry, [ra], [dec])
    cx, cy = math.floor(x + 0.5), math.floor(y + 0.5)
    half = size // 2
    return PixelBox(cx - half, cy - half, size, size)


def box_of_sky_points(
    geometry: ImageGeometry,
    ra: Sequence[float],
    dec: Sequence[float],
) -> PixelBox:
    """Return the smallest box of whole pixels holding sky points.

    For a stencil (a circle, a polygon, a range), pass points on its
    outline dense enough that the outline between them stays within a
    pixel of the chords. The box is not clipped.

    Raises
    ------
    InvalidRequestError
        If the detector has no sky WCS, or a point does not project.
    """
    xs, ys = _sky_to_parent(geometry, ra, dec)
    x0, y0 = math.floor(xs.min() + 0.5), math.floor(ys.min() + 0.5)
    x1, y1 = math.floor(xs.max() + 0.5), math.floor(ys.max() + 0.5)
    return PixelBox(x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def _sky_to_parent(
    geometry: ImageGeometry, ra: Sequence[float], dec: Sequence[float]
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], ...]:
    """Return parent-frame pixel positions of sky points (degrees)."""
    if geometry.wcs is None:
        raise InvalidRequestError(
            "the detector has no sky WCS: give a pixel box instead"
        )
    x, y = geometry.wcs.all_world2pix(
        np.asarray(ra, np.float64), np.asarray(dec, np.float64), 0
    )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidRequestError(
            "a position does not project onto the detector's pixel grid"
        )
    return x + geometry.xy0[0], y + geometry.xy0[1]


@dataclass
class RegionService:
    """Regions of products: geometry first, then the pixels of a box.

    Parameters
    ----------
    products
        The product service (cache, broker, Butler).
    """

    products: ProductService

    async def geometry(self, request: ProductRequest) -> ImageGeometry:
        """Return the detector's WCS, ``xy0`` and shape (headers only).

        Raises
        ------
        DataNotFoundError
            If the key is unknown.
        """
        return await self.products.geometry(request)

    async def region(
        self, request: ProductRequest, box: PixelBox
    ) -> Region | Pending:
        """Return the pixels of ``box`` (already clipped, not empty).

        A `Pending` comes back when the full product is still being
        recreated after the sync timeout (a job to follow).

        Raises
        ------
        InvalidRequestError
            If the box is empty.
        DataNotFoundError, NoOverlapError
            As the product service raises them.
        """
        if box.empty:
            raise InvalidRequestError(f"the box {tuple(box)} holds no pixel")
        answer = await self.products.get(request)
        if isinstance(answer, Pending):
            return answer
        served = _served(answer, request)
        data = await _collect(served)
        cut = await asyncio.to_thread(_cut_fits, data, box)
        return Region(cut, box, dict(served.info.meta), served.cache_state)


def _served(answer: Answer, request: ProductRequest) -> Served:
    """Return the served product (a full GET never answers 304)."""
    if not isinstance(answer, Served):
        raise ProcessingError(
            f"the product of {request.describe()} came back as "
            f"{type(answer).__name__}"
        )
    return answer


async def _collect(served: Served) -> bytes:
    """Return a served product's bytes (streamed or whole)."""
    body = served.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return b"".join([chunk async for chunk in body])


def _cut_fits(data: bytes, box: PixelBox) -> bytes:
    """Return a DP1-layout product cut to ``box`` (with its kernel)."""
    from recreate.io.difference import difference_bytes, read_kernel
    from recreate.io.dp1_read import read_dp1_region

    with fits.open(io.BytesIO(data), memmap=False) as hdulist:
        exposure = read_dp1_region(hdulist, box)
        kernel = read_kernel(hdulist)
    return difference_bytes(exposure, kernel, compress=False)
