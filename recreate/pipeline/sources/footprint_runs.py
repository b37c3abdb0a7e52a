"""Grow footprints by a disk and label them, working on runs of pixels.

Step 4 of `recreate.pipeline.sources.footprints`: the pixels above threshold
are taken as runs (row, start, stop), dilated by afw's circular stencil,
merged per row and labelled with 8-connectivity (as afw's FootprintSet
joins diagonal neighbours) by ``scipy.ndimage.label``'s numbering. The
cost follows the pixels above threshold, not the image.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

#: Widened runs reaching a row up to which their union is found by
#: sorting; beyond, by a coverage sweep across the row.
_FEW_RUNS = 24


def _grow_and_label(
    pixels: npt.NDArray[np.intp], shape: tuple[int, int], radius: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Grow the pixels by afw's circular stencil and label the result.

    Works on runs (row, start, stop) of consecutive pixels, never on the
    whole image: each run of ``pixels`` (flat indices, ascending) spreads
    to rows ``+-dy`` over ``isqrt(radius^2 - dy^2)`` more columns each
    side (the stencil ``dx^2 + dy^2 <= radius^2``); the grown runs are
    merged per row, joined with 8-connectivity (as
    ``ndimage.label(grown, structure=ones((3, 3)))``) and labelled in
    the raster order of each region's first pixel.

    Returns
    -------
    labels, area
        The int32 label image (0 outside) and the pixel count of each
        label.
    """
    height, width = shape
    spans = np.array(
        [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]
        if radius > 0
        else [0],
        dtype=np.int64,
    )
    rows, starts, stops = _runs(np.asarray(pixels, dtype=np.int64), width)
    if radius > 0:
        rows, starts, stops = _grow_runs(
            rows, starts, stops, height, width, spans
        )
    run_labels, count = _label_runs(rows, starts, stops)
    labels = np.zeros(shape, dtype=np.int32)
    area = np.zeros(count, dtype=np.int64)
    _paint_runs(rows, starts, stops, run_labels, labels, area)
    return labels, area


@numba.njit(cache=True, nogil=True)
def _runs(
    pixels: npt.NDArray[np.int64], width: int
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Return the runs (row, start, stop) of ascending flat ``pixels``."""
    n = len(pixels)
    rows = np.empty(n, dtype=np.int64)
    starts = np.empty(n, dtype=np.int64)
    stops = np.empty(n, dtype=np.int64)
    k = -1
    for p in pixels:
        r = p // width
        c = p - r * width
        if k >= 0 and rows[k] == r and stops[k] == c:
            stops[k] = c + 1
        else:
            k += 1
            rows[k], starts[k], stops[k] = r, c, c + 1
    return rows[: k + 1], starts[: k + 1], stops[: k + 1]


@numba.njit(cache=True, nogil=True)
def _grow_runs(
    rows: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
    height: int,
    width: int,
    spans: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Return the runs of the runs dilated by the stencil ``spans``.

    ``spans[|dy|]`` is how far a run widens on each side in row ``+-dy``.
    Each output row takes the union of the widened runs reaching it: a
    few are sorted by insertion, many are counted in a coverage array
    (+1 at each start, -1 at each stop) and read off in one sweep.
    """
    radius = len(spans) - 1
    first = np.searchsorted(rows, np.arange(height + 1))
    most = 0
    for y in range(height):
        low = first[max(y - radius, 0)]
        most = max(most, first[min(y + radius + 1, height)] - low)
    lefts = np.empty(most, dtype=np.int64)
    rights = np.empty(most, dtype=np.int64)
    merged_starts = np.empty(most, dtype=np.int64)
    merged_stops = np.empty(most, dtype=np.int64)
    coverage = np.zeros(width + 1, dtype=np.int64)
    capacity = max(16, 2 * len(rows))
    out_rows = np.empty(capacity, dtype=np.int64)
    out_starts = np.empty(capacity, dtype=np.int64)
    out_stops = np.empty(capacity, dtype=np.int64)
    size = 0
    for y in range(height):
        low = first[max(y - radius, 0)]
        n = first[min(y + radius + 1, height)] - low
        for k in range(n):
            span = spans[abs(rows[low + k] - y)]
            lefts[k] = max(starts[low + k] - span, 0)
            rights[k] = min(stops[low + k] + span, width)
        if n <= _FEW_RUNS:
            m = _merge_few(lefts[:n], rights[:n], merged_starts, merged_stops)
        else:
            m = _merge_many(
                lefts[:n], rights[:n], coverage, merged_starts, merged_stops
            )
        if size + m > capacity:
            capacity = 2 * (size + m)
            out_rows = _grown(out_rows, capacity)
            out_starts = _grown(out_starts, capacity)
            out_stops = _grown(out_stops, capacity)
        out_rows[size : size + m] = y
        out_starts[size : size + m] = merged_starts[:m]
        out_stops[size : size + m] = merged_stops[:m]
        size += m
    return out_rows[:size], out_starts[:size], out_stops[:size]


@numba.njit(cache=True, nogil=True)
def _merge_few(
    lefts: npt.NDArray[np.int64],
    rights: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
) -> int:
    """Write the union of a few intervals as sorted runs; return how many.

    Sorts ``lefts`` and ``rights`` together in place (by insertion).
    """
    for i in range(1, len(lefts)):
        left, right = lefts[i], rights[i]
        j = i - 1
        while j >= 0 and lefts[j] > left:
            lefts[j + 1], rights[j + 1] = lefts[j], rights[j]
            j -= 1
        lefts[j + 1], rights[j + 1] = left, right
    m = 0
    for i in range(len(lefts)):
        if m > 0 and lefts[i] <= stops[m - 1]:
            stops[m - 1] = max(stops[m - 1], rights[i])
        else:
            starts[m], stops[m] = lefts[i], rights[i]
            m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _merge_many(
    lefts: npt.NDArray[np.int64],
    rights: npt.NDArray[np.int64],
    coverage: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
) -> int:
    """Write the union of intervals as sorted runs; return how many.

    Counts cover in ``coverage`` (all zero before and after), from the
    smallest left to the largest right only.
    """
    begin, end = lefts.min(), rights.max()
    for k in range(len(lefts)):
        coverage[lefts[k]] += 1
        coverage[rights[k]] -= 1
    m = 0
    depth = 0
    for c in range(begin, end + 1):
        was_inside = depth > 0
        depth += coverage[c]
        coverage[c] = 0
        if depth > 0 and not was_inside:
            starts[m] = c
        elif was_inside and depth == 0:
            stops[m] = c
            m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _grown(
    values: npt.NDArray[np.int64], capacity: int
) -> npt.NDArray[np.int64]:
    """Return ``values`` copied into a larger array of ``capacity``."""
    out = np.empty(capacity, dtype=np.int64)
    out[: len(values)] = values
    return out


@numba.njit(cache=True, nogil=True)
def _label_runs(
    rows: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int32], int]:
    """Label 8-connected runs (in raster order) from 1, by first run.

    Runs of consecutive rows join when their columns overlap or touch
    diagonally. Union-find keeps the earliest run as each root, so
    labels follow the raster order of each region's first pixel.
    """
    n = len(rows)
    parent = np.arange(n)
    previous = 0  # next run of the previous row that may still touch
    current = 0  # first run of this row
    for i in range(n):
        if i > 0 and rows[i] != rows[i - 1]:
            previous = current if rows[current] == rows[i] - 1 else i
            current = i
        # Runs of a row ascend and never touch, so the previous row's
        # runs wholly left of this one are left of every later one too.
        while previous < current and stops[previous] < starts[i]:
            previous += 1
        j = previous
        while j < current and starts[j] <= stops[i]:
            _union(parent, i, j)
            j += 1
    labels = np.zeros(n, dtype=np.int32)
    count = 0
    for i in range(n):
        root = _find(parent, i)
        if root == i:
            count += 1
            labels[i] = count
        else:
            labels[i] = labels[root]
    return labels, count


@numba.njit(cache=True, nogil=True, inline="always")
def _find(parent: npt.NDArray[np.int64], i: int) -> int:
    """Return the root of ``i``, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True, inline="always")
def _union(parent: npt.NDArray[np.int64], i: int, j: int) -> None:
    """Join the sets of ``i`` and ``j`` under the smaller root."""
    a, b = _find(parent, i), _find(parent, j)
    if a < b:
        parent[b] = a
    elif b < a:
        parent[a] = b


@numba.njit(cache=True, nogil=True)
def _paint_runs(
    rows: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
    run_labels: npt.NDArray[np.int32],
    labels: npt.NDArray[np.int32],
    area: npt.NDArray[np.int64],
) -> None:
    """Write each run's label into ``labels`` and add up the areas."""
    for k in range(len(rows)):
        label = run_labels[k]
        labels[rows[k], starts[k] : stops[k]] = label
        area[label - 1] += stops[k] - starts[k]
