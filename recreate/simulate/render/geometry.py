"""Sky geometry through the WCS: source positions and local Jacobians.

Pixel coordinates are astropy's 0-based array coordinates and the local
sky frame is GalSim's ``(u, v)`` (``+u`` West, ``+v`` North), as the
`recreate.simulate.render` package docstring describes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from recreate.simulate.render.psf import MAX_STAMP_RADIUS
from recreate.simulate.render.sources import FloatArray, SourceTable

if TYPE_CHECKING:
    from astropy.wcs import WCS

#: Finite-difference step, in pixels, for the local WCS Jacobian.
_JACOBIAN_STEP = 0.5

_ARCSEC_PER_RADIAN = 180.0 * 3600.0 / math.pi


def source_positions(
    wcs: WCS, shape: tuple[int, int], sources: SourceTable
) -> tuple[FloatArray, FloatArray]:
    """Return the array positions of sources, NaN for far-away ones.

    Sources more than a generous margin (the largest stamp, plus slack
    for distortion) off the image are not inverted: a SIP polynomial can
    diverge there, and they could not touch the image anyway. So are
    those whose SIP inversion fails while the linear (TAN) part of the
    WCS puts them beyond the reach of any stamp.

    Raises
    ------
    ValueError
        If the WCS fails to place a source that could touch the image.
    """
    x = np.full(len(sources), np.nan)
    y = np.full(len(sources), np.nan)
    near = np.flatnonzero(_near_image(wcs, shape, sources.ra, sources.dec))
    if len(near) == 0:
        return x, y
    ra, dec = sources.ra[near], sources.dec[near]
    px, py = wcs.all_world2pix(ra, dec, 0, tolerance=1e-8, quiet=True)
    back_ra, back_dec = wcs.all_pix2world(px, py, 0)
    miss = _separation_arcsec(ra, dec, back_ra, back_dec)
    # 1e-4 arcsec is well under a thousandth of a pixel.
    placed = miss < 1e-4
    lost = near[~placed]
    if np.any(_within_reach(wcs, shape, sources.ra[lost], sources.dec[lost])):
        index = int(lost[0])
        raise ValueError(
            f"the WCS cannot place source {index} at "
            f"({sources.ra[index]}, {sources.dec[index]}) deg"
        )
    x[near[placed]], y[near[placed]] = px[placed], py[placed]
    return x, y


def _within_reach(
    wcs: WCS, shape: tuple[int, int], ra: FloatArray, dec: FloatArray
) -> npt.NDArray[np.bool_]:
    """Flag positions whose linear-WCS pixel is within a stamp of the array."""
    if len(ra) == 0:
        return np.zeros(0, dtype=np.bool_)
    px, py = wcs.wcs_world2pix(ra, dec, 0)
    height, width = shape
    reach = MAX_STAMP_RADIUS
    inside_x = (px > -reach) & (px < width - 1 + reach)
    inside_y = (py > -reach) & (py < height - 1 + reach)
    # NaN (beyond the projection's horizon) compares False: not in reach.
    return np.asarray(inside_x & inside_y)


def local_jacobians(wcs: WCS, x: FloatArray, y: FloatArray) -> FloatArray:
    """Return the local WCS Jacobian at array positions, arcsec/pixel.

    Returns
    -------
    jacobian
        Array of shape ``(n, 2, 2)`` holding ``[[du/dx, du/dy],
        [dv/dx, dv/dy]]`` with ``(u, v)`` GalSim's sky frame (``+u``
        West, ``+v`` North), from central differences of the full WCS
        (SIP included).
    """
    h = _JACOBIAN_STEP
    xs = np.concatenate([x, x + h, x - h, x, x])
    ys = np.concatenate([y, y, y, y + h, y - h])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    n = len(x)
    ra0, dec0 = ra[:n], dec[:n]
    u, v = _tangent_offsets(np.tile(ra0, 5), np.tile(dec0, 5), ra, dec)
    u, v = u.reshape(5, n), v.reshape(5, n)
    jacobian = np.empty((n, 2, 2))
    jacobian[:, 0, 0] = (u[1] - u[2]) / (2 * h)
    jacobian[:, 0, 1] = (u[3] - u[4]) / (2 * h)
    jacobian[:, 1, 0] = (v[1] - v[2]) / (2 * h)
    jacobian[:, 1, 1] = (v[3] - v[4]) / (2 * h)
    return jacobian


def _near_image(
    wcs: WCS,
    shape: tuple[int, int],
    ra: FloatArray,
    dec: FloatArray,
) -> npt.NDArray[np.bool_]:
    """Flag sources within reach of the array (its stamps could touch)."""
    height, width = shape
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    jacobian = local_jacobians(wcs, np.array([cx]), np.array([cy]))[0]
    scale = math.sqrt(abs(float(np.linalg.det(jacobian))))
    centre_ra, centre_dec = wcs.all_pix2world([cx], [cy], 0)
    # 1.5: slack for distortion and for a non-square pixel grid.
    reach = 1.5 * (0.5 * math.hypot(width, height) + MAX_STAMP_RADIUS) * scale
    separation = _separation_arcsec(centre_ra[0], centre_dec[0], ra, dec)
    return np.asarray(separation < reach)


def _tangent_offsets(
    ra0: FloatArray, dec0: FloatArray, ra: FloatArray, dec: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Project ``(ra, dec)`` on the tangent plane at ``(ra0, dec0)``.

    Returns GalSim's ``(u, v)`` in arcsec: ``+u`` West, ``+v`` North.
    """
    a0, d0 = np.radians(ra0), np.radians(dec0)
    a, d = np.radians(ra), np.radians(dec)
    cos_c = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cos_c
    eta = (
        np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)
    ) / cos_c
    return -xi * _ARCSEC_PER_RADIAN, eta * _ARCSEC_PER_RADIAN


def _separation_arcsec(
    ra1: FloatArray | float,
    dec1: FloatArray | float,
    ra2: FloatArray,
    dec2: FloatArray,
) -> FloatArray:
    """Return angular separations in arcsec (haversine, small-angle safe)."""
    a1, d1 = np.radians(ra1), np.radians(dec1)
    a2, d2 = np.radians(ra2), np.radians(dec2)
    term = (
        np.sin((d2 - d1) / 2) ** 2
        + np.cos(d1) * np.cos(d2) * np.sin((a2 - a1) / 2) ** 2
    )
    angle = 2 * np.arcsin(np.sqrt(np.clip(term, 0.0, 1.0)))
    return np.asarray(angle * _ARCSEC_PER_RADIAN, dtype=np.float64)
