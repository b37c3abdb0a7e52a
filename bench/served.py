"""The service a benchmark measures: the API over HTTP, on a new cluster.

The redis-servers are the caller's (a benchmark flushes or keeps them
between runs); the cluster of worker processes, started with the
project's Dask configuration (`workers.dask_config.worker_dask_config`),
and the API in a thread live as long as the ``with`` block.

The cluster is a LocalCluster (its scheduler and nannies in this
process, beside the API), or with ``own_processes`` a scheduler and
nannies in processes of their own, as a deployment has them (the
scheduler a pod of its own): a benchmark of the API's own CPU, such as
the light curves', does not then share this process's interpreter lock
with the scheduler's heartbeats and the nannies' monitors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
from distributed import LocalCluster

from cache import RedisServer
from workers.dask_config import worker_dask_config
from workers.serve import serve_in_thread
from workers.services import Services
from workers.settings import Settings

#: Dask's variable for the config a child process starts with.
_INHERIT = "DASK_INTERNAL_INHERIT_CONFIG"

#: Every budget off: a benchmark asks more than one user's share.
QUOTAS_OFF = "request=off,recompute=off,campaign=off,cutout=off,sia=off"


@contextmanager
def served_api(
    repo: Path,
    cache: RedisServer,
    control: RedisServer,
    *,
    workers: int = 1,
    threads: int = 1,
    on_ready: Callable[[Services], None] | None = None,
    own_processes: bool = False,
    **overrides: Any,
) -> Iterator[tuple[str, Any]]:
    """Serve ``repo``'s API on a fresh cluster; yield its URL and cluster.

    Requests wait up to 600 s before a 202: a benchmark times the answer;
    no budget applies (`QUOTAS_OFF`). ``overrides`` are more settings;
    ``on_ready`` is called with the running services.
    """
    with (
        dask.config.set(worker_dask_config()),
        _cluster(workers, threads, own_processes=own_processes) as cluster,
    ):
        settings = Settings(
            butler_repo=str(repo),
            cache_redis_url=cache.url,
            control_redis_url=control.url,
            scheduler_address=cluster.scheduler_address,
            sync_timeout_seconds=600,
            quotas=QUOTAS_OFF,
            **overrides,
        )
        with serve_in_thread(settings, on_ready=on_ready) as url:
            yield url, cluster


@contextmanager
def _cluster(workers: int, threads: int, *, own_processes: bool) -> Any:
    """Start the cluster (see the module), with the Dask config set now."""
    if not own_processes:
        with LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=True,
            dashboard_address=":0",
        ) as cluster:
            yield cluster
        return
    from distributed.deploy.subprocess import SubprocessCluster

    # Processes of their own read no config from this one but this.
    inherited = os.environ.get(_INHERIT)
    os.environ[_INHERIT] = dask.config.serialize(dask.config.config)
    try:
        with SubprocessCluster(
            n_workers=workers,
            threads_per_worker=threads,
            dashboard_address=None,
        ) as cluster:
            yield cluster
    finally:
        if inherited is None:
            os.environ.pop(_INHERIT, None)
        else:
            os.environ[_INHERIT] = inherited
