"""Mask smearing by a box kernel, as afw's convolution does it.

afw ORs into each output pixel the mask of every input pixel under a
non-zero kernel pixel. Alard-Lupton kernels are non-zero over their whole
box, so each mask bit is dilated by the full ``k x k`` box. A box is
separable, and an OR over a run of ``k`` values is the OR of two
overlapping power-of-two runs, built by doubling: a few passes over bytes
(8 bits packed at a time), whatever the kernel size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: Bits handled per byte-packed pass.
_BITS_PER_PASS = 8


def grow_mask(
    mask: npt.NDArray[np.integer[Any] | np.bool_], half: int, bits: int
) -> npt.NDArray[np.int32]:
    """Dilate each of ``bits`` by a ``2 half + 1`` box; crop by ``half``.

    Bits outside ``bits`` are dropped. Up to 8 bits at a time are packed
    into bytes, OR-ed over the box by doubling windows (exact, and a box
    is separable), and unpacked through a lookup table.
    """
    values = np.asarray(mask)
    if values.dtype == np.bool_:
        values = values.view(np.uint8)
    values = values.astype(np.uint32, copy=False) & np.uint32(bits)
    present = (
        int(np.bitwise_or.reduce(values, axis=None)) if values.size else 0
    )
    carried = [bit for bit in range(32) if (present >> bit) & 1]
    size = 2 * half + 1
    out = np.zeros(
        (values.shape[0] - 2 * half, values.shape[1] - 2 * half), np.uint32
    )
    for start in range(0, len(carried), _BITS_PER_PASS):
        chunk = carried[start : start + _BITS_PER_PASS]
        packed = np.zeros(values.shape, dtype=np.uint8)
        lookup = np.zeros(256, dtype=np.uint32)
        for slot, bit in enumerate(chunk):
            on = (values & np.uint32(1 << bit)) != 0
            packed |= on.view(np.uint8) << np.uint8(slot)
            lookup[np.arange(256) & (1 << slot) != 0] |= np.uint32(1 << bit)
        grown = _window_or(_window_or(packed, size, 0), size, 1)
        out |= lookup[grown]
    return out.view(np.int32)


def _window_or(
    values: npt.NDArray[np.uint8], size: int, axis: int
) -> npt.NDArray[np.uint8]:
    """Return the OR over each run of ``size`` values along an axis.

    The output is shorter by ``size - 1``; windows of 1, 2, 4, ... are
    OR-ed pairwise, and two overlapping ones cover the ``size`` window.
    """
    moved = np.moveaxis(values, axis, 0)
    span = 1
    while span * 2 <= size:
        moved = moved[:-span] | moved[span:]
        span *= 2
    length = values.shape[axis] - size + 1
    result = moved[:length] | moved[size - span : size - span + length]
    return np.moveaxis(result, 0, axis)
