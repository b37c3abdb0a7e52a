"""How many threads the pipeline's parallel parts may use.

Only parts whose results do not depend on the thread count run in
parallel: FFTs (scipy gives each 1-D transform to one thread) and the
warp (numba ``prange`` over independent output rows), and independent
steps run `beside` each other (each serial in itself). So the count is a
speed setting, never part of the recipe: ``RECREATE_THREADS`` (default:
up to 2, the cores of the machines measured here) sets it, and tests run
the same recreation with 1 and 2 threads and compare hashes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

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


@contextmanager
def beside[T](call: Callable[[], T]) -> Iterator[Callable[[], T]]:
    """Run ``call`` in a second thread while the ``with`` block runs.

    Yields a function that returns the call's result (or raises its
    error), waiting for it if need be. With one thread (`thread_count`)
    the call is made when its result is first asked for, which is the
    serial order; a block that raises first never makes it. Leaving the
    block waits for the call either way, so no work outlives the block.
    Only independent work goes beside: the values never depend on
    whether it ran alongside.

    Parameters
    ----------
    call
        A function of no argument (bind its arguments with a lambda or
        `functools.partial`).

    Yields
    ------
    result
        Returns the call's value.
    """
    if thread_count() < 2:
        made: list[T] = []

        def made_now() -> T:
            if not made:
                made.append(call())
            return made[0]

        yield made_now
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(call)
        yield future.result
