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

The per-pixel work is compiled with numba and repeats the arithmetic of
the plain numpy/scipy formulation operation for operation: the bins'
clipped means and scipy's Akima slopes and PPoly evaluation give the
same bits, without whole-image temporaries. Blocks of rows (of pixels
or of bins) run on `thread_count` threads; each writes only its own
rows, so no result depends on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt
from scipy.interpolate import CubicHermiteSpline, CubicSpline, PPoly
from scipy.ndimage import median_filter

from recreate.numerics.arrays import native_float_plane
from recreate.numerics.robust import clipped_means_by_row
from recreate.numerics.row_blocks import run_row_blocks
from recreate.pipeline.config import BackgroundConfig

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Fewest points for each interpolation style (afw's
#: ``lookupMinInterpPoints``): Akima 5, cubic spline 3, linear 2.
_MIN_AKIMA = 5
_MIN_CUBIC = 3

#: scipy's Akima cutoff: slopes whose weights sum below this fraction
#: of the largest are the plain mean of their neighbours.
_AKIMA_BREAK = 1e-9

#: Curves interpolated together by the piecewise-linear style.
_LINEAR_BLOCK = 64

#: Fewest rows of bins worth a thread of their own.
_MIN_BLOCK_BINS = 4


def binned_background(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    config: BackgroundConfig,
) -> FloatArray:
    """Return afw's interpolated binned background (see module notes).

    Parameters
    ----------
    image
        The image (float32 values are taken as their float64 value).
    good
        Pixels that may enter the bin statistics.
    config
        Bin size and count rule, statistic, interpolation and filter.

    Returns
    -------
    background
        Same shape as ``image``, float64, C-ordered; all zero when no
        bin has a value.
    """
    height, width = image.shape
    rows = _bin_edges(height, bin_count(height, config))
    cols = _bin_edges(width, bin_count(width, config))
    median = config.statistic == "MEDIAN"
    grid = _bin_means(native_float_plane(image), good, rows, cols, median)
    if config.filter_super_pixels:
        grid = _filter_super_pixels(grid)
    linear = config.interpolation == "LINEAR"
    y_nodes = _bin_centres(rows)
    x_nodes = _bin_centres(cols)
    # afw interpolates each column of bins in y first, then each row in x.
    kept = np.flatnonzero(np.any(np.isfinite(grid), axis=0))
    if len(kept) == 0:
        return np.zeros(image.shape)
    by_column = _interpolate_columns(grid[:, kept], y_nodes, height, linear)
    x_out = np.arange(width, dtype=np.float64)
    return _interpolate(
        x_nodes[kept], by_column, x_out, per_curve=False, linear=linear
    )


def bin_count(length: int, config: BackgroundConfig) -> int:
    """Return how many bins SubtractBackgroundTask lays along an axis."""
    if config.bin_count == "ceil":
        return math.ceil(length / config.bin_size)
    return length // config.bin_size + 1


def _filter_super_pixels(grid: FloatArray) -> FloatArray:
    """Apply meas_algorithms' ``filterSuperPixels`` (3x3) to a bin grid.

    Empty bins first take the median of the grid's values (scipy's
    median filter cannot take NaN), then the grid is median-filtered
    with reflecting edges.
    """
    out = np.array(grid, dtype=np.float64, copy=True)
    empty = np.isnan(out)
    if empty.any() and not empty.all():
        out[empty] = np.nanmedian(out)
    return np.asarray(median_filter(out, mode="reflect", size=3))


def _interpolate_columns(
    grid: FloatArray, nodes: FloatArray, length: int, linear: bool
) -> FloatArray:
    """Interpolate each column of ``grid`` over its finite values.

    Each column is its own curve (afw interpolates them one by one);
    columns with the same finite bins share one vectorised call, which
    gives the same bits. Every column has a finite value.

    Returns
    -------
    curves
        Shape ``(n_columns, length)``: column ``j`` at 0, 1, ...
    """
    at = np.arange(length, dtype=np.float64)
    curves = np.empty((grid.shape[1], length))
    finite = np.isfinite(grid)
    patterns, group = np.unique(finite.T, axis=0, return_inverse=True)
    for g, pattern in enumerate(patterns):
        columns = np.flatnonzero(group.ravel() == g)
        values = grid[np.ix_(pattern, columns)]
        if linear:
            curves[columns] = _interpolate(
                nodes[pattern], values, at, per_curve=True, linear=True
            )
        elif np.count_nonzero(pattern) in range(_MIN_CUBIC, _MIN_AKIMA):
            # LAPACK solves several right-hand sides together: keep the
            # natural cubic splines apart to keep their bits.
            for k, column in enumerate(columns):
                curves[column] = _interpolate(
                    nodes[pattern], values[:, k : k + 1], at, per_curve=True
                )[0]
        else:
            curves[columns] = _interpolate(
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


def _bin_centres(edges: npt.NDArray[np.intp]) -> FloatArray:
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


def _interpolate(
    nodes: FloatArray,
    values: FloatArray,
    at: FloatArray,
    *,
    per_curve: bool,
    linear: bool = False,
) -> FloatArray:
    """Interpolate each column of ``values`` as afw does (module notes).

    ``values`` has shape ``(len(nodes), n_curves)``: several curves on
    the same nodes. The result has shape ``(n_curves, len(at))``, one
    interpolated curve per row; ``at`` ascends. Akima splines are
    scipy's ``Akima1DInterpolator``, whose slope cutoff (1e-9 of the
    largest slope change) is taken per curve if ``per_curve``, else over
    all the curves (as one call on all of them does).
    """
    count = len(nodes)
    if count == 1:
        return np.repeat(values[0][:, None], len(at), axis=1)
    if linear and count > 2:
        return _piecewise_linear(nodes, values, at)
    if count == 2:
        slope = (values[1] - values[0]) / (nodes[1] - nodes[0])
        return values[0][:, None] + np.multiply.outer(slope, at - nodes[0])
    spline: PPoly
    if count >= _MIN_AKIMA:
        slopes = _akima_slopes(nodes, values, per_curve=per_curve)
        spline = CubicHermiteSpline(nodes, values, slopes, extrapolate=False)
    else:
        spline = CubicSpline(nodes, values, axis=0, bc_type="natural")
    out = np.empty((values.shape[1], len(at)))
    coefficients = np.ascontiguousarray(spline.c.transpose(2, 1, 0))

    def block(curves: tuple[int, int]) -> None:
        first, stop = curves
        _evaluate_pieces(
            coefficients[first:stop], spline.x, at, out[first:stop]
        )

    run_row_blocks(block, len(out))
    for end, beyond in (
        (nodes[0], at < nodes[0]),
        (nodes[-1], at > nodes[-1]),
    ):
        if np.any(beyond):
            step = np.asarray(at[beyond] - end)
            value, slope, curve = (spline(end, nu) for nu in (0, 1, 2))
            out[:, beyond] = (
                value[:, None]
                + np.multiply.outer(slope, step)
                + 0.5 * np.multiply.outer(curve, step**2)
            )
    return out


def _piecewise_linear(
    nodes: FloatArray, values: FloatArray, at: FloatArray
) -> FloatArray:
    """Interpolate each curve linearly (GSL's linear).

    The end segments are extended beyond the end nodes; the result has
    shape ``(n_curves, len(at))``. Curves are done a block at a time, so
    the temporaries stay small on a full detector.
    """
    segment = np.clip(
        np.searchsorted(nodes, at, side="right") - 1, 0, len(nodes) - 2
    )
    x_lo, x_hi = nodes[segment], nodes[segment + 1]
    fraction = (at - x_lo) / (x_hi - x_lo)
    out = np.empty((values.shape[1], len(at)))
    for first in range(0, values.shape[1], _LINEAR_BLOCK):
        block = values[:, first : first + _LINEAR_BLOCK]
        y_lo, y_hi = block[segment].T, block[segment + 1].T
        out[first : first + _LINEAR_BLOCK] = y_lo + fraction * (y_hi - y_lo)
    return out


def _akima_slopes(
    x: FloatArray, y: FloatArray, *, per_curve: bool
) -> FloatArray:
    """Return the node slopes scipy's ``Akima1DInterpolator`` uses.

    The same operations as scipy 1.18's (method "akima", 5 or more
    nodes) on ``y`` of shape ``(len(x), n_curves)``, with the cutoff
    below which a slope is the plain mean taken per curve or overall.
    """
    dx = np.diff(x)[:, None]
    m = np.empty((x.shape[0] + 3, y.shape[1]))
    m[2:-2] = np.diff(y, axis=0) / dx
    m[1] = 2.0 * m[2] - m[3]
    m[0] = 2.0 * m[1] - m[2]
    m[-2] = 2.0 * m[-3] - m[-4]
    m[-1] = 2.0 * m[-2] - m[-3]
    t = 0.5 * (m[3:] + m[:-3])
    dm = np.abs(np.diff(m, axis=0))
    f1 = dm[2:]
    f2 = dm[:-2]
    f12 = f1 + f2
    largest = np.max(f12, axis=0) if per_curve else np.max(f12)
    node, curve = np.nonzero(f12 > _AKIMA_BREAK * largest)
    t[node, curve] = m[node + 1, curve] + (
        (f2[node, curve] / f12[node, curve])
        * (m[node + 2, curve] - m[node + 1, curve])
    )
    return t


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


@numba.njit(cache=True, nogil=True)
def _evaluate_pieces(
    coefficients: FloatArray,
    breaks: FloatArray,
    at: FloatArray,
    out: FloatArray,
) -> None:
    """Write scipy PPoly's value at each ascending ``at`` inside the breaks.

    ``coefficients`` has shape ``(n_curves, n_intervals, 4)`` (cubics,
    highest power first); ``out[j, p]`` receives curve ``j`` at ``at[p]``
    where ``breaks[0] <= at[p] <= breaks[-1]``, the interval found and
    the polynomial summed exactly as scipy's ``_ppoly.evaluate`` does.
    """
    n_curves, n_intervals, _ = coefficients.shape
    # ``at`` ascends: the points inside are one run, and so are each
    # interval's points within it.
    first = np.searchsorted(at, breaks[0], side="left")
    stop = np.searchsorted(at, breaks[-1], side="right")
    inside = at[first:stop]
    # x[i] <= at < x[i + 1]; the last breakpoint closes the last interval.
    interval = np.searchsorted(breaks, inside, side="right") - 1
    interval = np.minimum(interval, n_intervals - 1)
    s1 = inside - breaks[interval]
    s2 = s1 * s1
    s3 = s2 * s1
    starts = np.searchsorted(interval, np.arange(n_intervals + 1))
    for j in range(n_curves):
        for i in range(n_intervals):
            low, high = starts[i], starts[i + 1]
            # scipy's sum: res = res + c[k] * s**(3 - k), from c[3].
            c0, c1, c2, c3 = coefficients[j, i]
            constant = 0.0 + c3
            row = out[j, first + low : first + high]
            z1, z2, z3 = s1[low:high], s2[low:high], s3[low:high]
            for q in range(high - low):
                row[q] = ((constant + c2 * z1[q]) + c1 * z2[q]) + c0 * z3[q]
