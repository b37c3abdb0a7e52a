"""The task a Dask worker runs: recreate one product and cache it.

One task, one product (a recipe in one output format); solutions and
regions are tasks of other kinds (`workers.solution_tasks`). The product
service resolved the inputs and derived the recipe and the key; the
task

1. checks it runs the code version the key was derived for (a worker of
   another version would cache its product under a key it does not
   name), and returns at once when the product is already cached;
2. takes the single-flight lock, so that one recompute runs across every
   broker and worker; a loser waits for the holder and reads its result;
3. recreates the difference image from exactly the inputs in the spec
   - rendered from the key's stored solution when there is one (no
   refit), else solved (reusing a stored kernel when there is one) and
   its solution stored - encodes it, and writes it to Redis as the last
   step of the product: a failure before leaves no cache entry.
   A format that renders from another (a PNG preview from the DP1 FITS)
   is rendered from that product's cached bytes instead, when they are
   there: the same bytes, without a recreation; and a recreated FITS
   product gets its zscale preview cached beside it (its companion);
4. returns small metadata only. The bytes cross the scheduler only when
   the cache is down (degraded mode), so the request is still served.

Errors are classified here, in one place: a deterministic failure of
the data (no template, no kernel: a 4xx) comes back as the result's
``failure``, logged at INFO; the project's other errors pass through
(transient ones are retried by the broker);
an ``OSError`` while reading inputs is transient; anything else becomes a
`ProcessingError` whose message names the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from cache import CacheUnavailableError, CorruptValueError
from recreate import __version__
from recreate.errors import (
    FormatError,
    KernelFitError,
    ProcessingError,
    RecreateError,
    TransientError,
)
from recreate.formats import companions, get_format
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.subtract import DifferenceResult
from recreate.recreation import product_key, recreate_from_inputs
from recreate.solution import solution_bytes
from workers.models import PRODUCT, TaskResult, TaskSpec
from workers.solution_tasks import (
    MAX_LOCK_WAITS,
    cached_result,
    identity_meta,
    keep_solution,
    product_from_solution,
    run_solution_task,
    stored_solution,
)
from workers.state import WorkerState, worker_state

log = logging.getLogger(__name__)

#: Name of the counter of recomputes in the control store.
RECOMPUTES_COUNTER = "recomputes"


def recreate_task(spec: TaskSpec) -> TaskResult:
    """Recreate one product on a Dask worker and cache it.

    Parameters
    ----------
    spec
        The product to make, with its inputs, recipe and key.

    Returns
    -------
    TaskResult
        The product's metadata; its ``failure`` when the data admit no
        difference image (`NoOverlapError`, `KernelFitError`).

    Raises
    ------
    TransientError
        A failure worth retrying (inputs unreadable, a worker of another
        version, a worker without the cache configuration yet).
    ProcessingError
        Anything else, with the key in its message.
    """
    started = time.perf_counter()
    try:
        state = worker_state(spec.cache_id)
        return _recreate(spec, state, started)
    except RecreateError as error:
        if error.user_facing and not error.transient:
            return _failed(spec, error, started)
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


def _failed(
    spec: TaskSpec, error: RecreateError, started: float
) -> TaskResult:
    """Return a deterministic failure (no template, no kernel) as a result.

    The data's verdict, not a fault: logged at INFO without a traceback,
    and returned rather than raised, so that Dask does not log it as a
    failed computation either. The broker raises it for the caller.
    """
    if isinstance(error, KernelFitError):
        error = KernelFitError(
            f"no PSF-matching kernel for {spec.describe()}: {error}"
        )
    log.info("%s: %s: %s", spec.describe(), error.code, error)
    return TaskResult(
        product_key=spec.product_key,
        sha256="",
        size=0,
        computed=False,
        seconds=time.perf_counter() - started,
        failure=error,
    )


def _recreate(
    spec: TaskSpec, state: WorkerState, started: float
) -> TaskResult:
    """Do the task's work; see `recreate_task`."""
    wanted = spec.recipe["code_version"]
    if wanted != __version__:
        raise TransientError(
            f"{spec.describe()} was keyed for code version {wanted}; this "
            f"worker runs {__version__}"
        )
    if spec.kind != PRODUCT:
        return run_solution_task(spec, state, started)
    for _ in range(MAX_LOCK_WAITS):
        cached = cached_result(spec, state, started)
        if cached is not None:
            return cached
        with state.cache.single_flight(
            spec.product_key, state.lock_wait_seconds
        ) as held:
            if held:
                return _compute(spec, state, started)
    raise TransientError(
        f"another worker held the lock on {spec.describe()} for too long"
    )


def _compute(spec: TaskSpec, state: WorkerState, started: float) -> TaskResult:
    """Recreate, encode and cache the product (written once it is whole).

    From the stored solution when there is one (and the format needs no
    more); else recreated, and then its solution stored too (any region
    of it is then a render).
    """
    rendered = _render_from_source(spec, state, started)
    if rendered is not None:
        return rendered
    # A triplet preview shows the science and warped template too: those
    # come from a recreation only.
    stored_one = (
        None
        if spec.output_format.needs_inputs
        else stored_solution(state, spec)
    )
    if stored_one is not None:
        result = product_from_solution(spec, stored_one)
    else:
        kernel = _stored_kernel(state, spec.recipe_hash)
        result = recreate_from_inputs(
            spec.inputs, config=spec.config, kernel=kernel
        )
    data = spec.output_format.to_bytes(result)
    meta = _product_meta(spec, result, started)
    stored = state.cache.put(spec.product_key, data, meta)
    if stored is not None:
        # Counted right after the write that makes the product exist.
        state.cache.count(RECOMPUTES_COUNTER)
        state.cache.keep_kernel(
            spec.recipe_hash, json.dumps(result.kernel.to_dict())
        )
        _cache_companions(spec, result, state, meta)
    if stored_one is None and result.solution is not None:
        keep_solution(state, spec, solution_bytes(result.solution))
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


def _cache_companions(
    spec: TaskSpec,
    result: DifferenceResult,
    state: WorkerState,
    meta: dict[str, Any],
) -> None:
    """Cache the products kept beside this one (its zscale preview).

    Each is whole before it is written, and a failure here is logged,
    never the task's: the product asked for is already cached.
    """
    for fmt in companions(spec.output_format.name):
        try:
            data = fmt.to_bytes(result)
            state.cache.put(
                product_key(spec.recipe, fmt),
                data,
                {**meta, "format": fmt.name},
            )
        except Exception:  # a companion never fails the task; logged
            log.exception(
                "caching the %s beside %s failed", fmt.name, spec.describe()
            )


def _render_from_source(
    spec: TaskSpec, state: WorkerState, started: float
) -> TaskResult | None:
    """Render the product from a source format's cached bytes, if any.

    None when the format has no source or none is cached (or it breaks
    while read): then the product is recreated.
    """
    fmt = spec.output_format
    for name in fmt.sources:
        source_key = product_key(spec.recipe, get_format(name))
        data = _cached_bytes(state, source_key)
        if data is None:
            continue
        try:
            payload = fmt.from_source(data)
        except FormatError:
            log.warning("cached %s of %s unreadable", name, spec.describe())
            continue
        manifest = state.cache.head(source_key)
        meta = dict(manifest.meta) if manifest is not None else {}
        meta.update(
            format=fmt.name,
            rendered_from=name,
            recompute_seconds=round(time.perf_counter() - started, 3),
        )
        stored = state.cache.put(spec.product_key, payload, meta)
        return TaskResult(
            product_key=spec.product_key,
            sha256=(
                stored.sha256
                if stored
                else hashlib.sha256(payload).hexdigest()
            ),
            size=len(payload),
            computed=True,
            seconds=time.perf_counter() - started,
            meta=meta,
            worker=state.address,
            payload=None if stored else payload,
        )
    return None


def _cached_bytes(state: WorkerState, key: str) -> bytes | None:
    """Return a cached product's whole bytes, or None (a miss)."""
    value = state.cache.open(key)
    opened = state.cache.start_reading(value) if value is not None else None
    if opened is None:
        return None
    try:
        return opened.first + b"".join(opened.rest)
    except (CorruptValueError, CacheUnavailableError):
        return None


def _product_meta(
    spec: TaskSpec, result: DifferenceResult, started: float
) -> dict[str, Any]:
    """Return the metadata kept with a cached product (becomes headers)."""
    return {
        **identity_meta(spec),
        "planes_sha256": result.exposure.metadata.get(
            "RECREATE PLANES SHA256", ""
        ),
        "template_coverage": result.provenance.template_coverage,
        "kernel_from_storage": result.provenance.kernel_from_storage,
        "recompute_seconds": round(time.perf_counter() - started, 3),
    }


def _stored_kernel(state: WorkerState, rhash: str) -> SolvedKernel | None:
    """Return a kernel stored by an earlier recreation of this recipe."""
    text = state.cache.kernel(rhash)
    if text is None:
        return None
    return SolvedKernel.from_dict(json.loads(text))
