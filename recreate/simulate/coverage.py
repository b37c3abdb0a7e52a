"""Which pixels of an image a set of sky footprints covers.

The template of a patch covers only where its input visits' detectors
fell. Each footprint is a detector's four sky corners; on the scale of a
detector its edges are straight lines in any nearby TAN pixel frame, so
a footprint becomes a convex quadrilateral in the target's pixels and is
rasterised row by row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS


def detector_corners_sky(
    wcs: WCS, shape: tuple[int, int]
) -> npt.NDArray[np.float64]:
    """Return the (ra, dec) of an array's outer corners, counter-clockwise.

    Parameters
    ----------
    wcs
        The array's WCS.
    shape
        ``(height, width)`` of the array.
    """
    height, width = shape
    xs = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    return np.column_stack([ra, dec])


def coverage_mask(
    shape: tuple[int, int],
    wcs: WCS,
    footprints: Sequence[npt.NDArray[np.float64]],
) -> npt.NDArray[np.bool_]:
    """Return which pixels of an image any footprint covers.

    Parameters
    ----------
    shape
        ``(height, width)`` of the target image.
    wcs
        The target image's WCS.
    footprints
        Sky quadrilaterals, each a ``(4, 2)`` array of (ra, dec) corners
        in order around the quadrilateral.

    Returns
    -------
    covered
        Boolean array of ``shape``: True where a pixel centre lies inside
        at least one footprint.
    """
    covered = np.zeros(shape, dtype=bool)
    for corners in footprints:
        x, y = wcs.world_to_pixel_values(corners[:, 0], corners[:, 1])
        _fill_convex_quad(covered, np.column_stack([x, y]))
    return covered


def _fill_convex_quad(
    covered: npt.NDArray[np.bool_], quad: npt.NDArray[np.float64]
) -> None:
    """Set the pixels whose centres lie inside a convex quadrilateral."""
    height, width = covered.shape
    y_lo = max(int(np.ceil(quad[:, 1].min())), 0)
    y_hi = min(int(np.floor(quad[:, 1].max())), height - 1)
    if y_lo > y_hi:
        return
    rows = np.arange(y_lo, y_hi + 1, dtype=float)
    x_min = np.full(rows.shape, -np.inf)
    x_max = np.full(rows.shape, np.inf)
    # Orient the edges so that the inside is on the left of each edge.
    area = _signed_area(quad)
    order = quad if area > 0 else quad[::-1]
    for start, end in zip(order, np.roll(order, -1, axis=0), strict=True):
        dx, dy = end - start
        # Inside: dx * (y - y0) - dy * (x - x0) >= 0, a bound on x per row.
        rhs = dx * (rows - start[1])
        if dy > 0:
            x_max = np.minimum(x_max, start[0] + rhs / dy)
        elif dy < 0:
            x_min = np.maximum(x_min, start[0] + rhs / dy)
        else:
            outside = rhs < 0
            x_min[outside] = np.inf
    lo = np.clip(np.ceil(x_min), 0, width).astype(int)
    hi = np.clip(np.floor(x_max) + 1, 0, width).astype(int)
    for row, start_x, end_x in zip(rows.astype(int), lo, hi, strict=True):
        if end_x > start_x:
            covered[row, start_x:end_x] = True


def _signed_area(quad: npt.NDArray[np.float64]) -> float:
    """Return the shoelace signed area: positive when counter-clockwise."""
    x, y = quad[:, 0], quad[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def coverage_fraction(
    wcs: WCS,
    shape: tuple[int, int],
    footprints: Sequence[npt.NDArray[np.float64]],
    samples: int = 256,
) -> float:
    """Return the fraction of an image that the footprints cover.

    Pixel positions on a ``samples`` x ``samples`` grid are tested
    against every footprint in a gnomonic projection about the image
    centre, where the footprints' edges are straight to far better than
    a pixel.

    Parameters
    ----------
    wcs
        The image's WCS.
    shape
        ``(height, width)`` of the image.
    footprints
        Sky quadrilaterals, ``(4, 2)`` arrays of (ra, dec) corners.
    samples
        Grid points per axis.
    """
    height, width = shape
    xs, ys = np.meshgrid(
        (np.arange(samples) + 0.5) * width / samples - 0.5,
        (np.arange(samples) + 0.5) * height / samples - 0.5,
    )
    ra, dec = wcs.pixel_to_world_values(xs.ravel(), ys.ravel())
    centre = wcs.pixel_to_world_values((width - 1) / 2, (height - 1) / 2)
    points = _gnomonic(np.column_stack([ra, dec]), centre)
    covered = np.zeros(len(points), dtype=bool)
    for corners in footprints:
        quad = _gnomonic(corners, centre)
        covered |= _inside_convex(points, quad)
    return float(covered.mean())


def _gnomonic(
    radec: npt.NDArray[np.float64], centre: Sequence[float]
) -> npt.NDArray[np.float64]:
    """Project (ra, dec) rows in degrees onto the plane tangent at centre."""
    ra, dec = np.radians(radec[:, 0]), np.radians(radec[:, 1])
    ra0, dec0 = np.radians(float(centre[0])), np.radians(float(centre[1]))
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(
        ra - ra0
    )
    x = np.cos(dec) * np.sin(ra - ra0) / cos_c
    y = (
        np.cos(dec0) * np.sin(dec)
        - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)
    ) / cos_c
    return np.column_stack([x, y])


def _inside_convex(
    points: npt.NDArray[np.float64], quad: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Say which points lie inside a convex polygon (either orientation)."""
    sign = 1.0 if _signed_area(quad) > 0 else -1.0
    inside = np.ones(len(points), dtype=bool)
    for start, end in zip(quad, np.roll(quad, -1, axis=0), strict=True):
        cross = (end[0] - start[0]) * (points[:, 1] - start[1]) - (
            end[1] - start[1]
        ) * (points[:, 0] - start[0])
        inside &= sign * cross >= 0
    return inside
