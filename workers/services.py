"""Everything the API needs, built from `Settings`, and torn down again.

With no configuration the service is self-contained: two embedded
``redis-server`` processes on loopback (the blob cache with allkeys-lru,
the control store with noeviction; the eviction policy is per instance,
so locks and jobs must not share the cache's) and an adaptive
LocalCluster. Each ``RECREATE_*`` setting replaces one of them with a
real deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cache import (
    CacheStores,
    RedisConfig,
    RedisServer,
    ResilientCache,
)
from recreate.errors import RecreateError
from recreate.selection import Selection
from workers.broker import Broker
from workers.butler import LockedButler
from workers.campaigns import CampaignRunner
from workers.ivoa.jobs import JobRunner
from workers.jobs import JobBook
from workers.metrics import Metrics
from workers.products import ProductService
from workers.regions import RegionService
from workers.settings import Settings, worker_dask_config
from workers.state import RecreateWorkerPlugin

log = logging.getLogger(__name__)

#: Seconds to wait for a remote scheduler before calling it unreachable.
CONNECT_TIMEOUT = 5.0


@dataclass
class Services:
    """The service, assembled: its parts and the product service.

    The faces (routes, campaign runner) use `products`; the rest is
    here for health, metrics and shutdown.
    """

    settings: Settings
    butler: LockedButler
    cache: ResilientCache
    broker: Broker
    products: ProductService
    regions: RegionService
    jobs: JobBook
    metrics: Metrics
    async_jobs: JobRunner
    campaigns: CampaignRunner | None = None
    # An asynchronous LocalCluster (distributed types it for both modes).
    cluster: Any = None
    embedded: list[RedisServer] = field(default_factory=list)

    async def select_keys(
        self, selection: Selection, limit: int
    ) -> list[tuple[int, int]]:
        """Resolve a campaign selection through the Butler (off the loop)."""
        return await asyncio.to_thread(
            self.butler.select_keys, selection, limit
        )

    def health(self) -> dict[str, str]:
        """Return each stateful part's status: ok, down or absent."""
        return {
            **self.cache.stores.health(),
            "butler": "ok" if self.butler.answers() else "down",
        }

    async def close(self) -> None:
        """Stop campaigns, the broker, the cluster and embedded servers."""
        await self.async_jobs.close()
        if self.campaigns is not None:
            await self.campaigns.close()
        await self.broker.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                await self.cluster.close()
        for server in reversed(self.embedded):
            with contextlib.suppress(Exception):
                server.stop()


def assemble(
    settings: Settings,
    butler: LockedButler,
    config: RedisConfig,
    broker: Broker,
    metrics: Metrics | None = None,
) -> Services:
    """Wire the parts together: cache, jobs, product service, campaigns.

    ``broker`` reports finished products to the product service.
    """
    metrics = metrics or Metrics()
    stores = CacheStores.connect(config)
    cache = ResilientCache(stores, on_corrupt=metrics.corrupt_values.inc)
    jobs = JobBook(cache, settings.job_ttl_seconds)
    products = ProductService(
        settings=settings,
        butler=butler,
        cache=cache,
        broker=broker,
        jobs=jobs,
        metrics=metrics,
        cache_id=config.fingerprint(),
    )
    broker.on_done = products.finished
    campaigns = None
    if stores.campaigns is not None:
        campaigns = CampaignRunner(
            products=products,
            scheduler=broker,
            store=stores.campaigns,
            default_format=settings.default_format,
            max_inflight=settings.campaign_max_inflight,
        )
    return Services(
        settings=settings,
        butler=butler,
        cache=cache,
        broker=broker,
        products=products,
        regions=RegionService(products),
        jobs=jobs,
        metrics=metrics,
        async_jobs=JobRunner(
            cache,
            lifetime_seconds=settings.job_ttl_seconds,
            execution_seconds=settings.cutout_job_execution_seconds,
        ),
        campaigns=campaigns,
    )


async def start_services(settings: Settings) -> Services:
    """Build the services; start embedded parts where nothing is set.

    Raises
    ------
    DataNotFoundError
        If there is no Butler repository at ``settings.butler_repo``.
    """
    embedded: list[RedisServer] = []
    cluster = None
    try:
        settings = _with_embedded_redis(settings, embedded)
        butler = await asyncio.to_thread(LockedButler.open, settings)
        if settings.scheduler_address is None:
            cluster = await _start_local_cluster(settings)
        config = settings.redis_config()
        broker = Broker(
            connect=functools.partial(_connect, settings, cluster),
            plugin=RecreateWorkerPlugin(config),
            max_inflight=settings.max_inflight,
            retries=settings.task_retries,
        )
        services = assemble(settings, butler, config, broker)
        services.cluster = cluster
        services.embedded = embedded
        with contextlib.suppress(RecreateError):
            # A remote scheduler may come later: the broker reconnects.
            await broker.client()
        if services.campaigns is not None:
            services.campaigns.resume()
    except BaseException:
        if cluster is not None:
            with contextlib.suppress(Exception):
                await cluster.close()
        for server in reversed(embedded):
            with contextlib.suppress(Exception):
                server.stop()
        raise
    return services


async def _connect(settings: Settings, cluster: Any) -> Any:
    """Connect a Dask client (the broker registers its plugin).

    ``cluster`` is the embedded LocalCluster, or None for the scheduler
    at ``settings.scheduler_address``.
    """
    from distributed import Client

    address = cluster if cluster is not None else settings.scheduler_address
    return await Client(address, asynchronous=True, timeout=CONNECT_TIMEOUT)


async def _start_local_cluster(settings: Settings) -> Any:
    """Start the embedded adaptive LocalCluster of worker processes."""
    import dask

    # Set for the process, not for the call: the workers that adapt()
    # starts later must get the same environment. (A nanny also lets the
    # process's own environment override the configuration, so a worker
    # started with Dask's defaults would leave them behind for all.)
    dask.config.set(worker_dask_config())
    cluster = await _local_cluster(settings)
    cluster.adapt(
        minimum=settings.embedded_workers_min,
        maximum=settings.embedded_workers_max,
    )
    return cluster


async def _local_cluster(settings: Settings) -> Any:
    """Create the LocalCluster of worker processes."""
    from distributed import LocalCluster

    return await LocalCluster(
        n_workers=settings.embedded_workers_min,
        threads_per_worker=settings.worker_threads,
        processes=True,
        memory_limit=settings.worker_memory_limit,
        # Any free port: 8787 may be taken, and a warning is all Dask
        # would give for it.
        dashboard_address=":0",
        asynchronous=True,
    )


def _with_embedded_redis(
    settings: Settings, started: list[RedisServer]
) -> Settings:
    """Start redis-servers for the stores left unset; return new settings."""
    updates: dict[str, str] = {}
    if settings.cache_redis_url is None:
        server = RedisServer(
            maxmemory=settings.embedded_cache_maxmemory,
            policy="allkeys-lru",
            binary=settings.redis_server,
        )
        server.start()
        started.append(server)
        updates["cache_redis_url"] = server.url
    if settings.control_redis_url is None:
        data_dir: Path | None = None
        if Path(settings.butler_repo).exists():
            # Jobs survive a restart of `recreate run`; a remote
            # repository leaves no local directory to keep them in.
            data_dir = Path(settings.butler_repo).parent / "redis-control"
        server = RedisServer(
            policy="noeviction",
            data_dir=data_dir,
            binary=settings.redis_server,
        )
        server.start()
        started.append(server)
        updates["control_redis_url"] = server.url
    return settings.model_copy(update=updates) if updates else settings
