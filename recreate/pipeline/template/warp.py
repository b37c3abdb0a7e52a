"""Lanczos warping and variance-weighted stitching, as afw does them.

This module is the numerical core of `recreate.pipeline.template.build`: it
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
``KERNEL_CACHE_SIZE + 1`` offsets, as afw's kernel cache does; both are
in `recreate.pipeline.template.lanczos`.

The loops (`recreate.pipeline.template.warp_rows`) are compiled with Numba.
Every output row is computed on its own, in a fixed order, with no
floating-point reassociation, so results are bit-identical run to run and
for any number of threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from recreate.numerics.box import PixelBox
from recreate.pipeline.template.lanczos import (
    LANCZOS_ORDER,
    CoarseMap,
    _cells,
    lanczos_table,
)
from recreate.pipeline.template.warp_rows import (
    _PARALLEL_LOCK,
    _count_flagged_kernel,
    _merge_kernel,
    _use_threads,
    _warp_kernel,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
    source: Planes,
    coarse: CoarseMap,
    *,
    no_data: int,
    grow_bits: int,
    window: PixelBox | None = None,
    source_frame: PixelBox | None = None,
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
    window
        The destination pixels to warp (array pixels of ``coarse``'s
        grid); the whole grid by default. Each pixel gets the value the
        whole grid has there.
    source_frame
        Where ``source`` lies in the whole source, and that whole
        source's size (``x0, y0`` of ``source``'s first pixel; ``width,
        height`` of the whole source, whose edges decide which pixels
        are edge pixels); ``source`` itself by default. ``source`` must
        hold every pixel the window's footprints reach
        (`source_window`).

    Returns
    -------
    warped
        Planes of the window's shape, warped with ``lanczos3``.
    """
    height, width = coarse.shape
    if window is None:
        window = PixelBox(0, 0, width, height)
    if source_frame is None:
        rows, cols = source.image.shape
        source_frame = PixelBox(0, 0, cols, rows)
    out = empty_planes((window.height, window.width))
    geometry = _Geometry.of(coarse)
    image, variance, mask = _contiguous(source)
    frame = np.array(
        [
            window.y0,
            window.x0,
            source_frame.x0,
            source_frame.y0,
            source_frame.height,
            source_frame.width,
        ],
        dtype=np.int64,
    )
    # Scanning the footprint for grow bits costs as much as the image
    # itself; skip it when no source pixel carries one (no footprint
    # holds one, so the bits are the same).
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
            frame,
            out.image,
            out.variance,
            out.mask,
        )
    return out


def source_window(coarse: CoarseMap, window: PixelBox) -> PixelBox:
    """Return the source pixels the warp of ``window`` can read.

    The interpolated source position is bilinear in each cell of the
    coarse grid, so over the window it is extreme at the window's
    corners or where a node line crosses its edges or another node
    line: those points are mapped, and the box of their Lanczos
    footprints (taps ``floor(x) - 2 ... floor(x) + 3``), grown by a
    pixel for rounding, returned in the source's array pixels. It may
    reach beyond the source.
    """
    xs = _crossings(coarse.node_x, window.x0, window.x0 + window.width)
    ys = _crossings(coarse.node_y, window.y0, window.y0 + window.height)
    grid_x, grid_y = np.meshgrid(xs, ys)
    src_x, src_y = coarse.positions(grid_x.ravel(), grid_y.ravel())
    finite = np.isfinite(src_x) & np.isfinite(src_y)
    if not finite.any():
        return PixelBox(0, 0, 0, 0)
    low, high = LANCZOS_ORDER, LANCZOS_ORDER + 2
    x0 = int(np.floor(src_x[finite].min())) - low
    y0 = int(np.floor(src_y[finite].min())) - low
    x1 = int(np.floor(src_x[finite].max())) + high
    y1 = int(np.floor(src_y[finite].max())) + high
    return PixelBox(x0, y0, x1 - x0, y1 - y0)


def _crossings(nodes: IntArray, first: int, stop: int) -> IntArray:
    """Return ``first``, ``stop - 1`` and the nodes strictly between."""
    inside = nodes[(nodes > first) & (nodes < stop - 1)]
    return np.unique(np.concatenate([[first, stop - 1], inside]))


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


def count_flagged(mask: npt.NDArray[np.int32], bits: int) -> int:
    """Return how many pixels of ``mask`` have any of ``bits`` set."""
    return int(_count_flagged_kernel(mask, int(bits)))
