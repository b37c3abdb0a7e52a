"""What a worker holds between tasks: a Butler and the Redis clients.

A `RecreateWorkerPlugin` registered by the broker builds one
`WorkerState` per worker process when the worker starts (or joins
later); tasks reach it with `worker_state`. A worker that was started
without the plugin builds its state from its own environment on first
use, so a task never fails just because the plugin was not registered.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from distributed.diagnostics.plugin import WorkerPlugin
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from cache import JobStore, ResultStore, SingleFlight
from recreate.butler import DiffimInputs, find_inputs, open_butler
from workers.settings import Settings

log = logging.getLogger(__name__)

#: Name the plugin is registered under on every worker.
PLUGIN_NAME = "recreate"

#: Seconds a Redis command may take: a few MB per command by design.
REDIS_SOCKET_TIMEOUT = 30.0
REDIS_CONNECT_TIMEOUT = 2.0


def redis_client(url: str, password: str | None = None) -> redis.Redis:
    """Return a client for one Redis instance.

    Timeouts are seconds, not milliseconds: a multi-MB chunk must not
    time out, but an unreachable server must fail fast enough for the
    service to degrade instead of hanging.
    """
    options: dict[str, Any] = {
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "health_check_interval": 30,
        # redis-py retries ten times by default: a dead server would hold
        # every request (and the health probe) for seconds.
        "retry": Retry(
            ExponentialWithJitterBackoff(cap=0.2, base=0.01), retries=2
        ),
    }
    if password and "@" not in url:
        options["password"] = password
    return redis.Redis.from_url(url, **options)


@dataclass(frozen=True)
class RedisStores:
    """The Redis clients and the stores over them, as settings say.

    Each part is None when its Redis URL is unset.
    """

    cache_client: redis.Redis | None = None
    control_client: redis.Redis | None = None
    store: ResultStore | None = None
    locks: SingleFlight | None = None
    jobs: JobStore | None = None

    @classmethod
    def connect(cls, settings: Settings) -> RedisStores:
        """Return clients and stores for the configured Redis URLs."""
        cache = control = store = locks = jobs = None
        if settings.cache_redis_url:
            cache = redis_client(
                settings.cache_redis_url, settings.redis_password
            )
            store = ResultStore(
                cache,
                ttl_seconds=settings.cache_ttl_seconds,
                kernel_ttl_seconds=settings.kernel_ttl_seconds,
                chunk_bytes=settings.chunk_bytes,
            )
        if settings.control_redis_url:
            control = redis_client(
                settings.control_redis_url, settings.redis_password
            )
            locks = SingleFlight(
                control, ttl_seconds=settings.lock_ttl_seconds
            )
            jobs = JobStore(control, ttl_seconds=settings.job_ttl_seconds)
        return cls(cache, control, store, locks, jobs)


@dataclass
class WorkerState:
    """A worker's Butler, result store, lock and job store.

    ``store``, ``locks`` and ``jobs`` are None when no Redis is
    configured; the task then computes and returns the bytes itself.
    """

    settings: Settings
    butler: Any
    store: ResultStore | None
    locks: SingleFlight | None
    jobs: JobStore | None
    address: str = ""
    _butler_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, settings: Settings, address: str = "") -> WorkerState:
        """Open the Butler and connect to Redis as ``settings`` say."""
        butler = open_butler(settings.butler_repo, settings.collections())
        stores = RedisStores.connect(settings)
        return cls(
            settings,
            butler,
            stores.store,
            stores.locks,
            stores.jobs,
            address,
        )

    def find_inputs(
        self, instrument: str, visit: int, detector: int
    ) -> DiffimInputs:
        """Look the inputs up (one query at a time: SQLite registries)."""
        with self._butler_lock:
            return find_inputs(
                self.butler, visit, detector, instrument=instrument
            )


class RecreateWorkerPlugin(WorkerPlugin):
    """Dask worker plugin giving every worker a `WorkerState`.

    Parameters
    ----------
    settings
        The broker's settings, with the Redis URLs it resolved (the
        embedded servers' ports are only known at run time).
    """

    name = PLUGIN_NAME
    # A broker registering again (restarted, or with new Redis URLs)
    # replaces the plugin: the workers must follow the new settings.
    idempotent = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: WorkerState | None = None

    def setup(self, worker: Any) -> None:
        """Build the worker's state when it starts or joins."""
        self.state = WorkerState.build(self.settings, worker.address)
        log.info("recreate worker state ready on %s", worker.address)

    def teardown(self, worker: Any) -> None:  # noqa: ARG002 - Dask's API
        """Drop the state (its clients close with it)."""
        self.state = None


_fallback: WorkerState | None = None
_fallback_lock = threading.Lock()


def worker_state() -> WorkerState:
    """Return the state of the worker running the current task."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        worker = None
    plugin = worker.plugins.get(PLUGIN_NAME) if worker else None
    if isinstance(plugin, RecreateWorkerPlugin) and plugin.state:
        return plugin.state
    return _state_from_environment(worker.address if worker else "")


def _state_from_environment(address: str) -> WorkerState:
    """Build (once per process) a state from ``RECREATE_*`` variables."""
    global _fallback  # noqa: PLW0603 - one state per process, built lazily
    with _fallback_lock:
        if _fallback is None:
            log.warning("no recreate plugin on this worker: using env")
            _fallback = WorkerState.build(Settings(), address)
        return _fallback
