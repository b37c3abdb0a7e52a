"""Lanczos kernel weights and the coarse-grid transform afw warps with.

Used by `recreate.pipeline.template.warp`: kernel weights come from a table of
``KERNEL_CACHE_SIZE + 1`` offsets, as afw's kernel cache does, and the
source position of every destination pixel is interpolated bilinearly
from the WCS evaluated on a coarse grid (`CoarseMap`), as afw's
``interpLength`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: afw's ``WarpingControl.cacheSize`` in GetTemplateConfig: kernel weights
#: are tabulated at this many fractional offsets.
KERNEL_CACHE_SIZE = 100_000

#: The Lanczos order of ``lanczos3``, v29's warping kernel. The warp loops
#: are compiled for its tap count, a constant, which makes them unroll.
LANCZOS_ORDER = 3


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
