"""Adaptive second moments of stamps, as SdssShape and HSM iterate them.

The weight is an elliptical Gaussian; at each step the centroid moves by
the weighted first moment (scaled to be exact for a Gaussian source) and
the weight covariance becomes twice the weighted second moments. The
fixed point for a Gaussian source is its own covariance; for any source
the result is the size measure LSST's ``computeShape`` and SdssShape
report. All stamps iterate together; each leaves once converged.

Each step's pixel sums are compiled (`_weight_exponents`,
`_weighted_sums`) but make numpy's operations in numpy's order: the
elementwise products as the array expressions evaluate them, the
Gaussian through ``np.exp`` itself, and each stamp's sums as
``sum(axis=(1, 2))`` adds a contiguous stamp (pairwise, as
`recreate.numerics.robust.pairwise_sum`). So the moments are the plain
numpy formulation's, bit for bit, without its dozen stamp-sized
temporaries a step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from recreate.numerics.robust import pairwise_scratch, pairwise_sum_with
from recreate.pipeline.sources.measure import StampStack

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Adaptive-moment iterations: the weight converges by ~1/2 per step.
MOMENT_ITERATIONS = 40

#: Convergence: centroid change in pixels, moment change relative to the
#: weight's trace (SdssShape's ``tol1`` is 1e-5).
CENTROID_TOLERANCE = 1e-4
MOMENT_TOLERANCE = 1e-5

#: Limits on the adaptive weight, in pixels^2 (sigma 0.2 px to the stamp).
_MIN_WEIGHT_VARIANCE = 0.04


@dataclass(frozen=True, eq=False)
class AdaptiveMoments:
    """Adaptive (elliptical Gaussian-weighted) second moments.

    Attributes
    ----------
    dx, dy
        Centroid offsets from the stamp centre pixel.
    ixx, iyy, ixy
        Second moments in pixels^2; for a Gaussian source they are its
        covariance (SdssShape's convention).
    ok
        Whether the iteration converged to a positive-definite shape.
    """

    dx: FloatArray
    dy: FloatArray
    ixx: FloatArray
    iyy: FloatArray
    ixy: FloatArray
    ok: BoolArray

    @property
    def radius(self) -> FloatArray:
        """Determinant radius (ixx*iyy - ixy^2)^(1/4), NaN where not ok."""
        det = self.ixx * self.iyy - self.ixy**2
        with np.errstate(invalid="ignore"):
            return np.where(self.ok, np.sqrt(np.sqrt(det)), np.nan)

    @property
    def trace(self) -> FloatArray:
        """``ixx + iyy`` in pixels^2, NaN where not ok."""
        return np.where(self.ok, self.ixx + self.iyy, np.nan)


def adaptive_moments(stamps: StampStack, sigma0: float) -> AdaptiveMoments:
    """Return adaptive second moments, as SdssShape / HSM iterate them.

    The weight is an elliptical Gaussian; at each step the centroid moves
    by the weighted first moment (scaled to be exact for a Gaussian) and
    the weight covariance becomes twice the weighted second moments. The
    fixed point of a Gaussian source is its own covariance.

    Parameters
    ----------
    stamps
        Stamps centred on the sources' peaks.
    sigma0
        Starting weight width in pixels (the PSF's, usually).

    Returns
    -------
    moments
        Centroids and moments; ``ok`` is False where the weighted flux
        went non-positive, the shape degenerate or the weight outgrew
        the stamp.
    """
    n = stamps.values.shape[0]
    grid = stamps.offsets()
    cap = float(stamps.half) ** 2
    state = np.zeros((5, n))  # dx, dy, a, b, c
    state[2:4] = sigma0**2
    ok = np.ones(n, dtype=np.bool_)
    active = np.arange(n)
    for _ in range(MOMENT_ITERATIONS):
        if len(active) == 0:
            break
        old = state[:, active]
        step = _moment_step(stamps.values[active], grid, old)
        new = _next_weight(old, step, cap)
        ok[active[~step.ok]] = False
        state[:, active] = np.where(step.ok, new, old)
        # Sources leave the iteration once converged (as SdssShape's
        # tolerances) or failed; the rest go on.
        change = np.abs(new - old)
        scale = old[2] + old[3]
        settled = np.all(change[:2] < CENTROID_TOLERANCE, axis=0) & np.all(
            change[2:] < MOMENT_TOLERANCE * scale, axis=0
        )
        active = active[step.ok & ~settled]
    ok[active] = False  # never converged
    dx, dy, a, b, c = state
    inside = (np.abs(dx) < stamps.half / 2) & (np.abs(dy) < stamps.half / 2)
    not_capped = (a < cap) & (b < cap)
    return AdaptiveMoments(dx, dy, a, b, c, ok & inside & not_capped)


def _next_weight(old: FloatArray, step: _MomentStep, cap: float) -> FloatArray:
    """Return the next (dx, dy, a, b, c): centroid step, 2 x moments."""
    a = np.clip(2 * step.mxx, _MIN_WEIGHT_VARIANCE, cap)
    b = np.clip(2 * step.myy, _MIN_WEIGHT_VARIANCE, cap)
    limit = 0.99 * np.sqrt(a * b)
    c = np.clip(2 * step.mxy, -limit, limit)
    return np.stack([old[0] + step.dx, old[1] + step.dy, a, b, c])


@dataclass(frozen=True, eq=False)
class _MomentStep:
    """One adaptive-moment iteration: centroid step and weighted moments."""

    dx: FloatArray
    dy: FloatArray
    mxx: FloatArray
    myy: FloatArray
    mxy: FloatArray
    ok: BoolArray


def _moment_step(
    values: FloatArray, grid: FloatArray, state: FloatArray
) -> _MomentStep:
    """Return the weighted moments about the current centroid.

    ``state`` holds rows dx, dy and the weight covariance a, b, c. The
    weight is ``exp(-0.5 u^T W^-1 u)`` at offset ``u`` from the centroid
    (module notes).
    """
    # One layout for the kernels whatever the indexing made (a single
    # active stamp's column is C- and F-contiguous at once): one
    # compiled signature, which the warm-up loads.
    state = np.ascontiguousarray(state)
    a, b = state[2], state[3]
    exponent = _weight_exponents(grid, state, np.empty(values.shape))
    weight = np.exp(exponent, out=exponent)
    total, sum_x, sum_y, sum_xx, sum_yy, sum_xy = _weighted_sums(
        values, weight, grid, state
    )
    safe = np.where(total > 0, total, 1.0)
    mx = sum_x / safe
    my = sum_y / safe
    mxx = sum_xx / safe - mx**2
    myy = sum_yy / safe - my**2
    mxy = sum_xy / safe - mx * my
    # For a Gaussian source the weighted mean moves only
    # W (W + C)^-1 of the way; scale by the trace ratio to undo it.
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.clip((a + b) / (a + b - mxx - myy), 1.0, 3.0)
    gain = np.where(np.isfinite(gain), gain, 1.0)
    positive = (mxx > 0) & (myy > 0) & (mxx * myy - mxy**2 > 0)
    return _MomentStep(
        dx=gain * mx,
        dy=gain * my,
        mxx=mxx,
        myy=myy,
        mxy=mxy,
        ok=(total > 0) & positive,
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _weight_exponents(
    grid: FloatArray, state: FloatArray, out: FloatArray
) -> FloatArray:
    """Fill ``out[k]`` with stamp ``k``'s Gaussian weight exponent.

    ``-0.5 * (ia ux^2 + 2 ic ux uy + ib uy^2)`` with ``(ia, ib, ic)`` the
    inverse of the weight covariance, as numpy evaluates it.
    """
    size = grid.shape[0]
    for k in range(state.shape[1]):
        dx, dy, a, b, c = (
            state[0, k],
            state[1, k],
            state[2, k],
            state[3, k],
            state[4, k],
        )
        det = a * b - c * c
        ia, ib, ic = b / det, a / det, -c / det
        for i in range(size):
            uy = grid[i] - dy
            for j in range(size):
                ux = grid[j] - dx
                out[k, i, j] = -0.5 * (
                    ia * (ux * ux) + 2.0 * ic * ux * uy + ib * (uy * uy)
                )
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _weighted_sums(
    values: FloatArray, weight: FloatArray, grid: FloatArray, state: FloatArray
) -> FloatArray:
    """Return each stamp's weighted pixel sums (rows of the result).

    With ``w = weight * values``: the sums of ``w``, ``w ux``, ``w uy``,
    ``w ux^2``, ``w uy^2`` and ``w ux uy``.
    """
    n, size = values.shape[0], grid.shape[0]
    count = size * size
    out = np.empty((6, n))
    terms = np.empty((6, count))
    tasks, sums = pairwise_scratch()
    for k in range(n):
        dx, dy = state[0, k], state[1, k]
        p = 0
        for i in range(size):
            uy = grid[i] - dy
            for j in range(size):
                ux = grid[j] - dx
                w = weight[k, i, j] * values[k, i, j]
                terms[0, p] = w
                terms[1, p] = w * ux
                terms[2, p] = w * uy
                terms[3, p] = w * (ux * ux)
                terms[4, p] = w * (uy * uy)
                terms[5, p] = w * ux * uy
                p += 1
        for row in range(6):
            out[row, k] = pairwise_sum_with(terms[row], 0, count, tasks, sums)
    return out
