"""How the pipeline repairs defects: interpolation from usable pixels.

A pixel is replaced by a linear interpolation between the nearest
usable pixels on either side along its row (and, for cosmic rays, also
along its column, averaging the two). The variance is interpolated
with the same weights, so it stays at the local level. Used by
`recreate.simulate.defects`; the arrays are modified in place.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
Image = npt.NDArray[np.float32]


def usable_pixels(
    mask: npt.NDArray[np.int32], unusable_bits: int
) -> npt.NDArray[np.bool_]:
    """Flag pixels that may serve as interpolation sources."""
    return np.asarray((mask & unusable_bits) == 0)


def interpolate_both_ways(
    image: Image,
    variance: Image,
    usable: npt.NDArray[np.bool_],
    ys: IntArray,
    xs: IntArray,
) -> None:
    """Replace pixels by the mean of row and column interpolations.

    Cosmic rays are short in both directions, so using both keeps the
    repair faithful across tracks of any orientation.
    """
    along_rows = _row_estimates(image, variance, usable, ys, xs)
    along_columns = _row_estimates(image.T, variance.T, usable.T, xs, ys)
    values = np.stack([along_rows[0], along_columns[0]])
    variances = np.stack([along_rows[1], along_columns[1]])
    count = np.sum(np.isfinite(values), axis=0)
    # A pixel with no usable neighbour either way keeps its value.
    ok = count > 0
    image[ys[ok], xs[ok]] = np.nanmean(values[:, ok], axis=0)
    variance[ys[ok], xs[ok]] = np.nanmean(variances[:, ok], axis=0)


def interpolate_along_rows(
    image: Image,
    variance: Image,
    usable: npt.NDArray[np.bool_],
    ys: IntArray,
    xs: IntArray,
) -> None:
    """Replace pixels by linear interpolation along their rows."""
    values, variances = _row_estimates(image, variance, usable, ys, xs)
    ok = np.isfinite(values)
    image[ys[ok], xs[ok]] = values[ok]
    variance[ys[ok], xs[ok]] = variances[ok]


def _row_estimates(
    image: Image,
    variance: Image,
    usable: npt.NDArray[np.bool_],
    ys: IntArray,
    xs: IntArray,
) -> tuple[FloatArray, FloatArray]:
    """Interpolate image and variance at ``(ys, xs)`` along each row.

    The estimate is linear between the nearest usable pixels left and
    right; with only one side usable it is that pixel's value; with none
    it is NaN. Works on transposed views too (then along columns).
    """
    values = np.full(len(ys), np.nan)
    variances = np.full(len(ys), np.nan)
    if len(ys) == 0:
        return values, variances
    order = np.argsort(ys, kind="stable")
    rows, starts = np.unique(ys[order], return_index=True)
    bounds = [*starts[1:], len(order)]
    for row, start, stop in zip(rows, starts, bounds, strict=True):
        members = order[start:stop]
        good = np.flatnonzero(usable[row])
        if len(good) == 0:
            continue
        left, right, weight = _neighbours(good, xs[members])
        for plane, out in ((image, values), (variance, variances)):
            line = plane[row].astype(np.float64)
            out[members] = (1 - weight) * line[left] + weight * line[right]
    return values, variances


def _neighbours(
    good: IntArray, targets: IntArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """Return the usable neighbours left and right and the weight of right.

    Where one side has no usable pixel, both neighbours are the other
    side's nearest, so the estimate is that pixel's value.
    """
    position = np.searchsorted(good, targets)
    left = good[np.clip(position - 1, 0, len(good) - 1)]
    right = good[np.clip(position, 0, len(good) - 1)]
    left = np.where(position == 0, right, left)
    right = np.where(position == len(good), left, right)
    span = (right - left).astype(np.float64)
    weight = np.divide(
        targets - left, span, out=np.zeros(len(targets)), where=span > 0
    )
    return left, right, weight
