"""Lanczos warping and variance-weighted stitching, as afw does them.

This module is the numerical core of `recreate.pipeline.template`: it
reproduces, on plain arrays, what v29's GetTemplateTask asks of afw.

``merge_patches``
    GetTemplateTask's ``_merge``: place patches on one pixel grid and
    average them with weights ``variance**-0.5``; the variance is
    averaged with the same weights, not added in quadrature. Pixels no
    patch covers hold image 0, variance 0 and ``NO_DATA``, exactly what
    v29 hands to the warper (its merged ``ExposureF`` starts at zero).
``warp_planes``
    afw's ``warpImage`` with ``lanczos3`` for image and variance and
    ``bilinear`` for the mask: the image is ``sum(w I) * area``, the
    variance ``sum(w**2 V) * area**2`` (afw multiplies a masked pixel by
    a scalar ``k`` as image ``k I``, variance ``k**2 V``), with ``w`` the
    normalised separable Lanczos weights and ``area`` the destination
    pixel's area in source pixels. Mask bits come from the 2x2 source
    pixels with non-zero bilinear weight, plus the ``grow_bits`` (afw's
    ``growFullMask``, ``EDGE``) of the whole Lanczos footprint. A pixel
    whose footprint leaves the source array is an edge pixel: image NaN,
    variance +inf, ``NO_DATA``.
``merge_warped``
    The final ``_merge`` of the warped tracts, with NaN image, +inf
    variance and ``NO_DATA`` wherever no tract has data.

The source position of every destination pixel is interpolated bilinearly
from the WCS evaluated on a coarse grid (`CoarseMap`), as afw's
``interpLength`` does. Kernel weights come from a table of
``KERNEL_CACHE_SIZE + 1`` offsets, as afw's kernel cache does.

The loops are compiled with Numba (cached on disk after the first run).
Every output row is computed on its own, in a fixed order, with no
floating-point reassociation, so results are bit-identical run to run and
for any number of threads.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from recreate.pipeline.threads import thread_count

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: afw's ``WarpingControl.cacheSize`` in GetTemplateConfig: kernel weights
#: are tabulated at this many fractional offsets.
KERNEL_CACHE_SIZE = 100_000

#: The Lanczos order of ``lanczos3``, v29's warping kernel. The warp loops
#: are compiled for its tap count, a constant, which makes them unroll.
LANCZOS_ORDER = 3
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


class Planes(NamedTuple):
    """The three pixel planes of a masked image."""

    image: npt.NDArray[np.float32]
    variance: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int32]


class PlacedPlanes(NamedTuple):
    """Planes placed on a larger grid, their origin at ``(x0, y0)``."""

    planes: Planes
    x0: int
    y0: int


def empty_planes(shape: tuple[int, int]) -> Planes:
    """Return uninitialised planes of ``shape``, to be filled."""
    return Planes(
        np.empty(shape, np.float32),
        np.empty(shape, np.float32),
        np.empty(shape, np.int32),
    )


# --------------------------------------------------------------------------
# Kernel weights
# --------------------------------------------------------------------------


def lanczos_weights(order: int, offsets: FloatArray) -> FloatArray:
    """Return normalised 1-D Lanczos weights for fractional offsets.

    Parameters
    ----------
    order
        Lanczos order ``n``; the kernel has ``2n`` taps.
    offsets
        Fractional source positions ``f`` in ``[0, 1]``, measured from
        the source pixel ``i = floor(x)``.

    Returns
    -------
    weights
        Array ``(len(offsets), 2n)``: the weights of source pixels
        ``i - n + 1 ... i + n``, each row summing to 1 (afw divides by the
        kernel sum). At whole-pixel offsets the row is exactly one 1 and
        zeros, so a whole-pixel shift copies pixels unchanged.
    """
    taps = np.arange(-order + 1, order + 1, dtype=np.float64)
    distance = taps[None, :] - np.asarray(offsets, np.float64)[:, None]
    weights = np.sinc(distance) * np.sinc(distance / order)
    # sin(pi k) is not exactly 0 in floating point: make whole-pixel
    # offsets exact, so integer shifts reproduce pixels bit for bit.
    whole = np.isclose(distance, np.round(distance), rtol=0.0, atol=1e-12)
    weights[whole] = (np.round(distance[whole]) == 0).astype(np.float64)
    return np.asarray(weights / weights.sum(axis=1, keepdims=True))


@lru_cache(maxsize=4)
def lanczos_table(
    order: int, cache_size: int = KERNEL_CACHE_SIZE
) -> FloatArray:
    """Return Lanczos weights tabulated at offsets ``k / cache_size``.

    Row ``k`` holds `lanczos_weights` for offset ``k / cache_size``,
    ``k = 0 ... cache_size``; a position is looked up at the nearest
    row, so the offset is off by at most ``0.5 / cache_size`` px, as with
    afw's cache. The table is read-only.
    """
    offsets = np.arange(cache_size + 1, dtype=np.float64) / cache_size
    table = np.ascontiguousarray(lanczos_weights(order, offsets))
    table.setflags(write=False)
    return table


# --------------------------------------------------------------------------
# Coarse-grid transform
# --------------------------------------------------------------------------


def interpolation_nodes(length: int, interp_length: int) -> IntArray:
    """Return afw's interpolation nodes along one destination axis.

    afw evaluates the transform at ``-1, L - 1, 2L - 1, ...`` and always
    at the last pixel ``length - 1`` (``warpExposure.cc``, edgeColList).

    Raises
    ------
    ValueError
        If ``length`` or ``interp_length`` is not positive.
    """
    if length < 1 or interp_length < 1:
        raise ValueError(
            f"need a positive length and interp_length, got {length}, "
            f"{interp_length}"
        )
    nodes = np.arange(-1, length - 1, interp_length, dtype=np.int64)
    return np.append(nodes, length - 1)


def _cells(nodes: IntArray, length: int) -> tuple[IntArray, FloatArray]:
    """Return, per pixel, its interpolation cell and position in it.

    Pixel ``p`` lies in cell ``i`` when ``nodes[i] < p <= nodes[i + 1]``,
    at fraction ``t = (p - nodes[i]) / (nodes[i + 1] - nodes[i])``.
    """
    pixels = np.arange(length, dtype=np.int64)
    cell = np.searchsorted(nodes, pixels, side="left") - 1
    start = nodes[cell]
    step = nodes[cell + 1] - start
    return cell.astype(np.int64), (pixels - start) / step


@dataclass(frozen=True, eq=False)
class CoarseMap:
    """Source positions of destination pixels, from a coarse grid.

    Parameters
    ----------
    node_x, node_y
        Destination columns and rows where the exact transform was
        evaluated (`interpolation_nodes`).
    src_x, src_y
        Source positions at the nodes, shape ``(len(node_y),
        len(node_x))``.
    shape
        Destination array shape, ``(height, width)``.
    """

    node_x: IntArray
    node_y: IntArray
    src_x: FloatArray
    src_y: FloatArray
    shape: tuple[int, int]

    @classmethod
    def build(
        cls,
        shape: tuple[int, int],
        transform: Callable[
            [FloatArray, FloatArray], tuple[FloatArray, FloatArray]
        ],
        interp_length: int,
    ) -> CoarseMap:
        """Evaluate ``transform`` on afw's node grid.

        Parameters
        ----------
        shape
            Destination array shape, ``(height, width)``.
        transform
            Maps destination array pixels ``(x, y)`` to source array
            pixels; called once, on all nodes.
        interp_length
            Node spacing in pixels (afw's ``interpLength``).

        Returns
        -------
        coarse
            The sampled transform.
        """
        node_x = interpolation_nodes(shape[1], interp_length)
        node_y = interpolation_nodes(shape[0], interp_length)
        grid_x, grid_y = np.meshgrid(
            node_x.astype(np.float64), node_y.astype(np.float64)
        )
        src_x, src_y = transform(grid_x.ravel(), grid_y.ravel())
        grid_shape = grid_x.shape
        return cls(
            node_x,
            node_y,
            np.ascontiguousarray(np.reshape(src_x, grid_shape), np.float64),
            np.ascontiguousarray(np.reshape(src_y, grid_shape), np.float64),
            (int(shape[0]), int(shape[1])),
        )

    def positions(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """Return the interpolated source position of destination pixels.

        Parameters
        ----------
        x, y
            Integer destination pixels inside the destination array.

        Returns
        -------
        src_x, src_y
            Source positions, exactly as the warp uses them.
        """
        xi = np.asarray(x, np.int64).ravel()
        yi = np.asarray(y, np.int64).ravel()
        col_cell, col_t = _cells(self.node_x, self.shape[1])
        row_cell, row_t = _cells(self.node_y, self.shape[0])
        out_x = np.empty(xi.size)
        out_y = np.empty(xi.size)
        _positions_kernel(
            self.src_x,
            self.src_y,
            col_cell[xi],
            col_t[xi],
            row_cell[yi],
            row_t[yi],
            out_x,
            out_y,
        )
        return out_x, out_y


@numba.njit(cache=True, inline="always")
def _bilinear(grid: FloatArray, j: int, i: int, ty: float, tx: float) -> float:
    """Interpolate ``grid`` inside cell ``(j, i)`` at ``(ty, tx)``."""
    top = (1.0 - tx) * grid[j, i] + tx * grid[j, i + 1]
    bottom = (1.0 - tx) * grid[j + 1, i] + tx * grid[j + 1, i + 1]
    return (1.0 - ty) * top + ty * bottom


@numba.njit(cache=True, inline="always")
def _slopes(
    grid: FloatArray, j: int, i: int, ty: float, tx: float
) -> tuple[float, float]:
    """Return the cell-unit derivatives of `_bilinear` along x and y."""
    along_x = (grid[j, i + 1] - grid[j, i]) * (1.0 - ty) + (
        grid[j + 1, i + 1] - grid[j + 1, i]
    ) * ty
    along_y = (grid[j + 1, i] - grid[j, i]) * (1.0 - tx) + (
        grid[j + 1, i + 1] - grid[j, i + 1]
    ) * tx
    return along_x, along_y


@numba.njit(cache=True)
def _positions_kernel(
    src_x: FloatArray,
    src_y: FloatArray,
    col_cell: IntArray,
    col_t: FloatArray,
    row_cell: IntArray,
    row_t: FloatArray,
    out_x: FloatArray,
    out_y: FloatArray,
) -> None:
    """Interpolate source positions for a list of pixels."""
    for k in range(out_x.size):
        j, i = row_cell[k], col_cell[k]
        out_x[k] = _bilinear(src_x, j, i, row_t[k], col_t[k])
        out_y[k] = _bilinear(src_y, j, i, row_t[k], col_t[k])


# --------------------------------------------------------------------------
# Warping
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Geometry:
    """Everything the warp kernel needs to place destination pixels."""

    col_cell: IntArray
    col_t: FloatArray
    col_step: FloatArray
    row_cell: IntArray
    row_t: FloatArray
    row_step: FloatArray

    @classmethod
    def of(cls, coarse: CoarseMap) -> _Geometry:
        """Tabulate cells, fractions and node spacings per row/column."""
        col_cell, col_t = _cells(coarse.node_x, coarse.shape[1])
        row_cell, row_t = _cells(coarse.node_y, coarse.shape[0])
        col_step = np.diff(coarse.node_x).astype(np.float64)[col_cell]
        row_step = np.diff(coarse.node_y).astype(np.float64)[row_cell]
        return cls(col_cell, col_t, col_step, row_cell, row_t, row_step)


def warp_planes(
    source: Planes, coarse: CoarseMap, *, no_data: int, grow_bits: int
) -> Planes:
    """Warp masked-image planes onto a destination grid, as afw does.

    Parameters
    ----------
    source
        Source planes. Pixels without data must already be finite (v29
        hands the warper zeros there, flagged ``NO_DATA``).
    coarse
        Destination-to-source pixel transform on a coarse grid.
    no_data
        Bit value of ``NO_DATA``, set on edge pixels.
    grow_bits
        Mask bits taken from the whole Lanczos footprint rather than the
        2x2 bilinear one (afw's ``growFullMask``, the ``EDGE`` bit).

    Returns
    -------
    warped
        Planes of ``coarse.shape``, warped with ``lanczos3``.
    """
    out = empty_planes(coarse.shape)
    geometry = _Geometry.of(coarse)
    image, variance, mask = _contiguous(source)
    # Scanning the footprint for grow bits costs as much as the image
    # itself; skip it when no source pixel carries one.
    grow = int(grow_bits) if count_flagged(mask, grow_bits) else 0
    with _PARALLEL_LOCK:
        _use_threads()
        _warp_kernel(
            image,
            variance,
            mask,
            grow,
            int(no_data),
            coarse.src_x,
            coarse.src_y,
            geometry.col_cell,
            geometry.col_t,
            geometry.col_step,
            geometry.row_cell,
            geometry.row_t,
            geometry.row_step,
            lanczos_table(LANCZOS_ORDER),
            out.image,
            out.variance,
            out.mask,
        )
    return out


@numba.njit(cache=True, parallel=True)
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
    out_image: npt.NDArray[np.float32],
    out_variance: npt.NDArray[np.float32],
    out_mask: npt.NDArray[np.int32],
) -> None:
    """Warp every destination row; rows are independent."""
    for r in numba.prange(out_image.shape[0]):
        j, ty, step_y = row_cell[r], row_t[r], row_step[r]
        for c in range(out_image.shape[1]):
            i, tx = col_cell[c], col_t[c]
            x = _bilinear(src_x, j, i, ty, tx)
            y = _bilinear(src_y, j, i, ty, tx)
            if not _inside(x, y, image.shape):
                out_image[r, c] = np.nan
                out_variance[r, c] = np.inf
                out_mask[r, c] = no_data
                continue
            area = _relative_area(
                src_x, src_y, j, i, ty, tx, col_step[c], step_y
            )
            ix, iy = math.floor(x), math.floor(y)
            cache = table.shape[0] - 1
            kx = int((x - ix) * cache + 0.5)
            ky = int((y - iy) * cache + 0.5)
            value, var = _convolve(
                image, variance, iy, ix, table[ky], table[kx]
            )
            out_image[r, c] = value * area
            out_variance[r, c] = var * area * area
            bits = _bilinear_mask(mask, iy, ix, ky, kx, cache)
            if grow_bits != 0:
                footprint = _footprint_mask(mask, iy, ix, table[ky], table[kx])
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


# --------------------------------------------------------------------------
# Stitching
# --------------------------------------------------------------------------

#: Most inputs one merge takes. The kernel gets its inputs as tuples of
#: this fixed length, so it is compiled (and cached) once; a grown
#: detector touches at most 4x4 patches of a tract at any rotation.
MAX_MERGE_INPUTS = 16


def _unused_planes() -> Planes:
    """Return tiny read-only planes that fill the unused tuple slots."""
    planes = empty_planes((1, 1))
    for plane in planes:
        plane.fill(0)
        plane.flags.writeable = False
    return planes


_UNUSED = _unused_planes()


def merge_patches(
    patches: Sequence[PlacedPlanes],
    shape: tuple[int, int],
    no_data: int,
) -> tuple[Planes, IntArray]:
    """Merge patches on one grid with weights ``variance**-0.5``.

    Parameters
    ----------
    patches
        Patch planes and their origins on the output grid; they are
        accumulated in this order. Each may extend beyond the grid.
    shape
        Output grid shape.
    no_data
        Bit value of ``NO_DATA``.

    Returns
    -------
    merged
        ``sum(w I) / sum(w)`` and ``sum(w V) / sum(w)``; the mask is the OR
        of the contributing pixels' masks. A patch pixel contributes when
        its image is finite, its variance finite and positive and it is
        not ``NO_DATA``. Where none does: image 0, variance 0, mask
        ``NO_DATA`` (what v29's zero-initialised merge holds there).
    counts
        Number of pixels each patch contributed.

    Raises
    ------
    ValueError
        If there are more than `MAX_MERGE_INPUTS` patches.
    """
    out = empty_planes(shape)
    counts = _merge(patches, out, no_data, edge=False)
    return out, counts


def merge_warped(warped: Sequence[Planes], no_data: int) -> Planes:
    """Merge warped planes of one shape with weights ``variance**-0.5``.

    The rule is `merge_patches`'s, except where no input has data: there
    the image is NaN, the variance +inf and the mask ``NO_DATA`` alone.
    The result overwrites ``warped[0]``.

    Parameters
    ----------
    warped
        Warped planes, accumulated in this order.
    no_data
        Bit value of ``NO_DATA``.

    Returns
    -------
    merged
        The merged planes (``warped[0]``'s arrays).

    Raises
    ------
    ValueError
        If ``warped`` is empty or too long, or the planes differ in shape.
    """
    if not warped:
        raise ValueError("nothing to merge")
    shapes = {p.image.shape for p in warped}
    if len(shapes) != 1:
        raise ValueError(f"warped planes differ in shape: {sorted(shapes)}")
    # Each output row is written only after every input's row has been
    # read, so merging into the first input is safe.
    placed = [PlacedPlanes(p, 0, 0) for p in warped]
    _merge(placed, warped[0], no_data, edge=True)
    return warped[0]


def _merge(
    inputs: Sequence[PlacedPlanes], out: Planes, no_data: int, *, edge: bool
) -> IntArray:
    """Merge ``inputs`` into ``out``; return each input's pixel count.

    Raises
    ------
    ValueError
        If there are more than `MAX_MERGE_INPUTS` inputs.
    """
    n = len(inputs)
    if n > MAX_MERGE_INPUTS:
        raise ValueError(
            f"cannot merge {n} images at once; at most {MAX_MERGE_INPUTS}"
        )
    planes = [_readonly(p.planes) for p in inputs]
    planes += [_UNUSED] * (MAX_MERGE_INPUTS - n)
    offsets = np.zeros((2, MAX_MERGE_INPUTS), np.int64)
    offsets[0, :n] = [p.x0 for p in inputs]
    offsets[1, :n] = [p.y0 for p in inputs]
    counts = np.zeros((out.image.shape[0], MAX_MERGE_INPUTS), np.int64)
    with _PARALLEL_LOCK:
        _use_threads()
        _merge_kernel(
            tuple(p.image for p in planes),
            tuple(p.variance for p in planes),
            tuple(p.mask for p in planes),
            offsets,
            n,
            no_data,
            edge,
            out.image,
            out.variance,
            out.mask,
            counts,
        )
    return np.asarray(counts[:, :n].sum(axis=0), np.int64)


def _contiguous(planes: Planes) -> Planes:
    """Return the planes as C-contiguous arrays (one compiled signature)."""
    return Planes(
        np.ascontiguousarray(planes.image),
        np.ascontiguousarray(planes.variance),
        np.ascontiguousarray(planes.mask),
    )


def _readonly(planes: Planes) -> Planes:
    """Return read-only C-contiguous views: one type for every input."""
    views = _contiguous(planes)
    views = Planes(
        views.image.view(), views.variance.view(), views.mask.view()
    )
    for view in views:
        view.flags.writeable = False
    return views


@numba.njit(cache=True, inline="always")
def _weight(image: float, variance: float, bits: int, no_data: int) -> float:
    """Return ``variance**-0.5``, or 0 for a pixel without usable data."""
    if (bits & no_data) != 0 or not np.isfinite(image):
        return 0.0
    if not (variance > 0.0 and np.isfinite(variance)):
        return 0.0
    return 1.0 / math.sqrt(variance)


@numba.njit(cache=True, parallel=True)
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


def count_flagged(mask: npt.NDArray[np.int32], bits: int) -> int:
    """Return how many pixels of ``mask`` have any of ``bits`` set."""
    return int(_count_flagged_kernel(mask, int(bits)))


@numba.njit(cache=True)
def _count_flagged_kernel(mask: npt.NDArray[np.int32], bits: int) -> int:
    """Count flagged pixels, row by row (works on strided views)."""
    total = 0
    for r in range(mask.shape[0]):
        for c in range(mask.shape[1]):
            if mask[r, c] & bits:
                total += 1
    return total
