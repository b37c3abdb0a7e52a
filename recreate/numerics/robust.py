"""Sigma-clipped statistics as afw computes them (MEANCLIP, STDEVCLIP).

afw's clipped statistics start from the median and the interquartile
range, then iterate ``numIter`` times: keep the values within
``numSigmaClip`` standard deviations of the current centre, and replace
the centre and width by the mean and standard deviation of those kept.
The defaults (3 sigma, 3 iterations) are afw's ``StatisticsControl``
defaults, which every task used here leaves unchanged.

The loops are compiled with numba and reproduce numpy's arithmetic
operation for operation (``np.percentile``'s linear interpolation,
``np.sum``'s pairwise summation, ``np.cumsum``), so the results are the
ones the plain numpy formulation gives, bit for bit, only faster. Every
kernel is serial: the results never depend on a thread count. The
percentiles come from `recreate.numerics.order_stats`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from recreate.numerics.order_stats import percentiles

#: afw's ``IQ_TO_STDEV``: the interquartile range of a unit Gaussian is
#: 1/0.741301109 standard deviations.
IQR_TO_STDEV = 0.741301109

#: afw's ``StatisticsControl`` defaults.
N_SIGMA_CLIP = 3.0
N_CLIP_ITERATIONS = 3
FloatArray = npt.NDArray[np.float64]

#: Width of the initial clip in interquartile ranges (3 sigma), as the
#: product Python evaluates first in ``N_SIGMA_CLIP * IQR_TO_STDEV * iqr``.
_IQR_CLIP = N_SIGMA_CLIP * IQR_TO_STDEV

#: numpy's pairwise summation: unrolled 8-way below this block size.
_PAIRWISE_BLOCK = 128
_PAIRWISE_UNROLL = 8
_PAIRWISE_STACK = 256

#: What ``np.nan_to_num`` makes of an infinity.
_BIG = float(np.finfo(np.float64).max)


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
    data = np.ascontiguousarray(values, dtype=np.float64).ravel()
    return clipped_mean_std_of_finite(_finite_values(data))


def clipped_mean_std_of_finite(data: FloatArray) -> tuple[float, float]:
    """Return `clipped_mean_std` of data known to be finite.

    Parameters
    ----------
    data
        1-D float64 array of finite values (possibly empty).

    Returns
    -------
    mean, std
        As `clipped_mean_std`.
    """
    if data.size == 0:
        return float("nan"), float("nan")
    q1, median, q3 = percentiles(data, (25.0, 50.0, 75.0))
    center, std = float(median), IQR_TO_STDEV * float(q3 - q1)
    return _clip_iterations(data, center, std, N_CLIP_ITERATIONS)


def clipped_mean_std_of_plane(
    plane: npt.NDArray[np.floating], usable: npt.NDArray[np.bool_]
) -> tuple[float, float]:
    """Return `clipped_mean_std` of the finite pixels ``usable`` flags.

    What afw's ``makeStatistics(image, mask, MEANCLIP)`` gives with the
    masked pixels left out, without the boolean-indexed float64 copy
    (two full-detector temporaries) numpy would make first.

    Parameters
    ----------
    plane
        2-D image plane.
    usable
        Same shape: the pixels that may enter the statistic.

    Returns
    -------
    mean, std
        As `clipped_mean_std`.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    if np.shape(plane) != np.shape(usable) or np.ndim(plane) != 2:
        raise ValueError(
            f"plane {np.shape(plane)} and usable {np.shape(usable)} must "
            "be 2-D of one shape"
        )
    data = _usable_finite_values(
        np.ascontiguousarray(plane), np.ascontiguousarray(usable)
    )
    return clipped_mean_std_of_finite(data)


def clipped_means_by_row(
    rows: FloatArray, *, presorted: bool = False
) -> FloatArray:
    """Return afw's MEANCLIP of each row, NaN entries being absent.

    Vectorised over rows, for the bins of a background grid: each row
    holds one bin's pixels, padded with NaN to a common length. Once a
    row is sorted, the values kept by a clip are a contiguous run, so
    each iteration needs only two binary searches and prefix sums (taken
    about the median, which keeps the variance free of cancellation).

    Parameters
    ----------
    rows
        Array of shape ``(n_rows, n)``; NaN marks an absent value.
    presorted
        Whether each row is already sorted as ``np.sort`` sorts it (NaN
        last); then ``rows`` is used as it is.

    Returns
    -------
    means
        Clipped mean of each row; NaN for a row with no finite value.
    """
    data = np.asarray(rows, dtype=np.float64)
    ordered = data if presorted else np.sort(data, axis=1)
    return _clip_sorted_rows(np.ascontiguousarray(ordered), _IQR_CLIP)


@numba.njit(cache=True, nogil=True)
def _finite_values(data: FloatArray) -> FloatArray:
    """Return the finite entries of 1-D ``data``, in order."""
    out = np.empty(len(data))
    n = 0
    for value in data:
        if math.isfinite(value):
            out[n] = value
            n += 1
    return out[:n]


@numba.njit(cache=True, nogil=True)
def _usable_finite_values(
    plane: npt.NDArray[np.floating], usable: npt.NDArray[np.bool_]
) -> FloatArray:
    """Return the finite usable pixels as float64, in raster order."""
    out = np.empty(plane.size)
    n = 0
    height, width = plane.shape
    for r in range(height):
        for c in range(width):
            value = plane[r, c]
            if usable[r, c] and math.isfinite(value):
                out[n] = value
                n += 1
    return out[:n]


@numba.njit(cache=True, nogil=True)
def pairwise_sum(data: FloatArray, start: int, count: int) -> float:
    """Return ``np.sum(data[start:start + count])``, summed as numpy does.

    numpy adds contiguous float64 in blocks of up to 128 with 8
    accumulators, halving longer runs (at multiples of 8) and adding the
    halves' sums. The halving is unrolled onto a stack here (numba's
    cache cannot hold a recursive function).
    """
    tasks, sums = pairwise_scratch()
    return pairwise_sum_with(data, start, count, tasks, sums)


@numba.njit(cache=True, nogil=True)
def pairwise_scratch() -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Return the stacks `pairwise_sum_with` works in, for reuse."""
    return (
        np.empty((_PAIRWISE_STACK, 3), dtype=np.int64),
        np.empty(_PAIRWISE_STACK),
    )


@numba.njit(cache=True, nogil=True)
def pairwise_sum_with(
    data: FloatArray,
    start: int,
    count: int,
    tasks: npt.NDArray[np.int64],
    sums: FloatArray,
) -> float:
    """Return `pairwise_sum` using the stacks of `pairwise_scratch`.

    For kernels that sum many short runs: the stacks are made once, not
    at each sum. Each task is (start, count, combine?); at most 2 per
    level of halving.
    """
    n_tasks, n_sums = 1, 0
    tasks[0, 0], tasks[0, 1], tasks[0, 2] = start, count, 0
    while n_tasks > 0:
        n_tasks -= 1
        first, size = tasks[n_tasks, 0], tasks[n_tasks, 1]
        if tasks[n_tasks, 2]:
            n_sums -= 1
            sums[n_sums - 1] = sums[n_sums - 1] + sums[n_sums]
        elif size <= _PAIRWISE_BLOCK:
            sums[n_sums] = _block_sum(data, first, size)
            n_sums += 1
        else:
            half = size // 2
            half -= half % _PAIRWISE_UNROLL
            # Pushed in reverse: the left half is summed first.
            for begin, length, combine in (
                (0, 0, 1),
                (first + half, size - half, 0),
                (first, half, 0),
            ):
                tasks[n_tasks, 0] = begin
                tasks[n_tasks, 1] = length
                tasks[n_tasks, 2] = combine
                n_tasks += 1
    return sums[0]


@numba.njit(cache=True, nogil=True)
def _block_sum(data: FloatArray, start: int, count: int) -> float:
    """Return numpy's sum of at most 128 values (8 accumulators)."""
    if count < _PAIRWISE_UNROLL:
        total = 0.0
        for i in range(count):
            total += data[start + i]
        return total
    r0, r1, r2, r3 = (
        data[start],
        data[start + 1],
        data[start + 2],
        data[start + 3],
    )
    r4, r5, r6, r7 = (
        data[start + 4],
        data[start + 5],
        data[start + 6],
        data[start + 7],
    )
    i = start + _PAIRWISE_UNROLL
    stop = start + count - count % _PAIRWISE_UNROLL
    while i < stop:
        r0 += data[i]
        r1 += data[i + 1]
        r2 += data[i + 2]
        r3 += data[i + 3]
        r4 += data[i + 4]
        r5 += data[i + 5]
        r6 += data[i + 6]
        r7 += data[i + 7]
        i += _PAIRWISE_UNROLL
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + count:
        total += data[i]
        i += 1
    return total


@numba.njit(cache=True, nogil=True)
def _clip_iterations(
    data: FloatArray, center: float, std: float, iterations: int
) -> tuple[float, float]:
    """Iterate the clip from ``(center, std)``; see the module notes.

    Each pass keeps ``|x - center| <= 3 std`` and takes numpy's
    ``kept.mean()`` and ``kept.std(ddof=1)``; fewer than 2 kept values
    stop the iteration.
    """
    kept = np.empty(len(data))
    for _ in range(iterations):
        limit = N_SIGMA_CLIP * std
        n = 0
        for value in data:
            if abs(value - center) <= limit:
                kept[n] = value
                n += 1
        if n < 2:
            break
        mean = pairwise_sum(kept, 0, n) / n
        for i in range(n):
            deviation = kept[i] - mean
            kept[i] = deviation * deviation
        center = mean
        std = math.sqrt(pairwise_sum(kept, 0, n) / (n - 1))
    return center, std


@numba.njit(cache=True, nogil=True)
def _clip_sorted_rows(ordered: FloatArray, iqr_clip: float) -> FloatArray:
    """Return the clipped mean of each sorted, NaN-padded row.

    Reproduces the vectorised numpy formulation exactly: quantiles by
    linear interpolation, prefix sums (``np.cumsum``) of the values less
    the median, ``+-inf`` entries as ``np.nan_to_num`` makes them, and
    the kept runs found by counting values below each clip limit.
    """
    n_rows, length = ordered.shape
    means = np.empty(n_rows)
    total = np.zeros(length + 1)
    squares = np.zeros(length + 1)
    for r in range(n_rows):
        row = ordered[r]
        count = 0
        for value in row:
            if math.isfinite(value):
                count += 1
        if count == 0:
            means[r] = np.nan
            continue
        median = _sorted_quantile(row, count, 0.5)
        width = iqr_clip * (
            _sorted_quantile(row, count, 0.75)
            - _sorted_quantile(row, count, 0.25)
        )
        running = 0.0
        running_sq = 0.0
        for i in range(length):
            shifted = row[i] - median
            if math.isnan(shifted):
                shifted = 0.0
            elif math.isinf(shifted):
                shifted = _BIG if shifted > 0 else -_BIG
            square = shifted * shifted
            running = shifted if i == 0 else running + shifted
            running_sq = square if i == 0 else running_sq + square
            total[i + 1] = running
            squares[i + 1] = running_sq
        center = 0.0
        for _ in range(N_CLIP_ITERATIONS):
            middle = median + center
            low = _count_below(row, middle - width, strict=True)
            high = _count_below(row, middle + width, strict=False)
            n_kept = high - low
            safe_n = max(n_kept, 1)
            mean = (total[high] - total[low]) / safe_n
            sum_sq = squares[high] - squares[low]
            var = max(sum_sq - safe_n * (mean * mean), 0.0) / max(
                n_kept - 1, 1
            )
            if n_kept >= 2:
                center = mean
                width = N_SIGMA_CLIP * math.sqrt(var)
        means[r] = median + center
    return means


@numba.njit(cache=True, nogil=True, inline="always")
def _sorted_quantile(row: FloatArray, count: int, fraction: float) -> float:
    """Return a linearly interpolated quantile of a sorted row's values."""
    last = max(count - 1, 0)
    position = fraction * last
    low = math.floor(position)
    high = min(low + 1, last)
    weight = position - low
    return (1.0 - weight) * row[low] + weight * row[high]


@numba.njit(cache=True, nogil=True, inline="always")
def _count_below(row: FloatArray, limit: float, strict: bool) -> int:
    """Count a sorted row's entries ``< limit`` (``<=`` unless strict).

    NaN entries (sorted last) and a NaN limit never count.
    """
    low, high = 0, len(row)
    while low < high:
        mid = (low + high) // 2
        inside = row[mid] < limit if strict else row[mid] <= limit
        if inside:
            low = mid + 1
        else:
            high = mid
    return low
