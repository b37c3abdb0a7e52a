"""The PSF-smoothed image that detection thresholds (afw's FootprintSet).

Steps 1-2 of `recreate.pipeline.sources.footprints`: `_usable` finds the pixels
that may enter the smoothing; `smoothing_kernel` is afw's truncated
Gaussian; `_smooth` correlates the image and variance with it (and its
square) along each axis, exactly as ``scipy.ndimage.correlate1d`` does;
`_block` finds the pixels whose kernel box reaches an unusable pixel or
the border (a box dilation) and zeroes the smoothed image there.

The pixel loops are numba kernels run in blocks of rows on
`thread_count` threads; each block writes only its own rows, so nothing
depends on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from recreate.numerics.arrays import native_float_plane, native_mask
from recreate.numerics.row_blocks import run_row_blocks

BoolImage = npt.NDArray[np.bool_]
FloatImage = npt.NDArray[np.float32]

#: meas_algorithms SourceDetectionConfig default: the smoothing kernel
#: spans this many PSF sigmas.
N_SIGMA_FOR_KERNEL = 7.0


def smoothing_kernel(sigma: float) -> npt.NDArray[np.float64]:
    """Return afw's 1-D detection kernel: a unit-sum truncated Gaussian.

    The width is ``(int(7 sigma + 0.5) // 2) * 2 + 1``
    (``calculateKernelSize``), always odd.
    """
    width = (int(sigma * N_SIGMA_FOR_KERNEL + 0.5) // 2) * 2 + 1
    offsets = np.arange(width, dtype=np.float64) - width // 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def _usable(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    excluded: int,
) -> BoolImage:
    """Return finite pixels with a valid variance and no excluded plane."""
    planes = (
        native_float_plane(image),
        native_float_plane(variance),
        native_mask(mask),
    )
    usable = np.empty(np.shape(image), dtype=np.bool_)
    run_row_blocks(
        lambda rows: _usable_rows(*planes, excluded, *rows, usable),
        usable.shape[0],
    )
    return usable


@numba.njit(cache=True, nogil=True)
def _usable_rows(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    excluded: int,
    top: int,
    bottom: int,
    usable: BoolImage,
) -> None:
    """Write rows ``top:bottom`` of `_usable`.

    Usable: a finite pixel with a finite variance >= 0 and no excluded
    plane.
    """
    width = image.shape[1]
    for r in range(top, bottom):
        for c in range(width):
            var = variance[r, c]
            usable[r, c] = (
                math.isfinite(image[r, c])
                and math.isfinite(var)
                and var >= 0
                and (mask[r, c] & excluded) == 0
            )


def _smooth(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    usable: BoolImage,
    kernel: npt.NDArray[np.float64],
) -> tuple[FloatImage, FloatImage]:
    """Return the smoothed image and the variance smoothed with kernel^2.

    Unusable pixels enter as 0; every pixel whose kernel box reaches one
    is blocked afterwards, so the value put there never matters. Each
    plane is taken as float32, correlated along columns then rows with
    zeros beyond the edges, rounding to float32 after each pass: exactly
    ``scipy.ndimage.correlate1d`` (``mode="constant"``) twice, with
    scipy's summation order for a symmetric kernel. Rows are independent,
    so blocks of them run on `thread_count` threads without changing a
    bit.
    """
    if len(kernel) % 2 == 0 or not np.array_equal(kernel, kernel[::-1]):
        raise ValueError("the smoothing kernel must be odd and symmetric")
    height, width = usable.shape
    smoothed = np.empty((height, width), dtype=np.float32)
    smoothed_var = np.empty((height, width), dtype=np.float32)
    planes = (
        native_float_plane(image),
        native_float_plane(variance),
        np.ascontiguousarray(usable),
    )
    weights = (kernel.astype(np.float64), (kernel**2).astype(np.float64))

    def block(rows: tuple[int, int]) -> None:
        _smooth_rows(
            *planes, *weights, rows[0], rows[1], smoothed, smoothed_var
        )

    run_row_blocks(block, height)
    return smoothed, smoothed_var


@numba.njit(cache=True, nogil=True)
def _smooth_rows(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    usable: BoolImage,
    weights: npt.NDArray[np.float64],
    weights_var: npt.NDArray[np.float64],
    top: int,
    bottom: int,
    smoothed: FloatImage,
    smoothed_var: FloatImage,
) -> None:
    """Smooth rows ``top:bottom`` of both planes (see `_smooth`)."""
    width = usable.shape[1]
    column = np.empty(width)
    padded = np.zeros(width + len(weights) - 1)
    for r in range(top, bottom):
        _smooth_row(image, usable, weights, r, column, padded, smoothed[r])
        _smooth_row(
            variance, usable, weights_var, r, column, padded, smoothed_var[r]
        )


@numba.njit(cache=True, nogil=True)
def _smooth_row(
    plane: npt.NDArray[np.floating],
    usable: BoolImage,
    weights: npt.NDArray[np.float64],
    r: int,
    column: npt.NDArray[np.float64],
    padded: npt.NDArray[np.float64],
    out: FloatImage,
) -> None:
    """Write row ``r`` of ``plane`` smoothed along columns, then the row.

    ``column`` (the row's width) and ``padded`` (the width plus the
    kernel less one, zero at both ends) are work space. Each pass starts
    from the centre tap and adds the symmetric pairs from the outermost
    in, in float64, as scipy does; off-image pixels are 0.
    """
    height, width = usable.shape
    half = len(weights) // 2
    for c in range(width):
        column[c] = _masked(plane, usable, r, c) * weights[half]
    for j in range(half, 0, -1):
        tap = weights[half - j]
        has_above, has_below = r - j >= 0, r + j < height
        for c in range(width):
            above = _masked(plane, usable, r - j, c) if has_above else 0.0
            below = _masked(plane, usable, r + j, c) if has_below else 0.0
            column[c] += (above + below) * tap
    for c in range(width):
        padded[half + c] = np.float32(column[c])
    for c in range(width):
        column[c] = padded[half + c] * weights[half]
    for j in range(half, 0, -1):
        tap = weights[half - j]
        left = padded[half - j : half - j + width]
        right = padded[half + j : half + j + width]
        for c in range(width):
            column[c] += (left[c] + right[c]) * tap
    for c in range(width):
        out[c] = np.float32(column[c])


@numba.njit(cache=True, nogil=True, inline="always")
def _masked(
    plane: npt.NDArray[np.floating], usable: BoolImage, r: int, c: int
) -> float:
    """Return the pixel as float32 (then float64), 0 where not usable."""
    return np.float64(np.float32(plane[r, c])) if usable[r, c] else 0.0


#: Which edges of an array are the image's own: (top, bottom, left,
#: right). A window of a larger image has interior edges.
Edges = tuple[bool, bool, bool, bool]

#: Every edge is the image's: the array is the whole image.
ALL_EDGES: Edges = (True, True, True, True)


def _block(
    usable: BoolImage,
    half: int,
    border: int,
    smoothed: FloatImage,
    edges: Edges = ALL_EDGES,
) -> BoolImage:
    """Return the pixels no detection may reach, zeroing them in place.

    Blocked are those whose ``(2 half + 1)``-square box holds an unusable
    pixel (afw ORs the mask over the kernel box) and the outer
    ``border`` pixels along the image's own ``edges`` (the outer pixel
    along the others, whose values a window gets wrong anyway, so that
    no footprint pixel has a neighbour off the array); ``smoothed`` is
    set to 0 there.
    """
    height, width = usable.shape
    blocked = np.empty((height, width), dtype=np.bool_)
    usable = np.ascontiguousarray(usable)
    borders = np.array([border if e else 1 for e in edges], dtype=np.int64)

    def block(rows: tuple[int, int]) -> None:
        _box_any(usable, half, borders, rows[0], rows[1], blocked, smoothed)

    run_row_blocks(block, height)
    return blocked


@numba.njit(cache=True, nogil=True)
def _box_any(
    usable: BoolImage,
    half: int,
    borders: npt.NDArray[np.int64],
    top: int,
    bottom: int,
    out: BoolImage,
    smoothed: FloatImage,
) -> None:
    """Set rows ``top:bottom`` of ``out`` where a box or border is hit.

    ``out`` is whether the pixel's ``(2 half + 1)``-square box holds a
    pixel not ``usable`` (off-image pixels do not count) or it lies within
    ``borders`` (top, bottom, left, right) of the edge; ``smoothed`` is
    zeroed there. Per-column counts over the window of rows are updated
    row by row, then each row is windowed by prefix sums: exact integer
    counts.
    """
    height, width = usable.shape
    counts = np.zeros(width, dtype=np.int64)
    prefix = np.zeros(width + 1, dtype=np.int64)
    for y in range(max(top - half, 0), min(top + half, height)):
        for c in range(width):
            counts[c] += not usable[y, c]
    for r in range(top, bottom):
        enter, leave = r + half, r - half - 1
        if enter < height:
            for c in range(width):
                counts[c] += not usable[enter, c]
        if leave >= 0:
            for c in range(width):
                counts[c] -= not usable[leave, c]
        for c in range(width):
            prefix[c + 1] = prefix[c] + (counts[c] > 0)
        edge_row = r < borders[0] or r >= height - borders[1]
        _block_row(
            prefix, half, borders[2], borders[3], edge_row, out[r], smoothed[r]
        )


@numba.njit(cache=True, nogil=True)
def _block_row(
    prefix: npt.NDArray[np.int64],
    half: int,
    left: int,
    right: int,
    edge_row: bool,
    out: BoolImage,
    smoothed: FloatImage,
) -> None:
    """Set one row of `_box_any` from its column window counts' prefix."""
    width = len(out)
    for c in range(width):
        low, high = max(c - half, 0), min(c + half + 1, width)
        hit = (
            edge_row
            or c < left
            or c >= width - right
            or prefix[high] > prefix[low]
        )
        out[c] = hit
        if hit:
            smoothed[c] = 0.0
