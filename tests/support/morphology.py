"""Binary dilations by boxes and afw's circular stencil, built from ORs.

A dilation by a centred window along one axis is the OR of the image
with shifted copies of itself; doubling the window at each step needs
only about log2(width) whole-image ORs, which numpy does at memory
speed. A box is one such window per axis, and afw's circular stencil
(offsets with dx^2 + dy^2 <= r^2) is a union of a few boxes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

BoolImage = npt.NDArray[np.bool_]


def dilate_box(flags: BoolImage, half: int) -> BoolImage:
    """Return ``flags`` dilated by a (2*half+1)-square box."""
    if half <= 0:
        return flags.copy()
    (rows,) = or_windows(flags, (half,), axis=1)
    (grown,) = or_windows(rows, (half,), axis=0)
    return grown


def disk_rectangles(radius: int) -> list[tuple[int, int]]:
    """Return half-sizes ``(wx, wy)`` of rectangles whose union is a disk.

    The disk is afw's circular stencil: offsets with dx^2 + dy^2 <= r^2.
    Row ``dy`` spans ``|dx| <= floor(sqrt(r^2 - dy^2))``; each distinct
    span is one rectangle as tall as the rows that reach it.
    """
    spans = [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]
    rectangles = []
    for wx in sorted(set(spans), reverse=True):
        wy = max(dy for dy, span in enumerate(spans) if span >= wx)
        rectangles.append((wx, wy))
    return rectangles


def dilate_disk(flags: BoolImage, radius: int) -> BoolImage:
    """Return ``flags`` dilated by afw's circular stencil of ``radius``."""
    if radius <= 0:
        return flags.copy()
    rectangles = disk_rectangles(radius)
    rows = or_windows(flags, tuple(wx for wx, _ in rectangles), axis=1)
    out = np.zeros(flags.shape, dtype=np.bool_)
    for grown_x, (_, wy) in zip(rows, rectangles, strict=True):
        (grown,) = or_windows(grown_x, (wy,), axis=0)
        out |= grown
    return out


def or_windows(
    flags: BoolImage, halves: tuple[int, ...], axis: int
) -> list[BoolImage]:
    """Return ``flags`` OR-ed over centred windows along one axis.

    Result ``k`` holds, at each pixel, the OR of the ``2*halves[k]+1``
    pixels centred on it along ``axis`` (off-image pixels are False).
    Windows are built by doubling (OR of a window with itself shifted),
    so each result costs a few whole-image ORs, shared between results.

    Parameters
    ----------
    flags
        2-D boolean image.
    halves
        Window half-widths, each >= 0.
    axis
        0 (along columns) or 1 (along rows).

    Returns
    -------
    windows
        One boolean image per half-width, in order.
    """
    widest = max(halves)
    length = flags.shape[axis]
    padded_shape = list(flags.shape)
    padded_shape[axis] += 2 * widest
    padded = np.zeros(padded_shape, dtype=np.bool_)
    padded[_along(axis, widest, widest + length)] = flags
    spans = {1: padded}
    span = 1
    while 2 * span <= 2 * widest + 1:
        previous = spans[span]
        doubled = previous.copy()
        doubled[_along(axis, 0, -span)] |= previous[_along(axis, span, None)]
        span *= 2
        spans[span] = doubled
    results = []
    for half in halves:
        size = 2 * half + 1
        power = 1 << (size.bit_length() - 1)
        base = spans[power]
        start = widest - half
        window = base[_along(axis, start, start + length)].copy()
        if size > power:
            extra = size - power
            window |= base[_along(axis, start + extra, start + extra + length)]
        results.append(window)
    return results


def _along(
    axis: int, start: int | None, stop: int | None
) -> tuple[slice, ...]:
    """Return an index selecting ``start:stop`` along ``axis`` of 2-D."""
    chosen = slice(start, stop)
    return (chosen, slice(None)) if axis == 0 else (slice(None), chosen)
