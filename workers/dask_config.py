"""The Dask configuration of every cluster this project starts.

The broker's LocalCluster, ``recreate worker`` processes and the
benchmarks' clusters all start with `worker_dask_config`.
"""

from __future__ import annotations

import os

#: Dask's own switch of the workers' profiler: set, it is obeyed.
WORKER_PROFILER_ENV = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"


def worker_dask_config() -> dict[str, object]:
    """Return the Dask configuration of every cluster this project starts.

    * One queued task per worker thread: a campaign task already sent to
      a worker cannot stand in front of a user's request.
    * The worker processes start with `recreate.memory.ALLOCATOR_ENVIRON`
      (one malloc arena, no mmap for big planes, a heap kept rather than
      trimmed) instead of Dask's MALLOC_TRIM_THRESHOLD_ of 64 kB, which
      has every large plane of a recreation mapped and page-faulted
      afresh (see the benchmark figures in the README).
    * The workers' statistical profiler is off, unless
      ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED`` says otherwise: it
      walks every thread's stack 100 times a second for the dashboard's
      profile page (about 1.8% of a core per idle worker measured here,
      and the interpreter lock while it walks), where a recreation's
      time is in compiled code it cannot see.
    """
    import dask

    from recreate.memory import ALLOCATOR_ENVIRON

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", {})
    config: dict[str, object] = {
        "distributed.scheduler.worker-saturation": 1.0,
        "distributed.nanny.pre-spawn-environ": {
            **{
                name: value
                for name, value in environ.items()
                if name not in ALLOCATOR_ENVIRON
            },
            **ALLOCATOR_ENVIRON,
        },
    }
    if WORKER_PROFILER_ENV not in os.environ:
        config["distributed.worker.profile.enabled"] = False
    return config
