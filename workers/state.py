"""What a worker holds between tasks: a Butler and the Redis clients.

A `RecreateWorkerPlugin` registered by the broker builds one
`WorkerState` per worker process when the worker starts (or joins
later); tasks reach it with `worker_state`. Tasks also carry the
broker's settings: a worker without the plugin (or with another
broker's) builds the state for them on first use, so a task never runs
against the wrong repository or Redis.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from distributed.diagnostics.plugin import WorkerPlugin

from cache import JobStore, ResultStore, SingleFlight, quick_retry
from recreate.butler import DiffimInputs, find_inputs, open_butler
from recreate.selection import Selection
from recreate.selection_query import select_keys
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
        "retry": quick_retry(),
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
class LockedButler:
    """A Butler whose registry is queried by one thread at a time.

    A Butler with an SQLite registry must not run queries from several
    threads at once; the API (a thread per request) and a worker with
    several threads share one through this.
    """

    butler: Any
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings) -> LockedButler:
        """Open the configured repository read-only."""
        return cls(open_butler(settings.butler_repo, settings.collections()))

    def find_inputs(
        self, visit: int, detector: int, instrument: str | None
    ) -> DiffimInputs:
        """Return a key's inputs (`recreate.butler.find_inputs`)."""
        with self._lock:
            return find_inputs(
                self.butler, visit, detector, instrument=instrument
            )

    def select_keys(
        self, selection: Selection, limit: int
    ) -> list[tuple[int, int]]:
        """Return the keys of a selection (`select_keys`, under the lock)."""
        with self._lock:
            return select_keys(self.butler, selection, limit=limit)

    def visit_image_keys(self) -> list[tuple[int, int]]:
        """Return every (visit, detector) with a visit image, sorted."""
        with self._lock:
            refs = self.butler.registry.queryDatasets(
                "visit_image", findFirst=True
            )
            return sorted(
                (int(ref.dataId["visit"]), int(ref.dataId["detector"]))
                for ref in refs
            )

    def answers(self) -> bool:
        """Whether the registry answers a trivial query."""
        with self._lock:
            try:
                list(self.butler.registry.queryDimensionRecords("instrument"))
            except Exception:  # any failure means "down"; logged
                log.exception("Butler health check failed")
                return False
        return True


@dataclass
class WorkerState:
    """A worker's Butler, result store, lock and job store.

    ``store``, ``locks`` and ``jobs`` are None when no Redis is
    configured; the task then computes and returns the bytes itself.
    """

    settings: Settings
    butler: LockedButler
    store: ResultStore | None
    locks: SingleFlight | None
    jobs: JobStore | None
    address: str = ""

    @classmethod
    def build(cls, settings: Settings, address: str = "") -> WorkerState:
        """Open the Butler and connect to Redis as ``settings`` say."""
        stores = RedisStores.connect(settings)
        return cls(
            settings,
            LockedButler.open(settings),
            stores.store,
            stores.locks,
            stores.jobs,
            address,
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
        """Build the worker's state when it starts or joins.

        The pipeline is also warmed up, once per process and in the
        background (`start_warm_up`), so that the first request a worker
        takes does not load the compiled kernels.
        """
        self.state = WorkerState.build(self.settings, worker.address)
        start_warm_up()
        log.info("recreate worker state ready on %s", worker.address)

    def teardown(self, worker: Any) -> None:  # noqa: ARG002 - Dask's API
        """Drop the state (its clients close with it)."""
        self.state = None


_warm_up_started = threading.Event()


def start_warm_up() -> threading.Thread | None:
    """Warm the pipeline up in a daemon thread, once per process.

    `recreate.pipeline.warmup.warm_up` loads the compiled kernels
    (about 1.5 s of a full detector's first recreation otherwise). A
    task arriving meanwhile simply runs beside it. A failure is logged
    and changes nothing else: the first request then warms up itself.

    Returns
    -------
    thread
        The thread started, or None when one was started before.
    """
    if _warm_up_started.is_set():
        return None
    _warm_up_started.set()
    thread = threading.Thread(
        target=_warm_up, name="recreate-warm-up", daemon=True
    )
    thread.start()
    return thread


def _warm_up() -> None:
    """Run the warm-up; log instead of raising (see start_warm_up)."""
    from recreate.pipeline.warmup import warm_up

    try:
        warm_up()
    except Exception:
        log.exception("pipeline warm-up failed; the first request pays it")
    else:
        log.info("pipeline warmed up")


_states: dict[Settings, WorkerState] = {}
_states_lock = threading.Lock()


def worker_state(settings: Settings) -> WorkerState:
    """Return the state for ``settings`` on the worker running a task.

    The plugin's state when it was built from the same settings (the
    usual case); otherwise one built here, once per process and settings.
    Tasks carry the broker's settings, so a worker that joined a
    restarted scheduler before any broker registered the plugin again
    still reads the broker's repository and Redis, never a default.
    """
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        worker = None
    plugin = worker.plugins.get(PLUGIN_NAME) if worker else None
    if (
        isinstance(plugin, RecreateWorkerPlugin)
        and plugin.state is not None
        and plugin.settings == settings
    ):
        return plugin.state
    with _states_lock:
        state = _states.get(settings)
        if state is None:
            log.info("building recreate state outside the plugin")
            state = WorkerState.build(
                settings, worker.address if worker else ""
            )
            _states[settings] = state
        return state
