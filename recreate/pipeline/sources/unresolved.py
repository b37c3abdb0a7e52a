"""Point-source test of kernel candidates (ScienceSourceSelector unresolved).

A source is unresolved when ``0.8 <= r / r_psf <= 1.1``, r being its
adaptive-moment determinant radius (neighbouring footprints masked) and
r_psf that of the PSF at its position, both including the pixel
response. For Gaussian profiles, base_ClassificationExtendedness's
``psfFlux / modelFlux < 0.925`` is ``r / r_psf > 1.08``: the upper bound
rounds it to 10 %. The lower bound rejects cosmic rays and hot pixels,
which the ``src`` catalogue DP1 used would have had repaired.

r_psf comes, in order of preference, from

* the exposure's PSF grid: the radius of each node's image, interpolated
  bilinearly (nodes clamp at the grid's edges);
* the image's own compact locus (`recreate.pipeline.sources.psfsize`), over the
  candidates of S/N >= 30, when it holds at least 5 of them: adaptive
  radii depend on the profile (a Kolmogorov PSF's is ~6 % larger than
  FWHM / 2.3548), so the stars themselves are the better reference;
* a Gaussian of the given FWHM: sqrt(sigma^2 + 1/12) px.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recreate.exposure import Exposure, PsfGrid
from recreate.pipeline.sources.detection import Detections
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA, StampStack
from recreate.pipeline.sources.moments import adaptive_moments
from recreate.pipeline.sources.psfsize import (
    MIN_STAR_SNR,
    MIN_STARS,
    compact_locus,
    star_sample,
)

FloatArray = npt.NDArray[np.float64]

#: Size ratio bounds of an unresolved source.
UNRESOLVED_RATIO = (0.8, 1.1)


def unresolved(
    science: Exposure,
    detections: Detections,
    rows: npt.NDArray[np.intp],
    science_fwhm: float,
) -> npt.NDArray[np.bool_]:
    """Say which of ``rows`` are point-like (module notes).

    Parameters
    ----------
    science
        The exposure the detections were made on.
    detections
        The detections.
    rows
        Which detections to judge.
    science_fwhm
        PSF FWHM in pixels (starting weight, and the last fallback).

    Returns
    -------
    point_like
        One flag per row: the size ratio lies in `UNRESOLVED_RATIO`; False
        where the moments failed.
    """
    sigma = science_fwhm / FWHM_PER_SIGMA
    half = int(np.ceil(2.5 * science_fwhm)) + 2
    sample = star_sample(
        science.image,
        science.variance,
        science.mask,
        science.mask_planes,
        detections,
        rows,
        half,
        sigma,
    )
    reference = _psf_radius(
        science,
        detections.x[rows],
        detections.y[rows],
        sample.radius[sample.snr >= MIN_STAR_SNR],
        sigma,
    )
    with np.errstate(invalid="ignore"):
        ratio = sample.radius / reference
    low, high = UNRESOLVED_RATIO
    return (ratio >= low) & (ratio <= high)


def _psf_radius(
    science: Exposure,
    x: FloatArray,
    y: FloatArray,
    bright_radii: FloatArray,
    sigma: float,
) -> FloatArray:
    """Return the PSF's adaptive-moment radius at each position."""
    if science.psf is not None and science.psf.grid is not None:
        return _grid_radius(science.psf.grid, x, y, sigma)
    members = compact_locus(bright_radii)
    if np.count_nonzero(members) >= MIN_STARS:
        return np.full(len(x), float(np.median(bright_radii[members])))
    # A pixel-integrated Gaussian: its variance grows by 1/12 px^2.
    return np.full(len(x), float(np.sqrt(sigma**2 + 1.0 / 12.0)))


def _grid_radius(
    grid: PsfGrid, x: FloatArray, y: FloatArray, sigma: float
) -> FloatArray:
    """Interpolate the PSF grid nodes' radii bilinearly at (x, y)."""
    ny, nx, h, w = grid.images.shape
    images = grid.images.reshape(ny * nx, h, w).astype(np.float64)
    stamps = StampStack(
        values=images,
        variance=np.zeros_like(images),
        valid=np.ones(images.shape, dtype=np.bool_),
        cx=np.zeros(ny * nx, dtype=np.int64),
        cy=np.zeros(ny * nx, dtype=np.int64),
    )
    radii = adaptive_moments(stamps, sigma).radius.reshape(ny, nx)
    fallback = np.nanmedian(radii) if np.any(np.isfinite(radii)) else sigma
    radii = np.where(np.isfinite(radii), radii, fallback)
    wx, ix = _brackets(grid.xs, x)
    wy, iy = _brackets(grid.ys, y)
    ix1 = np.minimum(ix + 1, nx - 1)
    iy1 = np.minimum(iy + 1, ny - 1)
    return (
        (1 - wy) * (1 - wx) * radii[iy, ix]
        + (1 - wy) * wx * radii[iy, ix1]
        + wy * (1 - wx) * radii[iy1, ix]
        + wy * wx * radii[iy1, ix1]
    )


def _brackets(
    nodes: FloatArray, values: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Return bilinear weights and lower node indices (edges clamp)."""
    if len(nodes) == 1:
        return np.zeros(len(values)), np.zeros(len(values), dtype=np.intp)
    index = np.clip(np.searchsorted(nodes, values) - 1, 0, len(nodes) - 2)
    step = nodes[index + 1] - nodes[index]
    weight = np.clip((values - nodes[index]) / step, 0.0, 1.0)
    return weight, index
