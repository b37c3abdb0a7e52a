"""The task a Dask worker runs: recreate one product and cache it.

One task, one product (a recipe in one output format). It

1. resolves the inputs through the worker's own Butler and checks they
   still make the product key the broker computed (a new template since
   the request is a new key, never a stale product under the old one);
2. returns at once when the product is already cached;
3. takes the single-flight lock, so that one recompute runs across every
   broker and worker; a loser waits for the holder and reads its result;
4. recreates the difference image (reusing a stored kernel when there is
   one), encodes it, and writes it to Redis as the last step: a failure
   anywhere before leaves no cache entry;
5. returns small metadata only. The bytes cross the scheduler only when
   the cache is down (degraded mode), so the request is still served.

Errors are classified here, in one place: the project's own errors pass
through (user errors are 4xx, transient ones are retried by the broker);
an ``OSError`` while reading inputs is transient; anything else becomes a
`ProcessingError` whose message names the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cache import CacheUnavailableError
from recreate import __version__
from recreate.errors import ProcessingError, RecreateError, TransientError
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.provenance import recipe_hash
from recreate.recreation import (
    product_key,
    recreate_from_inputs,
    request_recipe,
    result_bytes,
)
from workers.settings import Settings
from workers.state import WorkerState, worker_state

log = logging.getLogger(__name__)

#: Name of the counter of recomputes in the control store.
RECOMPUTES_COUNTER = "recomputes"
#: How many times a task waits for another holder before giving up.
MAX_LOCK_WAITS = 3


@dataclass(frozen=True)
class TaskSpec:
    """What to recreate: a key, a format, and the product key expected.

    Parameters
    ----------
    instrument, visit, detector
        The key, with the instrument resolved.
    output_format
        ``dp1`` or ``lsst-images``.
    product_key
        The cache key the broker computed from the inputs it found.
    """

    instrument: str
    visit: int
    detector: int
    output_format: str
    product_key: str

    def describe(self) -> str:
        """Name the key in messages."""
        return f"{self.instrument} visit {self.visit} detector {self.detector}"


@dataclass(frozen=True)
class TaskResult:
    """What a task returns: metadata, and bytes only when uncached.

    Attributes
    ----------
    product_key
        The cache key of the product.
    sha256
        SHA-256 of the product's bytes (the HTTP ETag).
    size
        Length of the product in bytes.
    computed
        Whether this task recomputed the product (false: it was cached,
        or another holder of the lock computed it).
    seconds
        Wall time of the task.
    meta
        The cache manifest's metadata (recipe hash, inputs, timings).
    worker
        Address of the worker that ran the task.
    payload
        The product's bytes when they could not be cached (Redis down).
    """

    product_key: str
    sha256: str
    size: int
    computed: bool
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)
    worker: str = ""
    payload: bytes | None = None


def recreate_task(spec: TaskSpec, settings: Settings) -> TaskResult:
    """Recreate one product on a Dask worker and cache it.

    Parameters
    ----------
    spec
        The product to make.
    settings
        The broker's settings (repository, Redis): the worker's state is
        the one built for them.

    Raises
    ------
    DataNotFoundError, InvalidRequestError, NoOverlapError
        The user's errors (4xx).
    TransientError
        A failure worth retrying (inputs unreadable, inputs changed).
    ProcessingError
        Anything else, with the key in its message.
    """
    state = worker_state(settings)
    started = time.perf_counter()
    try:
        return _recreate(spec, state, started)
    except RecreateError:
        raise
    except OSError as error:
        raise TransientError(
            f"reading the inputs of {spec.describe()} failed: {error}"
        ) from None
    except Exception as error:
        log.exception("recreating %s failed", spec.describe())
        raise ProcessingError(
            f"recreating {spec.describe()} failed: "
            f"{type(error).__name__}: {error}"
        ) from None


def _recreate(
    spec: TaskSpec, state: WorkerState, started: float
) -> TaskResult:
    """Do the task's work; see `recreate_task`."""
    found = state.butler.find_inputs(
        spec.visit, spec.detector, spec.instrument
    )
    recipe = request_recipe(found)
    key = product_key(recipe, spec.output_format)
    if key != spec.product_key:
        raise TransientError(
            f"the inputs of {spec.describe()} changed since the request "
            "was made; ask again"
        )
    for _ in range(MAX_LOCK_WAITS):
        cached = _cached(state, key, started)
        if cached is not None:
            return cached
        with _single_flight(state, key) as held:
            if held:
                return _compute(spec, state, found, recipe, started)
    raise TransientError(
        f"another worker held the lock on {spec.describe()} for too long"
    )


def _cached(state: WorkerState, key: str, started: float) -> TaskResult | None:
    """Return the result of an already cached product, if there is one."""
    try:
        manifest = state.store.head(key) if state.store else None
    except CacheUnavailableError:
        return None
    if manifest is None:
        return None
    return TaskResult(
        product_key=key,
        sha256=manifest.sha256,
        size=manifest.size,
        computed=False,
        seconds=time.perf_counter() - started,
        meta=dict(manifest.meta),
        worker=state.address,
    )


@contextlib.contextmanager
def _single_flight(state: WorkerState, key: str) -> Iterator[bool]:
    """Hold the product's lock; yield false after waiting out a holder.

    Without a control store the lock cannot be taken: the task computes
    anyway (a duplicate recompute costs time, never correctness: the
    output is deterministic).
    """
    if state.locks is None:
        yield True
        return
    try:
        lock = state.locks.try_acquire(key)
    except CacheUnavailableError:
        yield True
        return
    if lock is None:
        state.locks.wait_released(key, timeout=state.settings.lock_ttl_seconds)
        yield False
        return
    with lock:
        yield True


def _compute(
    spec: TaskSpec,
    state: WorkerState,
    found: Any,
    recipe: dict[str, Any],
    started: float,
) -> TaskResult:
    """Recreate, encode and cache the product; the cache write is last."""
    rhash = recipe_hash(recipe)
    kernel = _stored_kernel(state, rhash)
    result = recreate_from_inputs(
        found, recipe=recipe["recipe"], kernel=kernel
    )
    data = result_bytes(result, spec.output_format)
    meta = _product_meta(spec, recipe, rhash, result, started)
    stored = _store(state, spec.product_key, data, meta)
    if stored is not None:
        _store_kernel(state, rhash, result.kernel)
        _count_recompute(state)
    return TaskResult(
        product_key=spec.product_key,
        sha256=stored.sha256 if stored else hashlib.sha256(data).hexdigest(),
        size=len(data),
        computed=True,
        seconds=time.perf_counter() - started,
        meta=meta,
        worker=state.address,
        payload=None if stored else data,
    )


def _product_meta(
    spec: TaskSpec,
    recipe: dict[str, Any],
    rhash: str,
    result: Any,
    started: float,
) -> dict[str, Any]:
    """Return the metadata kept with a cached product (becomes headers)."""
    return {
        "instrument": spec.instrument,
        "visit": spec.visit,
        "detector": spec.detector,
        "format": spec.output_format,
        "recipe": recipe["recipe"],
        "recipe_hash": rhash,
        "config_hash": recipe["config_hash"],
        "code_version": __version__,
        "input_ids": [entry["id"] for entry in recipe["inputs"]],
        "planes_sha256": result.exposure.metadata.get(
            "RECREATE PLANES SHA256", ""
        ),
        "template_coverage": result.provenance.template_coverage,
        "kernel_from_storage": result.provenance.kernel_from_storage,
        "recompute_seconds": round(time.perf_counter() - started, 3),
    }


def _stored_kernel(state: WorkerState, rhash: str) -> SolvedKernel | None:
    """Return a kernel stored by an earlier recreation of this recipe."""
    if state.store is None:
        return None
    try:
        text = state.store.get_kernel(rhash)
    except CacheUnavailableError:
        return None
    if text is None:
        return None
    return SolvedKernel.from_dict(json.loads(text))


def _store(
    state: WorkerState, key: str, data: bytes, meta: dict[str, Any]
) -> Any:
    """Cache the product; return its manifest, or None if Redis is down."""
    if state.store is None:
        return None
    try:
        return state.store.put(key, data, meta=meta)
    except CacheUnavailableError as error:
        log.warning("cache unavailable, serving uncached: %s", error)
        return None


def _store_kernel(
    state: WorkerState, rhash: str, kernel: SolvedKernel
) -> None:
    """Keep the solved kernel (small, kept longer than the pixels)."""
    if state.store is None:
        return
    with contextlib.suppress(CacheUnavailableError):
        state.store.put_kernel(rhash, json.dumps(kernel.to_dict()))


def _count_recompute(state: WorkerState) -> None:
    """Count a recompute in the control store (tests and metrics)."""
    if state.jobs is None:
        return
    with contextlib.suppress(CacheUnavailableError):
        state.jobs.incr(RECOMPUTES_COUNTER)
