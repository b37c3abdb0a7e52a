"""Point-source test of kernel candidates (ScienceSourceSelector unresolved).

v29's (and v30's) ScienceSourceSelector keeps a source when its
``base_ClassificationSizeExtendedness_value`` is below 0.1
(meas_algorithms RequireUnresolved). meas_base computes that value from
the adaptive second moments of the source (``T = ixx + iyy``) and of the
PSF at its position (``T_psf``):

    value = 1 - exp(-chi^2 / 2),  chi = (T - T_psf) / T_psf ** 0.5,

so a source is unresolved when ``|T - T_psf| < 0.459 sqrt(T_psf)``
(``T`` in pixels^2): both larger sources (galaxies) and smaller ones
(cosmic rays, hot pixels) fail. A failed moment measurement gives NaN,
which fails too. The moments are SdssShape-like adaptive moments,
neighbouring footprints masked, both including the pixel response.

T_psf comes, in order of preference, from

* the exposure's PSF grid: the trace of each node's image, interpolated
  bilinearly (nodes clamp at the grid's edges);
* the image's own compact locus (`recreate.pipeline.sources.psfsize`), over the
  candidates of S/N >= 30, when it holds at least 5 of them: adaptive
  sizes depend on the profile (a Kolmogorov PSF's is ~6 % larger than
  FWHM / 2.3548), so the stars themselves are the better reference;
* a Gaussian of the given FWHM: ``2 (sigma^2 + 1/12)`` px^2.
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

#: meas_base ClassificationSizeExtendedness ``exponent`` (default): the
#: PSF trace is raised to it to normalise the size difference.
EXTENDEDNESS_EXPONENT = 0.5


def unresolved(
    science: Exposure,
    detections: Detections,
    rows: npt.NDArray[np.intp],
    science_fwhm: float,
    max_extendedness: float = 0.1,
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
    max_extendedness
        RequireUnresolved's maximum (0.1).

    Returns
    -------
    point_like
        One flag per row: the extendedness value is below
        ``max_extendedness``; False where the moments failed.
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
    bright = sample.snr >= MIN_STAR_SNR
    reference = _psf_trace(
        science,
        detections.x[rows],
        detections.y[rows],
        (sample.radius[bright], sample.trace[bright]),
        sigma,
    )
    return extendedness(sample.trace, reference) < max_extendedness


def extendedness(trace: FloatArray, psf_trace: FloatArray) -> FloatArray:
    """Return ``base_ClassificationSizeExtendedness_value`` (module notes).

    Parameters
    ----------
    trace, psf_trace
        ``ixx + iyy`` of the sources and of the PSF at their positions,
        pixels^2; NaN gives NaN.
    """
    with np.errstate(invalid="ignore"):
        chi = (trace - psf_trace) / psf_trace**EXTENDEDNESS_EXPONENT
        return 1.0 - np.exp(-0.5 * chi**2)


def _psf_trace(
    science: Exposure,
    x: FloatArray,
    y: FloatArray,
    bright: tuple[FloatArray, FloatArray],
    sigma: float,
) -> FloatArray:
    """Return the PSF's adaptive-moment trace at each position."""
    if science.psf is not None and science.psf.grid is not None:
        return _grid_trace(science.psf.grid, x, y, sigma)
    radii, traces = bright
    members = compact_locus(radii)
    if np.count_nonzero(members) >= MIN_STARS:
        return np.full(len(x), float(np.median(traces[members])))
    # A pixel-integrated Gaussian: its variance grows by 1/12 px^2.
    return np.full(len(x), 2.0 * (sigma**2 + 1.0 / 12.0))


def _grid_trace(
    grid: PsfGrid, x: FloatArray, y: FloatArray, sigma: float
) -> FloatArray:
    """Interpolate the PSF grid nodes' traces bilinearly at (x, y)."""
    ny, nx, h, w = grid.images.shape
    images = grid.images.reshape(ny * nx, h, w).astype(np.float64)
    stamps = StampStack(
        values=images,
        variance=np.zeros_like(images),
        valid=np.ones(images.shape, dtype=np.bool_),
        cx=np.zeros(ny * nx, dtype=np.int64),
        cy=np.zeros(ny * nx, dtype=np.int64),
    )
    traces = adaptive_moments(stamps, sigma).trace.reshape(ny, nx)
    fallback = (
        np.nanmedian(traces) if np.any(np.isfinite(traces)) else 2 * sigma**2
    )
    radii = np.where(np.isfinite(traces), traces, fallback)
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
