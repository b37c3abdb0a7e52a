"""Seed numba's cache from the one compiled into the image.

The image compiles every numba kernel once, at build time, into
``RECREATE_NUMBA_CACHE_SEED`` (``/opt/numba-cache``). numba only uses a
cache directory it can write to, and the chart mounts the root
filesystem read-only with an empty ``/tmp`` per pod, so the cache is
copied into ``NUMBA_CACHE_DIR`` (``/tmp/numba``) when a ``recreate``
process starts: milliseconds for a few MB, where compiling took 25 s of
every new pod's first request. Files already there are kept; each file
is copied under a temporary name and renamed, so processes starting
together never read a half-written one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

SEED_ENV = "RECREATE_NUMBA_CACHE_SEED"
CACHE_ENV = "NUMBA_CACHE_DIR"


def seed_numba_cache(environ: Mapping[str, str] = os.environ) -> int:
    """Copy the seed cache into numba's cache directory; return the count.

    Parameters
    ----------
    environ
        The environment: ``RECREATE_NUMBA_CACHE_SEED`` names the seed,
        ``NUMBA_CACHE_DIR`` the target. Without both, nothing is done.

    Returns
    -------
    copied
        Files copied (0 when unset, already seeded, or not writable: numba
        then compiles as it would have).
    """
    seed, target = environ.get(SEED_ENV), environ.get(CACHE_ENV)
    if not seed or not target or not Path(seed).is_dir():
        return 0
    copied = 0
    try:
        for source in sorted(Path(seed).rglob("*")):
            if source.is_file():
                copied += _copy_new(
                    source, Path(target) / source.relative_to(seed)
                )
    except OSError:
        return copied
    return copied


def _copy_new(source: Path, destination: Path) -> int:
    """Copy one file unless it exists; return 1 if copied."""
    if destination.exists():
        return 0
    destination.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.NamedTemporaryFile(
            dir=destination.parent, prefix=".seed-", delete=False
        ) as scratch,
        source.open("rb") as stream,
    ):
        shutil.copyfileobj(stream, scratch)
    Path(scratch.name).replace(destination)
    return 1
