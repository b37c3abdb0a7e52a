"""Order statistics and percentiles as numpy computes them, only faster.

`percentiles` gives ``np.percentile``'s linearly interpolated values,
found by histogram narrowing in a few passes instead of numpy's
partition; `order_statistics` the ranked values themselves. The loops
are compiled with numba and serial: the results never depend on a
thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Order statistics: histogram bins per narrowing step, and the size
#: below which the candidates are simply sorted.
_SELECT_BINS = 1 << 14
_SELECT_SORT_LIMIT = 4096


def percentiles(data: FloatArray, q: Sequence[float]) -> FloatArray:
    """Return ``np.percentile(data, q)`` for finite 1-D float64 data.

    The same linearly interpolated order statistics, found by histogram
    narrowing in a few passes instead of numpy's partition.

    Parameters
    ----------
    data
        1-D float64 array of finite values, not empty; left unchanged.
    q
        Percentiles in [0, 100].

    Returns
    -------
    values
        One value per percentile, equal to numpy's.

    Raises
    ------
    ValueError
        If ``data`` is empty or a percentile is outside [0, 100].
    """
    count = len(data)
    fractions = np.true_divide(np.asarray(q, dtype=np.float64), 100)
    if count == 0 or np.any((fractions < 0) | (fractions > 1)):
        raise ValueError("need data and percentiles in [0, 100]")
    virtual = (count - 1) * fractions
    below = np.floor(virtual).astype(np.int64)
    above = np.minimum(below + 1, count - 1)
    below = np.where(virtual >= count - 1, count - 1, below)
    ranks = np.unique(np.concatenate([below, above]))
    found = dict(
        zip(ranks.tolist(), order_statistics(data, ranks), strict=True)
    )
    gamma = virtual - np.floor(virtual)
    out = np.empty(len(fractions))
    for i, (low, high) in enumerate(zip(below, above, strict=True)):
        a, b = found[int(low)], found[int(high)]
        diff = b - a
        # numpy's _lerp: from the nearer end point.
        out[i] = (
            b - diff * (1 - gamma[i])
            if gamma[i] >= 0.5
            else a + diff * gamma[i]
        )
    return out


def order_statistics(data: FloatArray, ranks: IntArray) -> FloatArray:
    """Return the ``ranks``-th smallest values (0-based) of finite data.

    Parameters
    ----------
    data
        1-D float64 array of finite values; left unchanged.
    ranks
        Ranks in ``[0, len(data))``.

    Returns
    -------
    values
        ``np.sort(data)[ranks]``.

    Raises
    ------
    ValueError
        If a rank is outside ``[0, len(data))``.
    """
    data = np.ascontiguousarray(data, dtype=np.float64)
    ranks = np.asarray(ranks, dtype=np.int64)
    if np.any((ranks < 0) | (ranks >= len(data))):
        raise ValueError(f"ranks {ranks} outside [0, {len(data)})")
    return _select_ranks(data, ranks)


@numba.njit(cache=True, nogil=True)
def _select_ranks(data: FloatArray, ranks: IntArray) -> FloatArray:
    """Return the ``ranks``-th smallest of ``data`` (see order_statistics).

    One histogram of all the data places every rank in a bin; the values
    of those bins are copied out (one pass) and narrowed further alone.
    """
    out = np.empty(len(ranks))
    if len(ranks) == 0:
        return out
    low, high = _min_max(data)
    if not low < high:
        out[:] = low
        return out
    scale = _SELECT_BINS / (high - low)
    counts = _histogram(data, low, scale)
    starts = np.zeros(_SELECT_BINS + 1, dtype=np.int64)
    starts[1:] = np.cumsum(counts)
    bins = np.searchsorted(starts, ranks, side="right") - 1
    wanted = np.unique(bins)
    slot = np.full(_SELECT_BINS, -1, dtype=np.int64)
    for i, b in enumerate(wanted):
        slot[b] = i
    offsets = np.zeros(len(wanted) + 1, dtype=np.int64)
    for i, b in enumerate(wanted):
        offsets[i + 1] = offsets[i] + counts[b]
    pool = np.empty(offsets[-1])
    filled = offsets[:-1].copy()
    for value in data:
        s = slot[_bin_of(value, low, scale)]
        if s >= 0:
            pool[filled[s]] = value
            filled[s] += 1
    for i, rank in enumerate(ranks):
        s = slot[bins[i]]
        part = pool[offsets[s] : offsets[s + 1]]
        out[i] = _select_one(part.copy(), rank - starts[bins[i]])
    return out


@numba.njit(cache=True, nogil=True)
def _select_one(values: FloatArray, rank: int) -> float:
    """Return the ``rank``-th smallest of ``values`` (may reorder them).

    Narrows by histograms until few candidates remain, then sorts; a
    step that cannot narrow (values spanning no finite range) sorts.
    """
    while True:
        n = len(values)
        if n <= _SELECT_SORT_LIMIT:
            return np.sort(values)[rank]
        low, high = _min_max(values)
        if not low < high:
            return low
        scale = _SELECT_BINS / (high - low)
        counts = _histogram(values, low, scale)
        chosen = 0
        while rank >= counts[chosen]:
            rank -= counts[chosen]
            chosen += 1
        if counts[chosen] == n:
            return np.sort(values)[rank]
        narrowed = np.empty(counts[chosen])
        k = 0
        for value in values:
            if _bin_of(value, low, scale) == chosen:
                narrowed[k] = value
                k += 1
        values = narrowed


@numba.njit(cache=True, nogil=True, inline="always")
def _bin_of(value: float, low: float, scale: float) -> int:
    """Return the histogram bin of ``value``, clamped to the bins."""
    position = (value - low) * scale
    if not position < _SELECT_BINS - 1:
        return _SELECT_BINS - 1
    if not position > 0:
        return 0
    return int(position)


@numba.njit(cache=True, nogil=True)
def _histogram(values: FloatArray, low: float, scale: float) -> IntArray:
    """Return the counts of ``values`` in `_bin_of`'s bins."""
    counts = np.zeros(_SELECT_BINS, dtype=np.int64)
    for value in values:
        counts[_bin_of(value, low, scale)] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _min_max(values: FloatArray) -> tuple[float, float]:
    """Return the smallest and largest of non-empty ``values``."""
    low = high = values[0]
    for value in values:
        low = min(low, value)
        high = max(high, value)
    return low, high
