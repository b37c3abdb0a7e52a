"""A kernel's 2-D real FFT that gives the same bits on any thread count.

scipy's FFT splits a batch of 1-D transforms over its ``workers`` and
vectorises each thread's share; how the rows fall into vector groups then
depends on the thread count, and single-precision results can differ in
the last bit (measured here: a whole difference image's hash changed
between 1 and 2 workers). `centred_rfft2` cuts the array into blocks of
a fixed size, transforms each block with one worker, and spreads the
blocks over threads: the grouping, hence every bit, is fixed. (The
render's tiles call scipy with one worker on arrays of fixed shapes,
for the same reason.)
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

#: Rows (or columns) per block: large enough to vectorise well, small
#: enough to share work between two cores.
BLOCK = 256


def centred_rfft2(
    kernel: npt.NDArray[np.floating[Any]],
    shape: tuple[int, int],
    workers: int = 1,
) -> npt.NDArray[np.complexfloating[Any, Any]]:
    """Return `rfft2` of a small kernel zero-padded to ``shape``, centred.

    The kernel's centre pixel goes to ``(0, 0)`` (the rest wraps
    around), so filtering with the transform shifts nothing. The zero
    rows of the padded array have zero transforms: only the kernel's own
    rows are transformed along x, and the column transforms start from
    those, which spares a full-grid float64 transform and two full-grid
    copies. A float32 kernel gives a complex64 transform. Bit-identical
    for any ``workers``.

    Parameters
    ----------
    kernel
        2-D kernel with odd sides, no larger than ``shape``.
    shape
        The FFT grid, ``(rows, columns)``.
    workers
        Threads to use; the result does not depend on it.

    Raises
    ------
    ValueError
        If the kernel is not 2-D with odd sides that fit in ``shape``.
    """
    dims = np.shape(kernel)
    if (
        len(dims) != 2
        or dims[0] % 2 == 0
        or dims[1] % 2 == 0
        or dims[0] > shape[0]
        or dims[1] > shape[1]
    ):
        raise ValueError(
            f"kernel of shape {dims} must be 2-D with odd sides that fit "
            f"in {shape}"
        )
    ky, kx = dims
    rows = np.zeros((ky, shape[1]), dtype=kernel.dtype)
    rows[:, (np.arange(kx) - kx // 2) % shape[1]] = kernel
    row_transforms = scipy.fft.rfft(rows, axis=1, workers=1)
    padded = np.zeros(
        (shape[0], row_transforms.shape[1]), row_transforms.dtype
    )
    padded[(np.arange(ky) - ky // 2) % shape[0]] = row_transforms
    return _by_blocks(
        padded.shape[1],
        lambda s: scipy.fft.fft(padded[:, s], axis=0, workers=1),
        workers,
        axis=1,
    )


def _by_blocks(
    length: int,
    transform: Callable[[slice], npt.NDArray[Any]],
    workers: int,
    *,
    axis: int,
    size: int | None = None,
) -> npt.NDArray[Any]:
    """Apply ``transform`` to fixed blocks along ``axis`` into one array.

    Each block's result is written straight into its place in the
    output (no join of the parts: a full-detector pass would copy
    70-140 MB more). With ``size`` larger than ``length`` the output is
    that long along ``axis`` and zero beyond ``length``.
    """
    blocks = [
        slice(i, min(i + BLOCK, length)) for i in range(0, length, BLOCK)
    ]
    first = transform(blocks[0])
    shape = list(first.shape)
    shape[axis] = length if size is None else max(size, length)
    out = np.empty(shape, dtype=first.dtype)
    if shape[axis] > length:
        tail = (
            (slice(length, None),)
            if axis == 0
            else (slice(None), slice(length, None))
        )
        out[tail] = 0

    def place(block: slice, part: npt.NDArray[Any]) -> None:
        if axis == 0:
            out[block] = part
        else:
            out[:, block] = part

    def run(block: slice) -> None:
        place(block, transform(block))

    place(blocks[0], first)
    if workers <= 1:
        for block in blocks[1:]:
            run(block)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, blocks[1:]))
    return out
