"""Everything the API needs, built from `Settings`, and torn down again.

With no configuration the service is self-contained: two embedded
``redis-server`` processes on loopback (the blob cache with allkeys-lru,
the control store with noeviction; the eviction policy is per instance,
so locks and jobs must not share the cache's), password-protected when
``RECREATE_REDIS_PASSWORD`` is set and restarted if they die
(`cache.ServerSupervisor`), and an adaptive LocalCluster on loopback
(its dashboard off unless ``RECREATE_EMBEDDED_DASHBOARD``). Each
``RECREATE_*`` setting replaces one of them with a real deployment.
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
    ServerSupervisor,
)
from recreate.errors import RecreateError
from recreate.io.input_cache import configure_input_cache
from recreate.selection import Selection
from workers.broker import Broker
from workers.butler import LockedButler
from workers.campaigns import CampaignRunner
from workers.dask_config import worker_dask_config
from workers.ivoa.jobs import JobRunner
from workers.jobs import JobBook
from workers.metrics import Metrics
from workers.products import ProductService
from workers.regions import RegionService
from workers.render_processes import RenderProcesses
from workers.settings import Settings
from workers.solutions import SolutionService
from workers.state import RecreateWorkerPlugin

log = logging.getLogger(__name__)

#: Seconds to wait for a remote scheduler before calling it unreachable.
CONNECT_TIMEOUT = 5.0
#: Where the embedded parts listen.
LOOPBACK = "127.0.0.1"
#: Preloaded into embedded worker processes (`workers.quiet`).
QUIET_WORKERS = "workers.quiet"


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
    supervisor: ServerSupervisor | None = None

    async def select_keys(
        self, selection: Selection, limit: int
    ) -> list[tuple[int, int]]:
        """Resolve a campaign selection through the Butler (off the loop)."""
        return await asyncio.to_thread(
            self.butler.select_keys, selection, limit
        )

    def health(self) -> dict[str, Any]:
        """Return each stateful part's status: ok, down or absent.

        With embedded Redis servers, also what their supervisor sees:
        each one's state (running, restarting, down) and restarts.
        """
        parts: dict[str, Any] = {
            **self.cache.stores.health(),
            "butler": "ok" if self.butler.answers() else "down",
        }
        if self.supervisor is not None:
            parts["embedded_redis"] = self.supervisor.status()
        return parts

    async def close(self) -> None:
        """Stop campaigns, the broker, the cluster and embedded servers."""
        if self.supervisor is not None:
            self.supervisor.stop()
        await self.async_jobs.close()
        if self.campaigns is not None:
            await self.campaigns.close()
        await self.broker.close()
        await asyncio.to_thread(self.regions.close)
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
    # Stamps render in this process: keep their decoded inputs as said.
    configure_input_cache(settings.input_cache_bytes)
    solutions = SolutionService(products, settings.solution_memory_entries)
    campaigns = None
    if stores.campaigns is not None and stores.leases is not None:
        campaigns = CampaignRunner(
            products=products,
            scheduler=broker,
            store=stores.campaigns,
            leases=stores.leases,
            cache=cache,
            default_format=settings.default_format,
            max_inflight=settings.campaign_max_inflight,
            solutions=solutions,
        )
    return Services(
        settings=settings,
        butler=butler,
        cache=cache,
        broker=broker,
        products=products,
        regions=RegionService(
            products,
            solutions,
            local_max_pixels=settings.region_local_max_pixels,
            threads=settings.region_threads,
            processes=(
                RenderProcesses(
                    settings.region_render_processes,
                    settings.input_cache_bytes,
                )
                if settings.region_render_processes
                else None
            ),
        ),
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
    embedded: dict[str, RedisServer] = {}
    cluster = None
    try:
        settings = _with_embedded_redis(settings, embedded)
        settings = with_solution_store(settings)
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
        await asyncio.to_thread(services.regions.start)
        services.embedded = list(embedded.values())
        if embedded:
            services.supervisor = ServerSupervisor(embedded)
            services.supervisor.start()
        with contextlib.suppress(RecreateError):
            # A remote scheduler may come later: the broker reconnects.
            await broker.client()
        if services.campaigns is not None:
            # Resumes unfinished campaigns now and whenever one is left
            # without a live runner (a dead replica, a store outage).
            services.campaigns.start()
    except BaseException:
        if cluster is not None:
            with contextlib.suppress(Exception):
                await cluster.close()
        for server in reversed(embedded.values()):
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
    # Ctrl-C is the service's to handle: the worker processes (in the
    # terminal's process group) ignore it, and are stopped with the rest.
    dask.config.set({"distributed.worker.preload": [QUIET_WORKERS]})
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
        host=LOOPBACK,
        # Loopback, any free port (8787 may be taken, and a warning is
        # all Dask would give for it); the scheduler's HTTP server runs
        # anyway, the dashboard on it only if asked for.
        dashboard_address=f"{LOOPBACK}:0",
        scheduler_kwargs={"dashboard": settings.embedded_dashboard},
        asynchronous=True,
    )


def with_solution_store(settings: Settings) -> Settings:
    """Give a local repository's service its default solution store.

    ``<repository's parent>/solutions``, beside the embedded control
    store's data; a remote repository gets none unless one is set
    (solutions then live in Redis only: a warning says so).
    """
    if settings.solution_store is not None:
        return settings
    repo = Path(settings.butler_repo)
    if not repo.exists():
        log.warning(
            "no solution store (RECREATE_SOLUTION_STORE): solutions live "
            "only in the Redis cache and are lost with it"
        )
        return settings
    store = repo.absolute().parent / "solutions"
    return settings.model_copy(update={"solution_store": str(store)})


def _with_embedded_redis(
    settings: Settings, started: dict[str, RedisServer]
) -> Settings:
    """Start redis-servers for the stores left unset; return new settings.

    They bind loopback and require ``settings.redis_password`` when it
    is set; their URLs carry no password (the settings do).
    """
    updates: dict[str, str] = {}
    password = (
        settings.redis_password.get_secret_value()
        if settings.redis_password is not None
        else None
    )
    if settings.cache_redis_url is None:
        server = RedisServer(
            maxmemory=settings.embedded_cache_maxmemory,
            policy="allkeys-lru",
            password=password,
            binary=settings.redis_server,
        )
        server.start()
        started["cache"] = server
        updates["cache_redis_url"] = server.address
    if settings.control_redis_url is None:
        data_dir: Path | None = None
        if Path(settings.butler_repo).exists():
            # Jobs survive a restart of `recreate run`; a remote
            # repository leaves no local directory to keep them in.
            data_dir = Path(settings.butler_repo).parent / "redis-control"
        server = RedisServer(
            policy="noeviction",
            data_dir=data_dir,
            password=password,
            binary=settings.redis_server,
        )
        server.start()
        started["control"] = server
        updates["control_redis_url"] = server.address
    return settings.model_copy(update=updates) if updates else settings
