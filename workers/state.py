"""What a worker holds between tasks: its connection to the cache.

The broker registers a `RecreateWorkerPlugin` carrying the cache's
configuration (`cache.RedisConfig`: URLs, password, lifetimes). Each
worker builds one `WorkerState` from it when it starts or joins, and
keeps it under the configuration's fingerprint. A task names the
fingerprint it needs, never the configuration itself: the password
crosses the scheduler once per worker, not with every task. A worker
that has not received the configuration yet (it joined a restarted
scheduler before the plugin was registered there again) raises
`WorkerNotReadyError`; the broker registers the plugin and retries.

Workers need no Butler: a task carries its inputs' URIs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from cache import CacheStores, RedisConfig, ResilientCache
from recreate.errors import TransientError

log = logging.getLogger(__name__)

#: Name the plugin is registered under on every worker.
PLUGIN_NAME = "recreate"


@dataclass(frozen=True)
class WorkerState:
    """A worker's cache (resilient: Redis may be absent or down).

    Attributes
    ----------
    cache
        The stores, each call answering even when Redis does not.
    lock_wait_seconds
        How long a task waits for a live holder of a product's lock (a
        dead holder's lease lapses within the lock's TTL).
    address
        The worker's address (named in results).
    """

    cache: ResilientCache
    lock_wait_seconds: float
    address: str = ""

    @classmethod
    def build(cls, config: RedisConfig, address: str = "") -> WorkerState:
        """Connect to the cache as ``config`` says."""
        return cls(
            ResilientCache(CacheStores.connect(config)),
            config.lock_wait_seconds,
            address,
        )


#: Every state built in this process, by configuration fingerprint. A
#: replaced plugin's state stays: tasks of the broker that registered it
#: may still be queued.
_states: dict[str, WorkerState] = {}
_states_lock = threading.Lock()


class WorkerNotReadyError(TransientError):
    """The worker has no state for the task's cache configuration yet."""

    code = "worker_not_ready"


class RecreateWorkerPlugin(WorkerPlugin):
    """Dask worker plugin giving every worker a `WorkerState`.

    Parameters
    ----------
    config
        The broker's cache configuration, with the Redis URLs it
        resolved (the embedded servers' ports are known only at run
        time).
    """

    name = PLUGIN_NAME
    # A broker registering again (restarted, or with new Redis URLs)
    # replaces the plugin: the workers must follow the new settings.
    idempotent = False

    def __init__(self, config: RedisConfig) -> None:
        self.config = config

    def setup(self, worker: Any) -> None:
        """Build the worker's state when it starts or joins.

        The pipeline is also warmed up, once per process and in the
        background (`start_warm_up`), so that the first request a worker
        takes does not load the compiled kernels.
        """
        state = WorkerState.build(self.config, worker.address)
        with _states_lock:
            _states[self.config.fingerprint()] = state
        start_warm_up()
        log.info("recreate worker state ready on %s", worker.address)


def worker_state(cache_id: str) -> WorkerState:
    """Return this worker's state for the cache configuration ``cache_id``.

    Raises
    ------
    WorkerNotReadyError
        If no plugin with that configuration has been set up here yet:
        the broker registers it again and retries.
    """
    with _states_lock:
        state = _states.get(cache_id)
    if state is None:
        raise WorkerNotReadyError(
            "this worker has not received the service's cache "
            f"configuration {cache_id[:12]} yet; retrying"
        )
    return state


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
