"""Keep freed memory in the process: glibc's allocator tuned for big planes.

A recreation allocates and frees a few dozen full-detector planes of
65-140 MB each. glibc serves every block over 32 MB with a fresh
``mmap`` and returns it with ``munmap`` when it is freed, so each new
plane is page-faulted in afresh; in a virtual machine that hands freed
pages back to its host, those faults cost up to a third of a second per
plane. Measured with ``make bench`` on the 2-core development machine: a
warm recreation takes 3.0 s with the settings here and 4.0-4.3 s
without, for a peak RSS of 2.7 GB instead of 2.55 GB.

The settings: one malloc arena for all threads (big planes made in a
worker thread come from the same heap), no ``mmap`` for large blocks,
and the heap never trimmed below 2 GB of free top. A process that
recreates detectors one after another (a Dask worker, the ``recreate``
command) reuses its heap instead of asking the kernel again; so does the
API process, which assembles and sends bodies of ~200 MB (a cache hit
takes 0.44 s in ``make bench``; single hits without the settings took
0.8-1.7 s).

On C libraries without ``mallopt`` (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's ``mallopt`` parameters (``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

#: Free memory at the top of the heap that glibc may keep untrimmed.
_TRIM_THRESHOLD = 2**31 - 1

#: The same settings as environment variables, for processes started
#: from here (glibc reads them when the process starts).
ALLOCATOR_ENVIRON: dict[str, str] = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(_TRIM_THRESHOLD),
}


def retain_freed_memory() -> bool:
    """Tune glibc's allocator of this process as the module describes.

    Call it early, before threads allocate: arenas that threads already
    hold stay theirs.

    Returns
    -------
    applied
        Whether the C library took all three settings (False where it
        has no ``mallopt``).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = (
        (_M_ARENA_MAX, 1),
        (_M_MMAP_MAX, 0),
        (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
    )
    return all(mallopt(param, value) == 1 for param, value in settings)
