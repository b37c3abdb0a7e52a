"""The binned backgrounds of SubtractBackgroundTask, as afw computes them.

`binned_background` is SubtractBackgroundTask with ``useApprox`` off and
REDUCE_INTERP_ORDER, configured by a `BackgroundConfig`: ScaleVariance's
(bin 32, MEANCLIP, AKIMA_SPLINE), or v30's detectAndMeasure (bins 8 and
40, MEDIAN, super-pixel filter) and GetTemplate variance (bin 32, MEDIAN,
LINEAR, filter) backgrounds. It is computed the way afw's BackgroundMI
does:

* ``nx = width // binSize + 1`` bins across (meas_algorithms v29), or
  ``ceil(width / binSize)`` (v30), likewise down; bin ``i`` ends at
  ``((i + 1) * width + nx // 2) // nx``, its centre at
  ``start + size / 2 - 0.5``;
* each bin's value is the 3-sigma, 3-iteration clipped mean (MEANCLIP)
  or the median (afw's: the two middle values' mean for an even count)
  of its unmasked finite pixels, NaN for an empty bin;
* with ``doFilterSuperPixels`` (v30) empty bins take the median of the
  grid and the grid is 3x3 median-filtered (scipy, reflecting edges);
* each column of bins is interpolated along y over the non-NaN bins,
  then each image row along x over the columns that have a value, with
  an Akima spline (a natural cubic spline for 3-4 points, linear for 2,
  constant for 1: REDUCE_INTERP_ORDER), or piecewise linearly (LINEAR);
* beyond the first and last bin centres the value is extrapolated
  quadratically from the end point's first and second derivatives, as
  afw's Interpolate does (linearly, for LINEAR).

The interpolation is `recreate.pipeline.match.interpolation`'s; the bins
of a whole image can be kept and evaluated on any box
(`recreate.pipeline.match.background_grid`).

The per-pixel work is compiled with numba and repeats the arithmetic of
the plain numpy/scipy formulation operation for operation: the bins'
clipped means and scipy's Akima slopes and PPoly evaluation give the
same bits, without whole-image temporaries. Blocks of rows (of pixels
or of bins) run on `thread_count` threads; each writes only its own
rows, so no result depends on the thread count.
"""

from __future__ import annotations

import math
from typing import Literal, overload

import numba
import numpy as np
import numpy.typing as npt

from recreate.numerics.arrays import native_float_plane
from recreate.numerics.median3 import median_filter_3x3
from recreate.numerics.robust import clipped_means_by_row
from recreate.numerics.row_blocks import run_row_blocks
from recreate.pipeline.config import BackgroundConfig
from recreate.pipeline.match.interpolation import (
    MIN_AKIMA,
    MIN_CUBIC,
    interpolate,
)

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

#: Fewest rows of bins worth a thread of their own.
_MIN_BLOCK_BINS = 4


@overload
def binned_background(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    config: BackgroundConfig,
    *,
    float32: Literal[False] = ...,
) -> FloatArray: ...


@overload
def binned_background(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    config: BackgroundConfig,
    *,
    float32: Literal[True],
) -> Float32Array: ...


def binned_background(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    config: BackgroundConfig,
    *,
    float32: bool = False,
) -> FloatArray | Float32Array:
    """Return afw's interpolated binned background (see module notes).

    Parameters
    ----------
    image
        The image (float32 values are taken as their float64 value).
    good
        Pixels that may enter the bin statistics.
    config
        Bin size and count rule, statistic, interpolation and filter.
    float32
        Return float32: the float64 values rounded, as ``astype`` rounds
        them, without a float64 copy of the image.

    Returns
    -------
    background
        Same shape as ``image``, float64 (or float32), C-ordered; all
        zero when no bin has a value.
    """
    height, width = image.shape
    grid = filtered_bins(image, good, config)
    linear = config.interpolation == "LINEAR"
    y_nodes = bin_centres(bin_edges(height, config))
    x_nodes = bin_centres(bin_edges(width, config))
    # afw interpolates each column of bins in y first, then each row in x.
    kept = np.flatnonzero(np.any(np.isfinite(grid), axis=0))
    if len(kept) == 0:
        return np.zeros(image.shape, np.float32 if float32 else np.float64)
    rows = np.arange(height, dtype=np.float64)
    by_column = interpolate_columns(
        grid[:, kept], y_nodes, rows, linear=linear
    )
    x_out = np.arange(width, dtype=np.float64)
    return interpolate(
        x_nodes[kept],
        by_column,
        x_out,
        per_curve=False,
        linear=linear,
        float32=float32,
    )


def filtered_bins(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    config: BackgroundConfig,
) -> FloatArray:
    """Return the bins' statistics, super-pixel filtered if configured.

    Shape ``(n_bin_rows, n_bin_columns)``, NaN for an empty bin (none
    is left empty by the filter unless all are).
    """
    height, width = image.shape
    rows = bin_edges(height, config)
    cols = bin_edges(width, config)
    median = config.statistic == "MEDIAN"
    grid = _bin_means(native_float_plane(image), good, rows, cols, median)
    if config.filter_super_pixels:
        grid = filter_super_pixels(grid)
    return grid


def bin_edges(length: int, config: BackgroundConfig) -> npt.NDArray[np.intp]:
    """Return the bin boundaries along an axis of ``length`` pixels."""
    return _bin_edges(length, bin_count(length, config))


def bin_count(length: int, config: BackgroundConfig) -> int:
    """Return how many bins SubtractBackgroundTask lays along an axis."""
    if config.bin_count == "ceil":
        return math.ceil(length / config.bin_size)
    return length // config.bin_size + 1


def filter_super_pixels(
    grid: FloatArray, fill: float | None = None
) -> FloatArray:
    """Apply meas_algorithms' ``filterSuperPixels`` (3x3) to a bin grid.

    Empty bins first take the median of the grid's values (scipy's
    median filter cannot take NaN), then the grid is median-filtered
    with reflecting edges. ``fill`` gives that median when ``grid`` is
    a window of a larger grid (`empty_bin_fill` of the whole one).
    """
    out = np.array(grid, dtype=np.float64, copy=True)
    empty = np.isnan(out)
    if fill is None:
        if empty.any() and not empty.all():
            out[empty] = empty_bin_fill(out)
    else:
        # A window may be all empty where the whole grid is not.
        out[empty] = fill
    return median_filter_3x3(out)


def empty_bin_fill(grid: FloatArray) -> float:
    """Return what `filter_super_pixels` puts in empty bins: the median.

    NaN when every bin is empty.
    """
    if not np.isfinite(grid).any():
        return math.nan
    return float(np.nanmedian(grid))


def interpolate_columns(
    grid: FloatArray, nodes: FloatArray, at: FloatArray, *, linear: bool
) -> FloatArray:
    """Interpolate each column of ``grid`` over its finite values.

    Each column is its own curve (afw interpolates them one by one);
    columns with the same finite bins share one vectorised call, which
    gives the same bits. Every column has a finite value. Each value
    depends on its point alone, never on the other points asked for.

    Returns
    -------
    curves
        Shape ``(n_columns, len(at))``: column ``j`` at the rows ``at``
        (ascending).
    """
    curves = np.empty((grid.shape[1], len(at)))
    finite = np.isfinite(grid)
    if finite.all():
        # The usual case (filtered bins): one pattern, no sort needed.
        patterns = np.ones((1, grid.shape[0]), dtype=np.bool_)
        group = np.zeros(grid.shape[1], dtype=np.intp)
    else:
        patterns, group = np.unique(finite.T, axis=0, return_inverse=True)
    for g, pattern in enumerate(patterns):
        columns = np.flatnonzero(group.ravel() == g)
        values = grid[np.ix_(pattern, columns)]
        if linear:
            curves[columns] = interpolate(
                nodes[pattern], values, at, per_curve=True, linear=True
            )
        elif np.count_nonzero(pattern) in range(MIN_CUBIC, MIN_AKIMA):
            # LAPACK solves several right-hand sides together: keep the
            # natural cubic splines apart to keep their bits.
            for k, column in enumerate(columns):
                curves[column] = interpolate(
                    nodes[pattern], values[:, k : k + 1], at, per_curve=True
                )[0]
        else:
            curves[columns] = interpolate(
                nodes[pattern], values, at, per_curve=True
            )
    return curves


def _bin_edges(length: int, count: int) -> npt.NDArray[np.intp]:
    """Return the ``count + 1`` bin boundaries afw's BackgroundMI uses."""
    ends = [
        min(((i + 1) * length + count // 2) // count, length)
        for i in range(count)
    ]
    return np.array([0, *ends], dtype=np.intp)


def bin_centres(edges: npt.NDArray[np.intp]) -> FloatArray:
    """Return afw's bin centres: start + size / 2 - 0.5."""
    sizes = np.diff(edges)
    return edges[:-1] + 0.5 * sizes - 0.5


def _bin_means(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    rows: npt.NDArray[np.intp],
    cols: npt.NDArray[np.intp],
    median: bool = False,
) -> FloatArray:
    """Return the clipped mean (or median) of every bin, NaN if empty.

    For each row of bins, every bin's good pixels are gathered into one
    row of a NaN-padded array of shape ``(n_bin_columns,
    max_bin_pixels)``, sorted in place, and all the bins are clipped at
    once (or their middle values taken).
    """
    length = int(np.diff(rows).max()) * int(np.diff(cols).max())
    image = native_float_plane(image)
    good = np.ascontiguousarray(good)
    edges = cols.astype(np.int64)
    means = np.empty((len(rows) - 1, len(cols) - 1))

    def block(bin_rows: tuple[int, int]) -> None:
        # One row of bins at a time: the buffer stays in cache.
        values = np.empty((len(cols) - 1, length))
        for by in range(*bin_rows):
            top, bottom = int(rows[by]), int(rows[by + 1])
            _gather_bin_row(image, good, top, bottom, edges, values)
            values.sort(axis=1)
            if median:
                means[by] = _sorted_row_medians(values)
            else:
                means[by] = clipped_means_by_row(values, presorted=True)

    run_row_blocks(block, len(means), min_rows=_MIN_BLOCK_BINS)
    return means


def _sorted_row_medians(values: FloatArray) -> FloatArray:
    """Return afw's MEDIAN of each sorted, NaN-padded row (NaN if empty).

    afw interpolates at index ``(n - 1) / 2``: ``w1 v[q] + w2 v[q + 1]``
    with ``q = floor`` of it, the two weights 1 and 0 (odd ``n``) or
    both 1/2 (even ``n``).
    """
    counts = np.count_nonzero(np.isfinite(values), axis=1)
    out = np.full(len(values), np.nan)
    has = counts > 0
    index = 0.5 * (counts[has] - 1)
    low = index.astype(np.int64)
    high = np.minimum(low + 1, counts[has] - 1)
    rows = np.flatnonzero(has)
    w1 = (low + 1) - index
    w2 = index - low
    out[has] = w1 * values[rows, low] + w2 * values[rows, high]
    return out


@numba.njit(cache=True, nogil=True)
def _gather_bin_row(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    top: int,
    bottom: int,
    cols: npt.NDArray[np.int64],
    values: FloatArray,
) -> None:
    """Put each bin's good pixels (as float64) in a row of ``values``.

    The bins span image rows ``top:bottom`` and the columns between
    consecutive ``cols``; each row of ``values`` is padded with NaN. The
    pixel order inside a row does not matter: the rows are sorted next.
    """
    values[:] = np.nan
    filled = np.zeros(len(cols) - 1, dtype=np.int64)
    for y in range(top, bottom):
        for b in range(len(cols) - 1):
            for x in range(cols[b], cols[b + 1]):
                if good[y, x]:
                    values[b, filled[b]] = image[y, x]
                    filled[b] += 1
