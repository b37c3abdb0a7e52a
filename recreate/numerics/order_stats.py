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

    A histogram of a pool places each of its ranks in a bin; the values
    of those bins are copied out in one pass and narrowed further, each
    bin with all the ranks it holds, until few candidates remain and are
    sorted. Every pass serves all the ranks at once: on a plane of
    nearly equal values (a sky-dominated variance) the ranks share one
    bin for several passes, and narrowing it once per rank would cost a
    pass over the whole plane for each of them.
    """
    out = np.empty(len(ranks))
    if len(ranks) == 0:
        return out
    slots = np.arange(len(ranks))
    stack = [(data, ranks.copy(), slots)]
    while len(stack) > 0:
        values, wanted_ranks, wanted_slots = stack.pop()
        n = len(values)
        if n <= _SELECT_SORT_LIMIT:
            ordered = np.sort(values)
            for i in range(len(wanted_ranks)):
                out[wanted_slots[i]] = ordered[wanted_ranks[i]]
            continue
        low, high = _min_max(values)
        if not low < high:
            for slot in wanted_slots:
                out[slot] = low
            continue
        scale = _SELECT_BINS / (high - low)
        counts = _histogram(values, low, scale)
        starts = np.zeros(_SELECT_BINS + 1, dtype=np.int64)
        starts[1:] = np.cumsum(counts)
        bins = np.searchsorted(starts, wanted_ranks, side="right") - 1
        wanted = np.unique(bins)
        if len(wanted) == 1 and counts[wanted[0]] == n:
            # Values that one histogram cannot separate: sort them.
            ordered = np.sort(values)
            for i in range(len(wanted_ranks)):
                out[wanted_slots[i]] = ordered[wanted_ranks[i]]
            continue
        pools = _bin_pools(values, low, scale, counts, wanted)
        for i, b in enumerate(wanted):
            inside = bins == b
            stack.append(
                (
                    pools[i],
                    wanted_ranks[inside] - starts[b],
                    wanted_slots[inside],
                )
            )
    return out


@numba.njit(cache=True, nogil=True)
def _bin_pools(
    values: FloatArray,
    low: float,
    scale: float,
    counts: IntArray,
    wanted: IntArray,
) -> list[FloatArray]:
    """Copy the values of each ``wanted`` bin out, in one pass."""
    slot = np.full(_SELECT_BINS, -1, dtype=np.int64)
    pools = []
    for i, b in enumerate(wanted):
        slot[b] = i
        pools.append(np.empty(counts[b]))
    filled = np.zeros(len(wanted), dtype=np.int64)
    for value in values:
        s = slot[_bin_of(value, low, scale)]
        if s >= 0:
            pools[s][filled[s]] = value
            filled[s] += 1
    return pools


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


def nan_median(values: npt.NDArray[np.float64]) -> float:
    """Return ``np.nanmedian(values)`` of a float64 array, bit for bit.

    The middle order statistics of the values that are not NaN (two
    averaged as numpy's median does, ``(a + b) / 2``), found by
    `order_statistics` instead of numpy's partition. Infinities
    (which `order_statistics` does not take) go to numpy.

    Parameters
    ----------
    values
        A float64 array of any shape.

    Returns
    -------
    median
        NaN when every value is NaN (numpy warns then; this does not).

    Raises
    ------
    TypeError
        If ``values`` is not float64 (numpy averages two float32 middle
        values in float32).
    """
    if np.asarray(values).dtype != np.float64:
        raise TypeError(f"need float64 values, got {np.asarray(values).dtype}")
    flat = np.ascontiguousarray(values).ravel()
    finite = np.isfinite(flat)
    # One pass in the usual case (every value finite); an infinity goes
    # to numpy, a NaN is left out.
    if finite.all():
        kept = flat
    elif np.isinf(flat).any():
        return float(np.nanmedian(flat))
    else:
        kept = flat[finite]
    count = len(kept)
    if count == 0:
        return float("nan")
    middle = count // 2
    if count % 2:
        return float(_select_ranks(kept, np.array([middle]))[0])
    low, high = _select_ranks(kept, np.array([middle - 1, middle]))
    return float((low + high) / 2)
