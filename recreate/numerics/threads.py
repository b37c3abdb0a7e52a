"""How many threads the pipeline's parallel parts may use.

Only parts whose results do not depend on the thread count run in
parallel: FFTs (scipy gives each 1-D transform to one thread) and the
warp (numba ``prange`` over independent output rows). So the count is a
speed setting, never part of the recipe: ``RECREATE_THREADS`` (default:
up to 2, the cores of the machines measured here) sets it, and tests run
the same recreation with 1 and 2 threads and compare hashes.
"""

from __future__ import annotations

import os

ENV_VAR = "RECREATE_THREADS"
DEFAULT_MAX_THREADS = 2


def thread_count() -> int:
    """Return the thread count from ``RECREATE_THREADS`` or the default.

    Raises
    ------
    ValueError
        If ``RECREATE_THREADS`` is set to something other than a positive
        integer.
    """
    text = os.environ.get(ENV_VAR)
    if text is None:
        return max(1, min(DEFAULT_MAX_THREADS, os.cpu_count() or 1))
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{ENV_VAR}={text!r} is not a positive integer")
    return count
