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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from cache import (
    CacheUnavailableError,
    CampaignStore,
    JobNotFoundError,
    JobStore,
    RedisServer,
    ResultStore,
)
from recreate.butler import DiffimInputs
from recreate.errors import RecreateError
from recreate.selection import Selection
from workers.broker import Broker, Outcome
from workers.campaigns import CampaignRunner
from workers.metrics import Metrics
from workers.settings import Settings, worker_dask_config
from workers.state import LockedButler, RecreateWorkerPlugin, RedisStores
from workers.tasks import TaskSpec

log = logging.getLogger(__name__)

#: Seconds to wait for a remote scheduler before calling it unreachable.
CONNECT_TIMEOUT = 5.0


@dataclass
class Services:
    """The API's view of the service: Butler, Redis, broker, metrics."""

    settings: Settings
    butler: LockedButler
    stores: RedisStores
    broker: Broker
    metrics: Metrics = field(default_factory=Metrics)
    campaigns: CampaignRunner | None = None
    cluster: Any = None
    _embedded: list[Any] = field(default_factory=list)
    _jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def store(self) -> ResultStore | None:
        """The result store (None without a cache Redis)."""
        return self.stores.store

    @property
    def jobs(self) -> JobStore | None:
        """The job store (None without a control Redis)."""
        return self.stores.jobs

    async def find_inputs(
        self, visit: int, detector: int, instrument: str | None
    ) -> DiffimInputs:
        """Resolve a key's inputs through the Butler (off the loop)."""
        return await asyncio.to_thread(
            self.butler.find_inputs,
            visit,
            detector,
            instrument or self.settings.instrument,
        )

    async def select_keys(
        self, selection: Selection, limit: int
    ) -> list[tuple[int, int]]:
        """Resolve a campaign selection through the Butler (off the loop)."""
        return await asyncio.to_thread(
            self.butler.select_keys, selection, limit
        )

    def open_job(
        self, spec: TaskSpec, url: str, task: asyncio.Task[Any]
    ) -> dict[str, Any]:
        """Record a job for a request that outlived its sync timeout.

        ``task`` is the broker's task for the product: if it finished
        between the timeout and now, the record says so at once.
        """
        # The job store sets id, created and updated itself; the local
        # copy carries them too.
        fields: dict[str, Any] = {
            "state": "running",
            "instrument": spec.instrument,
            "visit": spec.visit,
            "detector": spec.detector,
            "format": spec.output_format,
            "url": url,
        }
        now = time.time()
        record = {
            "id": spec.product_key,
            **fields,
            "created": now,
            "updated": now,
        }
        self._forget_expired_jobs(now)
        self._jobs[spec.product_key] = record
        if self.jobs is not None:
            with contextlib.suppress(CacheUnavailableError):
                self.jobs.create(spec.product_key, fields)
        if task.done() and not task.cancelled():
            error = task.exception()
            self._record_outcome(
                spec,
                Outcome(
                    result=None if error else task.result(),
                    error=error if isinstance(error, RecreateError) else None,
                    finished=time.time(),
                ),
            )
        return record

    def _forget_expired_jobs(self, now: float) -> None:
        """Drop local job records the job store would have expired.

        The local copies answer while the control Redis is away; kept
        past ``job_ttl_seconds`` they would only grow with every 202.
        """
        oldest = now - self.settings.job_ttl_seconds
        expired = [
            key
            for key, record in self._jobs.items()
            if record["updated"] < oldest
        ]
        for key in expired:
            del self._jobs[key]

    def job(self, job_id: str) -> dict[str, Any] | None:
        """Return a job record (control store first, then this process)."""
        if self.jobs is not None:
            with contextlib.suppress(CacheUnavailableError):
                record = self.jobs.get(job_id)
                if record is not None:
                    return record
        return self._jobs.get(job_id)

    def finish(self, spec: TaskSpec, outcome: Outcome) -> None:
        """Record a finished product in its job and in the metrics."""
        self.metrics.inflight.set(self.broker.inflight)
        if outcome.result is not None and outcome.result.computed:
            self.metrics.recomputes.inc()
            self.metrics.recompute_seconds.observe(outcome.result.seconds)
        if outcome.error is not None:
            self.metrics.failures.labels(code=outcome.error.code).inc()
        self._record_outcome(spec, outcome)

    def _record_outcome(self, spec: TaskSpec, outcome: Outcome) -> None:
        """Mark a product's job, if it has one, done or failed."""
        record = self._jobs.get(spec.product_key)
        if record is None:
            return
        update: dict[str, Any] = {}
        if outcome.error is None:
            update["state"] = "done"
        else:
            update["state"] = "failed"
            update["error"] = {
                "code": outcome.error.code,
                "message": str(outcome.error),
            }
        record.update(update, updated=outcome.finished)
        if self.jobs is not None:
            with contextlib.suppress(CacheUnavailableError, JobNotFoundError):
                self.jobs.update(spec.product_key, **update)

    def health(self) -> dict[str, str]:
        """Return each stateful part's status: ok, down or embedded."""
        return {
            "cache": _ping(self.stores.cache_client),
            "control": _ping(self.stores.control_client),
            "butler": "ok" if self.butler.answers() else "down",
        }

    async def close(self) -> None:
        """Stop campaigns, the broker, the cluster and embedded servers."""
        if self.campaigns is not None:
            await self.campaigns.close()
        await self.broker.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                await self.cluster.close()
        for server in reversed(self._embedded):
            with contextlib.suppress(Exception):
                server.stop()


def _ping(client: redis.Redis | None) -> str:
    """Return ok, down, or absent for one Redis instance."""
    if client is None:
        return "absent"
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return "down"
    return "ok"


async def start_services(settings: Settings) -> Services:
    """Build the services; start embedded parts where nothing is set.

    Raises
    ------
    DataNotFoundError
        If there is no Butler repository at ``settings.butler_repo``.
    """
    embedded: list[Any] = []
    cluster = None
    try:
        settings = _with_embedded_redis(settings, embedded)
        butler = await asyncio.to_thread(LockedButler.open, settings)
        stores = RedisStores.connect(settings)
        if settings.scheduler_address is None:
            cluster = await _start_local_cluster(settings)
        broker = Broker(
            connect=functools.partial(_connect, settings, cluster),
            settings=settings,
            max_inflight=settings.max_inflight,
            retries=settings.task_retries,
        )
        services = Services(
            settings=settings,
            butler=butler,
            stores=stores,
            broker=broker,
            cluster=cluster,
            _embedded=embedded,
        )
        broker.on_done = services.finish
        if stores.control_client is not None:
            services.campaigns = CampaignRunner(
                services,
                CampaignStore(stores.control_client),
                max_inflight=settings.campaign_max_inflight,
            )
        with contextlib.suppress(RecreateError):
            # A remote scheduler may come later: the broker reconnects.
            await broker.client()
        if services.campaigns is not None:
            with contextlib.suppress(CacheUnavailableError):
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
    """Connect a Dask client and register the worker plugin.

    ``cluster`` is the embedded LocalCluster, or None for the scheduler
    at ``settings.scheduler_address``.
    """
    from distributed import Client

    address = cluster if cluster is not None else settings.scheduler_address
    client = await Client(address, asynchronous=True, timeout=CONNECT_TIMEOUT)
    await client.register_plugin(RecreateWorkerPlugin(settings))
    return client


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


def _with_embedded_redis(settings: Settings, started: list[Any]) -> Settings:
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
