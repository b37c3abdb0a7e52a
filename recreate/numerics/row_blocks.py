"""Spread image kernels whose rows are independent over threads.

`run_row_blocks` runs a callable over blocks of rows on `thread_count`
threads; numba kernels compiled with ``nogil`` run truly in parallel.
Each block writes only its own rows, so no result depends on the
thread count.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from recreate.numerics.threads import thread_count

#: Fewest image rows worth a thread of their own.
_MIN_BLOCK_ROWS = 64


def run_row_blocks(
    block: Callable[[tuple[int, int]], None],
    height: int,
    min_rows: int = _MIN_BLOCK_ROWS,
) -> None:
    """Call ``block((top, bottom))`` over row blocks covering ``height``.

    The blocks run on `thread_count` threads (numba kernels compiled
    with ``nogil`` run truly in parallel). Each block must write only
    its own rows, so that the result does not depend on the thread
    count or on the order the blocks run in.

    Parameters
    ----------
    block
        Called once per block with its rows ``(top, bottom)``.
    height
        Rows to cover.
    min_rows
        Fewest rows worth a thread of their own.
    """
    workers = min(thread_count(), max(1, height // min_rows))
    edges = np.linspace(0, height, 4 * workers + 1).astype(int)
    blocks = [
        (int(top), int(bottom))
        for top, bottom in itertools.pairwise(edges)
        if bottom > top
    ]
    if workers <= 1:
        for rows in blocks:
            block(rows)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(block, blocks))
