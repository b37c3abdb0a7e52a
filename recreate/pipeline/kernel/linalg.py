"""Linear algebra and statistics of the kernel fit, as ip_diffim does them.

``KernelSolution::solve`` uses Eigen's ``FullPivLU`` (Gaussian elimination
with complete pivoting) when the matrix is invertible to Eigen's rank
threshold, and otherwise the eigen-decomposition pseudo-inverse with only
exactly-zero eigenvalues left out. LAPACK's ``dgetc2``/``dgesc2`` are the
same algorithm. Condition numbers are eigenvalue ratios (v29's
``conditionNumberType = EIGENVALUE``). The kernel-sum clipping uses afw's
``MEANCLIP``/``STDEVCLIP``: 3 iterations of 3 sigma, the first about the
median with a width from the interquartile range.

Everything here is single-threaded LAPACK or plain NumPy on small
matrices, so results do not depend on BLAS thread counts.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.linalg import lapack

#: afw's ``IQ_TO_STDEV``: the interquartile range of a unit Gaussian.
IQ_TO_STDEV = 0.741301109252802

#: afw ``StatisticsControl`` defaults for MEANCLIP / STDEVCLIP.
CLIP_SIGMA = 3.0
CLIP_ITERATIONS = 3


def solve_like_eigen(
    matrix: npt.NDArray[np.float64], rhs: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Solve ``matrix @ x = rhs`` as ip_diffim's ``KernelSolution::solve``.

    Parameters
    ----------
    matrix
        Square, symmetric normal matrix.
    rhs
        Right-hand side.

    Returns
    -------
    solution
        The solution; all NaN when the inputs are not finite (the caller
        treats a NaN solution as a failed fit, as ip_diffim throws).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    rhs = np.asarray(rhs, dtype=np.float64)
    if not (np.all(np.isfinite(matrix)) and np.all(np.isfinite(rhs))):
        return np.full(rhs.shape, np.nan)
    lu, ipiv, jpiv, _ = lapack.dgetc2(matrix)
    if _is_invertible(lu):
        solution, scale = lapack.dgesc2(lu, rhs, ipiv, jpiv)
        return np.asarray(solution, dtype=np.float64) / scale
    return _eigen_pseudo_solve(matrix, rhs)


def _is_invertible(lu: npt.NDArray[np.float64]) -> bool:
    """Apply Eigen's FullPivLU rank test to complete-pivoting LU factors.

    A pivot counts as non-zero when it exceeds ``epsilon * n`` times the
    largest pivot; the matrix is invertible when every pivot does.
    """
    pivots = np.abs(np.diag(lu))
    largest = float(pivots.max()) if pivots.size else 0.0
    if largest == 0.0:
        return False
    threshold = np.finfo(np.float64).eps * len(pivots) * largest
    return bool(np.all(pivots > threshold))


def _eigen_pseudo_solve(
    matrix: npt.NDArray[np.float64], rhs: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Solve with ``R diag(1/e) R^T``, skipping exactly-zero eigenvalues."""
    values, vectors = np.linalg.eigh(matrix)
    inverse = np.zeros_like(values)
    nonzero = values != 0.0
    inverse[nonzero] = 1.0 / values[nonzero]
    return vectors @ (inverse * (vectors.T @ rhs))


def condition_number(matrix: npt.NDArray[np.float64]) -> float:
    """Return the eigenvalue condition number ``max(e) / min(e)``.

    The matrices are normal matrices, symmetric and positive
    semi-definite, so a condition number is never negative. ip_diffim's
    EIGENVALUE type divides the signed extremes, and for a singular
    matrix (more spatial terms than the candidates constrain) rounding
    leaves a tiny negative smallest eigenvalue: it reports e.g.
    ``-1.0e+20``, which is below any limit. A smallest eigenvalue at or
    below rounding level of the largest means singular: +inf here.
    """
    values = np.linalg.eigvalsh(np.asarray(matrix, dtype=np.float64))
    largest = float(np.abs(values).max()) if values.size else 0.0
    smallest = float(values.min()) if values.size else 0.0
    rounding = np.finfo(np.float64).eps * max(len(values), 1) * largest
    if smallest <= rounding:
        return math.inf
    return largest / smallest


def clipped_mean_std(values: npt.ArrayLike) -> tuple[float, float]:
    """Return afw's MEANCLIP and STDEVCLIP of a list of numbers.

    The first pass keeps values within ``3 * 0.7413 * IQR`` of the
    median; each later pass within 3 clipped standard deviations of the
    clipped mean. Limits are strict; the variance is unbiased (n - 1).

    Returns
    -------
    mean, std
        NaN when no value survives.
    """
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return math.nan, math.nan
    q25, median, q75 = np.percentile(data, [25.0, 50.0, 75.0])
    center = float(median)
    half_width = CLIP_SIGMA * IQ_TO_STDEV * abs(float(q75 - q25))
    mean = variance = math.nan
    for iteration in range(CLIP_ITERATIONS):
        if iteration > 0:
            center = mean
            half_width = CLIP_SIGMA * math.sqrt(variance)
        kept = data[
            (data > center - half_width) & (data < center + half_width)
        ]
        mean, variance = _mean_and_unbiased_variance(kept)
        if math.isnan(mean):
            break
    return mean, math.sqrt(variance) if variance >= 0.0 else math.nan


def _mean_and_unbiased_variance(
    values: npt.NDArray[np.float64],
) -> tuple[float, float]:
    """Return the mean and the (n - 1) variance; NaN where undefined."""
    if values.size == 0:
        return math.nan, math.nan
    mean = float(np.mean(values))
    if values.size == 1:
        return mean, math.nan
    return mean, float(np.var(values, ddof=1))
