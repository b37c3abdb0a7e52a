"""Sigma-clipped statistics as afw computes them (MEANCLIP, STDEVCLIP).

afw's clipped statistics start from the median and the interquartile
range, then iterate ``numIter`` times: keep the values within
``numSigmaClip`` standard deviations of the current centre, and replace
the centre and width by the mean and standard deviation of those kept.
The defaults (3 sigma, 3 iterations) are afw's ``StatisticsControl``
defaults, which every task used here leaves unchanged.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: afw's ``IQ_TO_STDEV``: the interquartile range of a unit Gaussian is
#: 1/0.741301109 standard deviations.
IQR_TO_STDEV = 0.741301109

#: afw's ``StatisticsControl`` defaults.
N_SIGMA_CLIP = 3.0
N_CLIP_ITERATIONS = 3

FloatArray = npt.NDArray[np.float64]


def clipped_mean_std(values: npt.ArrayLike) -> tuple[float, float]:
    """Return afw's MEANCLIP and STDEVCLIP of the finite values.

    Parameters
    ----------
    values
        Any array; non-finite entries are ignored.

    Returns
    -------
    mean, std
        The clipped mean and standard deviation; both NaN when no value
        is finite.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return float("nan"), float("nan")
    q1, median, q3 = np.percentile(data, (25.0, 50.0, 75.0))
    center, std = float(median), IQR_TO_STDEV * float(q3 - q1)
    for _ in range(N_CLIP_ITERATIONS):
        kept = data[np.abs(data - center) <= N_SIGMA_CLIP * std]
        if kept.size < 2:
            break
        center, std = float(kept.mean()), float(kept.std(ddof=1))
    return center, std


def clipped_means_by_row(rows: FloatArray) -> FloatArray:
    """Return afw's MEANCLIP of each row, NaN entries being absent.

    Vectorised over rows, for the bins of a background grid: each row
    holds one bin's pixels, padded with NaN to a common length. Once a
    row is sorted, the values kept by a clip are a contiguous run, so
    each iteration needs only two counts and cumulative sums.

    Parameters
    ----------
    rows
        Array of shape ``(n_rows, n)``; NaN marks an absent value.

    Returns
    -------
    means
        Clipped mean of each row; NaN for a row with no finite value.
    """
    # NaN sorts last, so each row's first `count` entries are its values.
    ordered = np.sort(rows, axis=1)
    counts = np.isfinite(ordered).sum(axis=1)
    median = _row_quantile(ordered, counts, 0.5)
    width = (
        N_SIGMA_CLIP
        * IQR_TO_STDEV
        * (
            _row_quantile(ordered, counts, 0.75)
            - _row_quantile(ordered, counts, 0.25)
        )
    )
    # Sums about the median keep the variance free of cancellation.
    shifted = np.nan_to_num(ordered - median[:, None], nan=0.0)
    zeros = np.zeros((len(rows), 1))
    total = np.concatenate([zeros, np.cumsum(shifted, axis=1)], axis=1)
    squares = np.concatenate([zeros, np.cumsum(shifted**2, axis=1)], axis=1)
    center = np.zeros(len(rows))
    index = np.arange(len(rows))
    for _ in range(N_CLIP_ITERATIONS):
        # Counted on the NaN-padded rows: NaN is never inside the clip.
        middle = median + center
        with np.errstate(invalid="ignore"):
            low = np.count_nonzero(ordered < (middle - width)[:, None], axis=1)
            high = np.count_nonzero(
                ordered <= (middle + width)[:, None], axis=1
            )
        n_kept = high - low
        usable = n_kept >= 2
        safe_n = np.maximum(n_kept, 1)
        mean = (total[index, high] - total[index, low]) / safe_n
        sum_sq = squares[index, high] - squares[index, low]
        var = np.maximum(sum_sq - safe_n * mean**2, 0.0) / np.maximum(
            n_kept - 1, 1
        )
        center = np.where(usable, mean, center)
        width = np.where(usable, N_SIGMA_CLIP * np.sqrt(var), width)
    return np.where(counts > 0, median + center, np.nan)


def _row_quantile(
    ordered: FloatArray, counts: npt.NDArray[np.intp], fraction: float
) -> FloatArray:
    """Return a linearly interpolated quantile of each sorted row."""
    position = fraction * np.maximum(counts - 1, 0)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, np.maximum(counts - 1, 0))
    rows = np.arange(ordered.shape[0])
    weight = position - low
    return (1.0 - weight) * ordered[rows, low] + weight * ordered[rows, high]
