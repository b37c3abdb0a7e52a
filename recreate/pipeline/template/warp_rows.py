"""The compiled row loops of the template warp: warping and merging.

The loops are compiled with Numba (cached on disk after the first run).
Every output row is computed on its own, in a fixed order, with no
floating-point reassociation, so results are bit-identical run to run and
for any number of threads.
"""

from __future__ import annotations

import math
import os
import threading

import numba
import numpy as np
import numpy.typing as npt

from recreate.numerics.threads import thread_count
from recreate.pipeline.template.lanczos import (
    LANCZOS_ORDER,
    _bilinear,
    _slopes,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The warp loops are compiled for lanczos3's tap count, a constant,
#: which makes them unroll.
_TAPS = 2 * LANCZOS_ORDER

#: Offset of the first tap from ``floor(x)``: taps are ``i - 2 ... i + 3``.
_FIRST = LANCZOS_ORDER - 1

# GNU OpenMP, Numba's first choice here, hangs in a process forked after
# a parallel kernel ran; worker pools fork. Ask for a fork-safe layer
# (workqueue, as fast for these loops) unless the user chose one.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"  # type: ignore[attr-defined]

#: The workqueue layer must not run two parallel kernels at once (Dask
#: workers call from several threads); one kernel already uses every
#: core, so queueing them costs nothing.
_PARALLEL_LOCK = threading.Lock()


def _use_threads() -> None:
    """Run the next parallel kernel on `thread_count` threads.

    Capped at numba's pool size; rows are independent, so the count
    changes no value.
    """
    numba.set_num_threads(
        min(thread_count(), numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    )


@numba.njit(cache=True, nogil=True, parallel=True)
def _warp_kernel(
    image: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    grow_bits: int,
    no_data: int,
    src_x: FloatArray,
    src_y: FloatArray,
    col_cell: IntArray,
    col_t: FloatArray,
    col_step: FloatArray,
    row_cell: IntArray,
    row_t: FloatArray,
    row_step: FloatArray,
    table: FloatArray,
    frame: IntArray,
    out_image: npt.NDArray[np.float32],
    out_variance: npt.NDArray[np.float32],
    out_mask: npt.NDArray[np.int32],
) -> None:
    """Warp every destination row of a window; rows are independent.

    ``frame`` is ``(row0, col0, src_x0, src_y0, src_height, src_width)``:
    the window's first destination row and column, where the source
    arrays start in the whole source, and the whole source's shape. A
    pixel's value depends on its own position alone, so a window holds
    the very values of the whole destination there.
    """
    row0, col0, src_x0, src_y0 = frame[0], frame[1], frame[2], frame[3]
    shape = (frame[4], frame[5])
    for r in numba.prange(out_image.shape[0]):
        j, ty, step_y = row_cell[row0 + r], row_t[row0 + r], row_step[row0 + r]
        for c in range(out_image.shape[1]):
            i, tx = col_cell[col0 + c], col_t[col0 + c]
            x = _bilinear(src_x, j, i, ty, tx)
            y = _bilinear(src_y, j, i, ty, tx)
            if not _inside(x, y, shape):
                out_image[r, c] = np.nan
                out_variance[r, c] = np.inf
                out_mask[r, c] = no_data
                continue
            area = _relative_area(
                src_x, src_y, j, i, ty, tx, col_step[col0 + c], step_y
            )
            ix, iy = math.floor(x), math.floor(y)
            cache = table.shape[0] - 1
            kx = int((x - ix) * cache + 0.5)
            ky = int((y - iy) * cache + 0.5)
            sx, sy = ix - src_x0, iy - src_y0
            value, var = _convolve(
                image, variance, sy, sx, table[ky], table[kx]
            )
            out_image[r, c] = value * area
            out_variance[r, c] = var * area * area
            bits = _bilinear_mask(mask, sy, sx, ky, kx, cache)
            if grow_bits != 0:
                footprint = _footprint_mask(mask, sy, sx, table[ky], table[kx])
                bits |= footprint & grow_bits
            out_mask[r, c] = bits


@numba.njit(cache=True, inline="always")
def _inside(x: float, y: float, shape: tuple[int, int]) -> bool:
    """Say whether the whole kernel footprint at ``(x, y)`` is on-array.

    afw's ``srcGoodBBox``: pixel ``floor(x)`` must lie in
    ``[n - 1, width - 1 - n]`` for a ``2n``-tap kernel. NaN is outside.
    """
    lo = float(_FIRST)
    return lo <= x < shape[1] - _FIRST - 1 and lo <= y < shape[0] - _FIRST - 1


@numba.njit(cache=True, inline="always")
def _relative_area(
    src_x: FloatArray,
    src_y: FloatArray,
    j: int,
    i: int,
    ty: float,
    tx: float,
    step_x: float,
    step_y: float,
) -> float:
    """Return the destination pixel's area in source pixels.

    afw multiplies each warped pixel by this (``relativeArea``): the
    cross product of the source steps of one destination pixel along x
    and y, here the derivatives of the interpolated transform.
    """
    dxdc, dxdr = _slopes(src_x, j, i, ty, tx)
    dydc, dydr = _slopes(src_y, j, i, ty, tx)
    return abs(dxdc * dydr - dydc * dxdr) / (step_x * step_y)


@numba.njit(cache=True, inline="always")
def _convolve(
    image: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    iy: int,
    ix: int,
    wy: FloatArray,
    wx: FloatArray,
) -> tuple[float, float]:
    """Return ``sum(w I)`` and ``sum(w**2 V)`` over the footprint.

    The tap count is the module constant ``_TAPS`` so that Numba unrolls
    the loops: 1.5x faster than a run-time count.
    """
    value = 0.0
    var = 0.0
    for jj in range(_TAPS):
        row = iy - _FIRST + jj
        row_value = 0.0
        row_var = 0.0
        for ii in range(_TAPS):
            weight = wx[ii]
            col = ix - _FIRST + ii
            row_value += weight * image[row, col]
            row_var += weight * weight * variance[row, col]
        weight = wy[jj]
        value += weight * row_value
        var += weight * weight * row_var
    return value, var


@numba.njit(cache=True, inline="always")
def _bilinear_mask(
    mask: npt.NDArray[np.int32], iy: int, ix: int, ky: int, kx: int, cache: int
) -> int:
    """OR the 2x2 source pixels whose bilinear weight is not zero.

    The weights are ``1 - f`` and ``f`` for pixels ``i`` and ``i + 1``;
    ``f`` is quantised like the Lanczos offset (``k / cache``).
    """
    bits = 0
    for dy in range(2):
        if (dy == 0 and ky == cache) or (dy == 1 and ky == 0):
            continue
        for dx in range(2):
            if (dx == 0 and kx == cache) or (dx == 1 and kx == 0):
                continue
            bits |= mask[iy + dy, ix + dx]
    return bits


@numba.njit(cache=True, inline="always")
def _footprint_mask(
    mask: npt.NDArray[np.int32],
    iy: int,
    ix: int,
    wy: FloatArray,
    wx: FloatArray,
) -> int:
    """OR the source pixels with a non-zero Lanczos weight."""
    bits = 0
    for jj in range(_TAPS):
        if wy[jj] == 0.0:
            continue
        for ii in range(_TAPS):
            if wx[ii] != 0.0:
                bits |= mask[iy - _FIRST + jj, ix - _FIRST + ii]
    return bits


@numba.njit(cache=True, inline="always")
def _weight(image: float, variance: float, bits: int, no_data: int) -> float:
    """Return ``variance**-0.5``, or 0 for a pixel without usable data."""
    if (bits & no_data) != 0 or not np.isfinite(image):
        return 0.0
    if not (variance > 0.0 and np.isfinite(variance)):
        return 0.0
    return 1.0 / math.sqrt(variance)


@numba.njit(cache=True, nogil=True, parallel=True)
def _merge_kernel(
    images: tuple[npt.NDArray[np.float32], ...],
    variances: tuple[npt.NDArray[np.float32], ...],
    masks: tuple[npt.NDArray[np.int32], ...],
    offsets: IntArray,
    n: int,
    no_data: int,
    edge: bool,
    out_image: npt.NDArray[np.float32],
    out_variance: npt.NDArray[np.float32],
    out_mask: npt.NDArray[np.int32],
    counts: IntArray,
) -> None:
    """Merge every output row; rows are independent.

    The sums of a row live in small row buffers, so each input pixel is
    read once and each output pixel written once.
    """
    width = out_image.shape[1]
    for r in numba.prange(out_image.shape[0]):
        sums = np.zeros((3, width))
        bits = np.zeros(width, np.int64)
        for k in range(n):
            y = r - offsets[1, k]
            if 0 <= y < images[k].shape[0]:
                counts[r, k] = _accumulate_row(
                    images[k][y],
                    variances[k][y],
                    masks[k][y],
                    offsets[0, k],
                    no_data,
                    sums,
                    bits,
                )
        _finish_row(
            sums,
            bits,
            no_data,
            edge,
            out_image[r],
            out_variance[r],
            out_mask[r],
        )


@numba.njit(cache=True, inline="always")
def _accumulate_row(
    image: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    x0: int,
    no_data: int,
    sums: FloatArray,
    bits: IntArray,
) -> int:
    """Add one input row, starting at column ``x0``; return pixels added.

    ``bits`` collects the masks of contributing pixels only: like v29,
    a pixel that is left out leaves its mask bits out too.
    """
    added = 0
    for c in range(max(0, x0), min(sums.shape[1], x0 + image.size)):
        value = image[c - x0]
        var = variance[c - x0]
        flags = mask[c - x0]
        weight = _weight(value, var, flags, no_data)
        if weight == 0.0:
            continue
        sums[0, c] += weight * value
        sums[1, c] += weight * var
        sums[2, c] += weight
        bits[c] |= flags
        added += 1
    return added


@numba.njit(cache=True, inline="always")
def _finish_row(
    sums: FloatArray,
    bits: IntArray,
    no_data: int,
    edge: bool,
    image: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
) -> None:
    """Divide a row by its summed weights and fill what has no data.

    Without data: an edge pixel (NaN, +inf, ``NO_DATA``) when ``edge``,
    else v29's merge state (0, 0, ``NO_DATA``).
    """
    for c in range(image.size):
        total = sums[2, c]
        if total > 0.0:
            image[c] = sums[0, c] / total
            variance[c] = sums[1, c] / total
            mask[c] = bits[c]
        elif edge:
            image[c] = np.nan
            variance[c] = np.inf
            mask[c] = no_data
        else:
            image[c] = 0.0
            variance[c] = 0.0
            mask[c] = no_data


@numba.njit(cache=True)
def _count_flagged_kernel(mask: npt.NDArray[np.int32], bits: int) -> int:
    """Count flagged pixels, row by row (works on strided views)."""
    total = 0
    for r in range(mask.shape[0]):
        for c in range(mask.shape[1]):
            if mask[r, c] & bits:
                total += 1
    return total
