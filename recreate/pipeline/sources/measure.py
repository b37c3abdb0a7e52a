"""Measurements on stamps: cutting them, centroids and PSF fluxes.

Every function works on a stack of square stamps at once, so that a
whole catalogue is measured with a few array operations per iteration
rather than a Python loop per source. Offsets are in pixels from each
stamp's centre pixel; pixels that fall off the image, are non-finite or
are otherwise unusable carry ``valid = False`` and weigh nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from recreate.numerics.robust import pairwise_scratch, pairwise_sum_with

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: FWHM of a Gaussian in units of its sigma: 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

#: Weighted-centroid iterations: each divides the error by ~4 or more.
CENTROID_ITERATIONS = 12


@dataclass(frozen=True, eq=False)
class StampStack:
    """Square stamps cut from an image at integer centres.

    Attributes
    ----------
    values, variance
        Arrays of shape ``(n, side, side)``; 0 where not ``valid``.
    valid
        Whether each stamp pixel is on the image and usable.
    cx, cy
        Array coordinates of each stamp's centre pixel.
    """

    values: FloatArray
    variance: FloatArray
    valid: BoolArray
    cx: IntArray
    cy: IntArray

    @property
    def half(self) -> int:
        """Half-side of the stamps: side = 2 * half + 1."""
        return int(self.values.shape[-1] // 2)

    def offsets(self) -> FloatArray:
        """Return pixel offsets -half..half along one stamp axis."""
        return np.arange(-self.half, self.half + 1, dtype=np.float64)

    def negated(self) -> StampStack:
        """Return the stamps with their values negated (for troughs)."""
        return StampStack(
            -self.values, self.variance, self.valid, self.cx, self.cy
        )


def cut_stamps(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    usable: BoolArray,
    cx: npt.ArrayLike,
    cy: npt.ArrayLike,
    half: int,
    *,
    labels: npt.NDArray[np.integer] | None = None,
    own: npt.ArrayLike | None = None,
) -> StampStack:
    """Cut ``(2*half+1)``-square stamps centred on integer pixels.

    Parameters
    ----------
    image, variance
        The planes to cut from.
    usable
        Pixels that may be used (e.g. finite and not masked bad).
    cx, cy
        Centre pixels, array coordinates; may lie near or off the edge.
    half
        Half-side of the stamps.
    labels, own
        Optionally a footprint label image and each stamp's own label:
        pixels of other footprints are then invalid, so a neighbour does
        not bias a measurement.

    Returns
    -------
    stamps
        The stamps; pixels off the image, not usable or with a
        non-finite value or variance are invalid and hold 0.
    """
    cx = np.asarray(cx, dtype=np.int64)
    cy = np.asarray(cy, dtype=np.int64)
    height, width = image.shape
    offsets = np.arange(-half, half + 1)
    rows = cy[:, None] + offsets
    cols = cx[:, None] + offsets
    inside = ((rows >= 0) & (rows < height))[:, :, None] & (
        (cols >= 0) & (cols < width)
    )[:, None, :]
    r = np.clip(rows, 0, height - 1)[:, :, None]
    c = np.clip(cols, 0, width - 1)[:, None, :]
    values = image[r, c].astype(np.float64)
    var = variance[r, c].astype(np.float64)
    valid = inside & usable[r, c] & np.isfinite(values) & np.isfinite(var)
    valid &= var >= 0
    if labels is not None and own is not None:
        owner = labels[r, c]
        mine = np.asarray(own)[:, None, None]
        valid &= (owner == 0) | (owner == mine)
    return StampStack(
        values=np.where(valid, values, 0.0),
        variance=np.where(valid, var, 0.0),
        valid=valid,
        cx=cx,
        cy=cy,
    )


def stamp_touches(
    flags: npt.NDArray[np.bool_],
    cx: npt.ArrayLike,
    cy: npt.ArrayLike,
    half: int,
) -> BoolArray:
    """Say whether each stamp holds a flagged pixel or leaves the image.

    Parameters
    ----------
    flags
        Boolean image of pixels a stamp must not contain.
    cx, cy
        Stamp centre pixels.
    half
        Stamp half-side.

    Returns
    -------
    touches
        True where the ``(2*half+1)``-square stamp reaches a flagged pixel
        or the outside of the image.
    """
    cx = np.asarray(cx, dtype=np.int64)
    cy = np.asarray(cy, dtype=np.int64)
    height, width = flags.shape
    off_image = (
        (cx - half < 0)
        | (cy - half < 0)
        | (cx + half >= width)
        | (cy + half >= height)
    )
    offsets = np.arange(-half, half + 1)
    rows = np.clip(cy[:, None] + offsets, 0, height - 1)[:, :, None]
    cols = np.clip(cx[:, None] + offsets, 0, width - 1)[:, None, :]
    return off_image | flags[rows, cols].any(axis=(1, 2))


def gaussian_centroids(
    stamps: StampStack, sigma: float
) -> tuple[FloatArray, FloatArray]:
    """Return centroids from a circular Gaussian weight of width sigma.

    The weight follows the centroid; the fixed point, where the weighted
    first moment vanishes, is the centre of any point-symmetric profile.
    Each step is scaled by the factor that makes it exact for a Gaussian
    source, estimated from the weighted second moment.

    Parameters
    ----------
    stamps
        Stamps centred on the peaks.
    sigma
        Weight width in pixels (the PSF's Gaussian sigma).

    Returns
    -------
    dx, dy
        Offsets of the centroids from the stamp centres; the peak itself
        (0, 0) where the weighted flux is not positive.
    """
    n = stamps.values.shape[0]
    dx, dy = np.zeros(n), np.zeros(n)
    grid = stamps.offsets()
    limit = float(stamps.half) / 2.0
    values = np.ascontiguousarray(stamps.values, dtype=np.float64)
    exponent = np.empty(values.shape)
    for _ in range(CENTROID_ITERATIONS):
        # np.exp(-0.5 * (ux**2 + uy**2) / sigma**2) * values, then each
        # stamp's sums of w, w ux, w uy and w (ux^2 + uy^2), as numpy's
        # arrays give them (`_centroid_sums`).
        _centroid_exponents(grid, dx, dy, sigma**2, exponent)
        weight = np.exp(exponent, out=exponent)
        total, sum_x, sum_y, sum_r2 = _centroid_sums(
            values, weight, grid, dx, dy
        )
        good = total > 0
        safe = np.where(good, total, 1.0)
        mx = sum_x / safe
        my = sum_y / safe
        trace = sum_r2 / safe
        # Gaussian source of width s under a weight of width sigma: the
        # weighted mean moves (s^2 + sigma^2) / sigma^2 times too little.
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.clip(2 * sigma**2 / (2 * sigma**2 - trace), 1.0, 3.0)
        gain = np.where(np.isfinite(gain), gain, 1.0)
        dx = np.where(good, np.clip(dx + gain * mx, -limit, limit), dx)
        dy = np.where(good, np.clip(dy + gain * my, -limit, limit), dy)
    return dx, dy


def psf_fluxes(
    stamps: StampStack, dx: FloatArray, dy: FloatArray, sigma: float
) -> tuple[FloatArray, FloatArray]:
    """Return Gaussian-PSF fluxes and their errors at given centroids.

    As meas_base's PsfFlux: flux = sum(I P) / sum(P^2) with P the
    unit-flux PSF (here a circular Gaussian of width sigma), unweighted
    by the variance; error^2 = sum(V P^2) / sum(P^2)^2.

    Parameters
    ----------
    stamps
        Stamps around the sources.
    dx, dy
        Centroid offsets from the stamp centres.
    sigma
        Gaussian PSF width in pixels.

    Returns
    -------
    flux, error
        In image units; NaN where no stamp pixel is valid.
    """
    grid = stamps.offsets()
    ux = grid[None, None, :] - dx[:, None, None]
    uy = grid[None, :, None] - dy[:, None, None]
    model = np.exp(-0.5 * (ux**2 + uy**2) / sigma**2) / (2 * np.pi * sigma**2)
    model = np.where(stamps.valid, model, 0.0)
    norm = (model**2).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = (model * stamps.values).sum(axis=(1, 2)) / norm
        error = np.sqrt((model**2 * stamps.variance).sum(axis=(1, 2))) / norm
    return flux, error


@numba.njit(cache=True, nogil=True)
def _centroid_exponents(
    grid: FloatArray,
    dx: FloatArray,
    dy: FloatArray,
    sigma2: float,
    out: FloatArray,
) -> None:
    """Fill ``out[k]`` with ``-0.5 * (ux**2 + uy**2) / sigma**2``.

    The offsets from stamp ``k``'s centroid, in numpy's order of
    operations (``sigma2`` is Python's ``sigma**2``).
    """
    size = grid.shape[0]
    for k in range(len(dx)):
        for i in range(size):
            uy = grid[i] - dy[k]
            for j in range(size):
                ux = grid[j] - dx[k]
                out[k, i, j] = -0.5 * (ux * ux + uy * uy) / sigma2


@numba.njit(cache=True, nogil=True)
def _centroid_sums(
    values: FloatArray,
    weight: FloatArray,
    grid: FloatArray,
    dx: FloatArray,
    dy: FloatArray,
) -> FloatArray:
    """Return each stamp's weighted sums (rows of the result).

    With ``w = weight * values``: the sums of ``w``, ``w ux``, ``w uy``
    and ``w (ux^2 + uy^2)``, each added as numpy adds a contiguous stamp.
    """
    n, size = values.shape[0], grid.shape[0]
    count = size * size
    out = np.empty((4, n))
    terms = np.empty((4, count))
    tasks, sums = pairwise_scratch()
    for k in range(n):
        p = 0
        for i in range(size):
            uy = grid[i] - dy[k]
            for j in range(size):
                ux = grid[j] - dx[k]
                w = weight[k, i, j] * values[k, i, j]
                terms[0, p] = w
                terms[1, p] = w * ux
                terms[2, p] = w * uy
                terms[3, p] = w * (ux * ux + uy * uy)
                p += 1
        for row in range(4):
            out[row, k] = pairwise_sum_with(terms[row], 0, count, tasks, sums)
    return out
