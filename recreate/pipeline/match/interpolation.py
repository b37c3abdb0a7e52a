"""afw's 1-D interpolation of background bins, as scipy computes it.

`interpolate` evaluates several curves on the same nodes the way afw's
``Interpolate`` (REDUCE_INTERP_ORDER) does: an Akima spline for 5 or
more nodes (scipy's ``Akima1DInterpolator``: the same slopes and piece
polynomials, evaluated operation for operation), a natural cubic spline
for 3-4, linear for 2, constant for 1, or piecewise linear (LINEAR);
beyond the end nodes the value is extrapolated from the end point's
derivatives. Each value depends on its own point alone; the one number
shared by all curves of a call, the scale of scipy's Akima cutoff, can
be given (`akima_scale`), so that a few curves of a larger set come out
as they do in the call on all of them.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numba
import numpy as np
import numpy.typing as npt
from scipy.interpolate import CubicSpline, PPoly

from recreate.numerics.row_blocks import run_row_blocks

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

#: Fewest points for each interpolation style (afw's
#: ``lookupMinInterpPoints``): Akima 5, cubic spline 3, linear 2.
MIN_AKIMA = 5
MIN_CUBIC = 3

#: scipy's Akima cutoff: slopes whose weights sum below this fraction
#: of the largest are the plain mean of their neighbours.
_AKIMA_BREAK = 1e-9


@overload
def interpolate(
    nodes: FloatArray,
    values: FloatArray,
    at: FloatArray,
    *,
    per_curve: bool,
    linear: bool = ...,
    largest: float | None = ...,
    float32: Literal[False] = ...,
) -> FloatArray: ...


@overload
def interpolate(
    nodes: FloatArray,
    values: FloatArray,
    at: FloatArray,
    *,
    per_curve: bool,
    linear: bool = ...,
    largest: float | None = ...,
    float32: Literal[True],
) -> Float32Array: ...


@overload
def interpolate(
    nodes: FloatArray,
    values: FloatArray,
    at: FloatArray,
    *,
    per_curve: bool,
    linear: bool = ...,
    largest: float | None = ...,
    float32: bool,
) -> FloatArray | Float32Array: ...


def interpolate(
    nodes: FloatArray,
    values: FloatArray,
    at: FloatArray,
    *,
    per_curve: bool,
    linear: bool = False,
    largest: float | None = None,
    float32: bool = False,
) -> npt.NDArray[Any]:
    """Interpolate each column of ``values`` as afw does (module notes).

    ``values`` has shape ``(len(nodes), n_curves)``: several curves on
    the same nodes. The result has shape ``(n_curves, len(at))``, one
    interpolated curve per row; ``at`` ascends. Akima splines are
    scipy's ``Akima1DInterpolator``, whose slope cutoff (1e-9 of the
    largest slope change) is taken per curve if ``per_curve``, else over
    all the curves (as one call on all of them does), or from
    ``largest`` when given (`akima_scale` of the whole set of curves,
    when ``values`` holds only some of them). The values are computed
    in float64; ``float32`` stores them rounded, as ``astype`` rounds
    them, with no float64 copy of the whole result.
    """
    dtype = np.float32 if float32 else np.float64
    count = len(nodes)
    if count == 1:
        out = np.repeat(values[0][:, None], len(at), axis=1)
        return out.astype(dtype, copy=False)
    if linear and count > 2:
        return _piecewise_linear(nodes, values, at, dtype)
    if count == 2:
        slope = (values[1] - values[0]) / (nodes[1] - nodes[0])
        out = values[0][:, None] + np.multiply.outer(slope, at - nodes[0])
        return out.astype(dtype, copy=False)
    if count >= MIN_AKIMA:
        return _akima(
            nodes,
            values,
            at,
            per_curve=per_curve,
            largest=largest,
            dtype=dtype,
        )
    spline = CubicSpline(nodes, values, axis=0, bc_type="natural")
    out = np.empty((values.shape[1], len(at)), dtype=dtype)
    coefficients = np.ascontiguousarray(spline.c.transpose(2, 1, 0))

    def block(curves: tuple[int, int]) -> None:
        first, stop = curves
        _evaluate_pieces(
            coefficients[first:stop], spline.x, at, out[first:stop]
        )

    run_row_blocks(block, len(out))
    _extrapolate(spline, spline, nodes, at, out)
    return out


def _akima(
    nodes: FloatArray,
    values: FloatArray,
    at: FloatArray,
    *,
    per_curve: bool,
    largest: float | None,
    dtype: type[np.float32 | np.float64],
) -> npt.NDArray[Any]:
    """Return `interpolate`'s Akima curves, made a block of curves at a time.

    scipy's ``Akima1DInterpolator`` is a ``CubicHermiteSpline`` on its
    slopes; here each block of curves gets its slopes and piece
    polynomials (`_akima_pieces`, scipy's operations) and is evaluated
    at once, on threads, with no whole-set coefficient array. Only the
    cutoff's scale, over all curves unless ``per_curve``, is found first.
    """
    curves = np.ascontiguousarray(values.T, dtype=np.float64)
    n_curves = len(curves)
    scales = np.empty(n_curves)
    if largest is not None:
        scales[:] = largest
    else:
        run_row_blocks(
            lambda rows: _largest_slope_changes(
                nodes, curves[rows[0] : rows[1]], scales[rows[0] : rows[1]]
            ),
            n_curves,
        )
        if not per_curve:
            # np.max over every curve: NaN if any is.
            scales[:] = np.max(scales)
    out: npt.NDArray[Any] = np.empty((n_curves, len(at)), dtype=dtype)
    ends = np.empty((2, 4, n_curves))

    def block(rows: tuple[int, int]) -> None:
        first, stop = rows
        pieces = _akima_pieces(nodes, curves[first:stop], scales[first:stop])
        _evaluate_pieces(pieces, nodes, at, out[first:stop])
        ends[0, :, first:stop] = pieces[:, 0].T
        ends[1, :, first:stop] = pieces[:, -1].T

    run_row_blocks(block, n_curves)
    # Beyond the end nodes, as the whole spline's end pieces give it.
    first_piece = PPoly(ends[0][:, None], nodes[:2], extrapolate=False)
    last_piece = PPoly(ends[1][:, None], nodes[-2:], extrapolate=False)
    _extrapolate(first_piece, last_piece, nodes, at, out)
    return out


def _extrapolate(
    first: PPoly,
    last: PPoly,
    nodes: FloatArray,
    at: FloatArray,
    out: npt.NDArray[Any],
) -> None:
    """Fill ``out`` beyond the end nodes from the end points' derivatives.

    ``first`` and ``last`` hold the first and last pieces (or the whole
    spline); value, slope and curvature at the end node continue it.
    """
    for spline, end, beyond in (
        (first, nodes[0], at < nodes[0]),
        (last, nodes[-1], at > nodes[-1]),
    ):
        if np.any(beyond):
            step = np.asarray(at[beyond] - end)
            value, slope, curve = (spline(end, nu) for nu in (0, 1, 2))
            out[:, beyond] = (
                value[:, None]
                + np.multiply.outer(slope, step)
                + 0.5 * np.multiply.outer(curve, step**2)
            )


def _piecewise_linear(
    nodes: FloatArray,
    values: FloatArray,
    at: FloatArray,
    dtype: type[np.float32 | np.float64],
) -> npt.NDArray[Any]:
    """Interpolate each curve linearly (GSL's linear).

    The end segments are extended beyond the end nodes; the result has
    shape ``(n_curves, len(at))``, stored as ``dtype``. Each value is
    numpy's ``y_lo + fraction * (y_hi - y_lo)`` of its segment, computed
    by a compiled kernel over blocks of curves on threads.
    """
    segment = np.clip(
        np.searchsorted(nodes, at, side="right") - 1, 0, len(nodes) - 2
    )
    x_lo, x_hi = nodes[segment], nodes[segment + 1]
    fraction = (at - x_lo) / (x_hi - x_lo)
    curves = np.ascontiguousarray(values.T, dtype=np.float64)
    out: npt.NDArray[Any] = np.empty((len(curves), len(at)), dtype=dtype)
    run_row_blocks(
        lambda rows: _linear_rows(
            curves[rows[0] : rows[1]],
            segment,
            fraction,
            out[rows[0] : rows[1]],
        ),
        len(curves),
    )
    return out


def akima_scale(x: FloatArray, y: FloatArray) -> float:
    """Return the largest Akima slope change over all curves of ``y``.

    The scale of scipy's cutoff when one call interpolates every curve
    (``per_curve=False``); 0 with fewer than 5 nodes (no Akima spline).
    """
    if len(x) < MIN_AKIMA:
        return 0.0
    return float(np.max(_slope_changes(x, y)[2]))


def _slope_changes(
    x: FloatArray, y: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return scipy Akima's extended secants ``m``, ``|dm|`` and ``f12``."""
    dx = np.diff(x)[:, None]
    m = np.empty((x.shape[0] + 3, y.shape[1]))
    m[2:-2] = np.diff(y, axis=0) / dx
    m[1] = 2.0 * m[2] - m[3]
    m[0] = 2.0 * m[1] - m[2]
    m[-2] = 2.0 * m[-3] - m[-4]
    m[-1] = 2.0 * m[-2] - m[-3]
    dm = np.abs(np.diff(m, axis=0))
    return m, dm, dm[2:] + dm[:-2]


@numba.njit(cache=True, nogil=True)
def _evaluate_pieces(
    coefficients: FloatArray,
    breaks: FloatArray,
    at: FloatArray,
    out: npt.NDArray[Any],
) -> None:
    """Write scipy PPoly's value at each ascending ``at`` inside the breaks.

    ``coefficients`` has shape ``(n_curves, n_intervals, 4)`` (cubics,
    highest power first); ``out[j, p]`` receives curve ``j`` at ``at[p]``
    where ``breaks[0] <= at[p] <= breaks[-1]``, the interval found and
    the polynomial summed exactly as scipy's ``_ppoly.evaluate`` does
    (and rounded on the store if ``out`` is float32).
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


@numba.njit(cache=True, nogil=True)
def _secants(x: FloatArray, y: FloatArray, m: FloatArray) -> None:
    """Fill ``m`` with scipy Akima's secants of one curve, extended.

    ``m[2:-2]`` are the secants; two more at each end continue them
    linearly (``_slope_changes``'s operations).
    """
    n = len(x)
    for i in range(n - 1):
        m[i + 2] = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
    m[1] = 2.0 * m[2] - m[3]
    m[0] = 2.0 * m[1] - m[2]
    m[n + 1] = 2.0 * m[n] - m[n - 1]
    m[n + 2] = 2.0 * m[n + 1] - m[n]


@numba.njit(cache=True, nogil=True)
def _largest_slope_changes(
    x: FloatArray, curves: FloatArray, out: FloatArray
) -> None:
    """Write each curve's largest ``f12`` (NaN if any is) into ``out``."""
    n = len(x)
    m = np.empty(n + 3)
    for j in range(len(curves)):
        _secants(x, curves[j], m)
        largest = -np.inf
        for i in range(n):
            f12 = abs(m[i + 3] - m[i + 2]) + abs(m[i + 1] - m[i])
            if math.isnan(f12) or math.isnan(largest):
                largest = math.nan
            elif f12 > largest:
                largest = f12
        out[j] = largest


@numba.njit(cache=True, nogil=True)
def _akima_pieces(
    x: FloatArray, curves: FloatArray, scales: FloatArray
) -> FloatArray:
    """Return the Akima cubics of each curve: ``(n_curves, n - 1, 4)``.

    The slopes as scipy 1.18's ``Akima1DInterpolator`` (method "akima")
    computes them, with the cutoff below which a slope is the plain
    mean of its neighbours at ``1e-9 * scales[j]``; then the piece
    polynomials as scipy's ``CubicHermiteSpline`` makes them,
    highest power first.
    """
    n = len(x)
    pieces = np.empty((len(curves), n - 1, 4))
    m = np.empty(n + 3)
    t = np.empty(n)
    for j in range(len(curves)):
        y = curves[j]
        _secants(x, y, m)
        limit = _AKIMA_BREAK * scales[j]
        for i in range(n):
            f2 = abs(m[i + 1] - m[i])
            f12 = abs(m[i + 3] - m[i + 2]) + f2
            if f12 > limit:
                t[i] = m[i + 1] + ((f2 / f12) * (m[i + 2] - m[i + 1]))
            else:
                t[i] = 0.5 * (m[i + 3] + m[i])
        for i in range(n - 1):
            dx = x[i + 1] - x[i]
            slope = (y[i + 1] - y[i]) / dx
            change = (t[i] + t[i + 1] - 2 * slope) / dx
            pieces[j, i, 0] = change / dx
            pieces[j, i, 1] = (slope - t[i]) / dx - change
            pieces[j, i, 2] = t[i]
            pieces[j, i, 3] = y[i]
    return pieces


@numba.njit(cache=True, nogil=True)
def _linear_rows(
    curves: FloatArray,
    segment: npt.NDArray[np.intp],
    fraction: FloatArray,
    out: npt.NDArray[Any],
) -> None:
    """Write each curve's piecewise-linear values (`_piecewise_linear`)."""
    for j in range(len(curves)):
        y = curves[j]
        for p in range(len(segment)):
            y_lo = y[segment[p]]
            y_hi = y[segment[p] + 1]
            out[j, p] = y_lo + fraction[p] * (y_hi - y_lo)
