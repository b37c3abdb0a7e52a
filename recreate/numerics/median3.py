"""scipy's 3x3 median filter (``mode="reflect"``), compiled.

meas_algorithms' super-pixel filter is a 3x3 median of the background
bins (`recreate.pipeline.match.background.filter_super_pixels`), which
this project takes from ``scipy.ndimage.median_filter``. Its generic
rank filter costs about 100 ns a bin; the compiled filter here costs a
few, and rows of bins run on threads.

A median is one of the window's own values, so any exact selection
returns scipy's value, with two exceptions where equal values differ in
their bits: 0.0 and -0.0 compare equal, and NaN compares with nothing.
Which one scipy returns then depends on its selection algorithm, so a
grid holding a zero or a NaN goes to scipy itself: the result is
scipy's, bit for bit, always.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt
from scipy.ndimage import median_filter

from recreate.numerics.row_blocks import run_row_blocks

FloatArray = npt.NDArray[np.float64]

#: Fewest rows of bins worth a thread of their own.
_MIN_BLOCK_ROWS = 16


def median_filter_3x3(grid: npt.ArrayLike) -> FloatArray:
    """Return ``median_filter(grid, size=3, mode="reflect")`` as float64.

    Parameters
    ----------
    grid
        A 2-D array.

    Returns
    -------
    filtered
        A new float64 array of the grid's shape.
    """
    values = np.ascontiguousarray(grid, dtype=np.float64)
    if values.ndim != 2 or values.size == 0 or not _all_nonzero(values):
        return np.asarray(median_filter(values, size=3, mode="reflect"))
    out = np.empty_like(values)
    run_row_blocks(
        lambda rows: _median_rows(values, rows[0], rows[1], out),
        values.shape[0],
        _MIN_BLOCK_ROWS,
    )
    return out


@numba.njit(cache=True, nogil=True)
def _all_nonzero(values: FloatArray) -> bool:
    """Say whether no value is 0.0, -0.0 or NaN (module notes)."""
    for value in values.flat:
        if value == 0.0 or math.isnan(value):
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _median_rows(
    values: FloatArray, top: int, bottom: int, out: FloatArray
) -> None:
    """Write the 3x3 medians of rows ``top:bottom``; edges reflect.

    scipy's "reflect" repeats the edge value: the neighbour beyond an
    edge is the edge pixel itself. Each column's three values are
    sorted once (low, middle, high); the median of the nine is the
    median of the largest low, the middle middle and the smallest high
    of the three columns, an identity of medians of nine.
    """
    height, width = values.shape
    low, middle, high = np.empty(width), np.empty(width), np.empty(width)
    for r in range(top, bottom):
        above, below = max(r - 1, 0), min(r + 1, height - 1)
        for c in range(width):
            low[c], middle[c], high[c] = _sorted3(
                values[above, c], values[r, c], values[below, c]
            )
        for c in range(width):
            left, right = max(c - 1, 0), min(c + 1, width - 1)
            largest_low = max(low[left], low[c], low[right])
            smallest_high = min(high[left], high[c], high[right])
            middle_middle = _sorted3(middle[left], middle[c], middle[right])[1]
            out[r, c] = _sorted3(largest_low, middle_middle, smallest_high)[1]


@numba.njit(cache=True, nogil=True, inline="always")
def _sorted3(a: float, b: float, c: float) -> tuple[float, float, float]:
    """Return three values in ascending order."""
    if a > b:
        a, b = b, a
    if b > c:
        b, c = c, b
    if a > b:
        a, b = b, a
    return a, b, c
