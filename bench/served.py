"""The service a benchmark measures: the API over HTTP, on a new cluster.

The redis-servers are the caller's (a benchmark flushes or keeps them
between runs); the LocalCluster of worker processes, started with the
project's Dask configuration (`workers.settings.worker_dask_config`),
and the API in a thread live as long as the ``with`` block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
from distributed import LocalCluster

from cache import RedisServer
from workers.serve import serve_in_thread
from workers.services import Services
from workers.settings import Settings, worker_dask_config

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
    **overrides: Any,
) -> Iterator[tuple[str, LocalCluster]]:
    """Serve ``repo``'s API on a fresh cluster; yield its URL and cluster.

    Requests wait up to 600 s before a 202: a benchmark times the answer;
    no budget applies (`QUOTAS_OFF`). ``overrides`` are more settings;
    ``on_ready`` is called with the running services.
    """
    with (
        dask.config.set(worker_dask_config()),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=True,
            dashboard_address=":0",
        ) as cluster,
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
