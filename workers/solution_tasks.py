"""Solutions and regions on a Dask worker, and what the API shares.

A key's **solution** (`recreate.solution`) is stored once, by its recipe
hash, in the durable store with a hot copy in Redis
(`cache.ResilientCache.solution`). Three kinds of task use it
(`workers.models.TaskSpec.kind`):

``solution``
    Make sure the solution is stored: read it (checked), or take the
    single-flight lock on the solve and solve, then store it durably
    and in Redis. The bytes (tens of kilobytes) come back in the
    result, so the API needs no second read. 50 requests on one
    unsolved detector make one solve: the API joins them in one task,
    the Dask key joins brokers while it is queued, and the lock (taken
    inside the task, the store checked again under it) covers the rest.
``region``
    A box too large to render in the API process: the solution (stored
    or solved as above), then the render of the box, cached under the
    region's key like a product.
``product``
    (`workers.tasks`) renders the whole detector from a stored solution
    when there is one (no refit), and stores the solution of every
    recreation it makes.

Every solution read from a store is checked before use
(`verified_solution`): its checksums (`solution_from_bytes`), and that
it is of the request's inputs, recipe, configuration and code version
(`Solution.check_inputs`). One that fails is dropped from both tiers and
solved again; it is never rendered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from typing import Any

from recreate import __version__
from recreate.errors import (
    FormatError,
    InvalidRequestError,
    SolutionMismatchError,
    TransientError,
)
from recreate.inputs import butler_refs, read_butler_inputs
from recreate.numerics.box import PixelBox
from recreate.pipeline.provenance import canonical_hash
from recreate.pipeline.result import DifferenceResult
from recreate.solution import (
    Solution,
    read_inputs_for_box,
    read_inputs_whole,
    render,
    render_full,
    render_triplet,
    rendered_result,
    solution_bytes,
    solution_from_bytes,
    solve,
    triplet_result,
)
from workers.models import REGION, SOLUTION, TaskResult, TaskSpec
from workers.state import WorkerState

log = logging.getLogger(__name__)

#: Name of the counter of solves in the control store.
SOLVES_COUNTER = "solves"
#: How many times a task waits for another holder before giving up.
MAX_LOCK_WAITS = 3


def solution_key(recipe_hash: str) -> str:
    """Return the key of a recipe's solve (its lock, job and Dask key)."""
    return canonical_hash({"solution_of": recipe_hash})


def region_key(spec: TaskSpec, box: PixelBox) -> str:
    """Return the cache key of a region: the product's key and the box."""
    return canonical_hash(
        {"product": spec.product_key, "box": [int(v) for v in box]}
    )


def solution_spec(spec: TaskSpec) -> TaskSpec:
    """Return the task that makes sure ``spec``'s solution is stored."""
    return dataclasses.replace(
        spec, kind=SOLUTION, product_key=solution_key(spec.recipe_hash)
    )


def region_spec(spec: TaskSpec, box: PixelBox) -> TaskSpec:
    """Return the task that renders (and caches) a region of ``spec``."""
    return dataclasses.replace(
        spec, kind=REGION, box=box, product_key=region_key(spec, box)
    )


def verified_solution(data: bytes, spec: TaskSpec) -> Solution:
    """Return a stored solution once it is checked against the request.

    Raises
    ------
    FormatError
        If its bytes are corrupt (a checksum fails) or not a solution.
    SolutionMismatchError
        If it is of other inputs, recipe, configuration or code.
    """
    solution = solution_from_bytes(data, f"solution {spec.recipe_hash[:12]}")
    solution.check_inputs(spec.config, butler_refs(spec.inputs))
    # check_inputs compared the configuration hashes: the request's
    # configuration is the solution's (it may be one made for a test).
    return dataclasses.replace(solution, solved_with=spec.config)


def stored_solution(state: WorkerState, spec: TaskSpec) -> Solution | None:
    """Return the key's stored solution, checked; None if there is none.

    A solution that fails its checks is dropped from both tiers.
    """
    found = state.cache.solution(spec.recipe_hash)
    if found is None:
        return None
    data, _ = found
    try:
        return verified_solution(data, spec)
    except (FormatError, SolutionMismatchError) as error:
        log.warning("stored solution of %s: %s", spec.describe(), error)
        state.cache.drop_solution(spec.recipe_hash, data)
        return None


def keep_solution(state: WorkerState, spec: TaskSpec, data: bytes) -> None:
    """Store a new solution, durably first (a warning if it is not)."""
    if not state.cache.keep_solution(spec.recipe_hash, data):
        log.warning(
            "the solution of %s is not stored durably", spec.describe()
        )


def run_solution_task(
    spec: TaskSpec, state: WorkerState, started: float
) -> TaskResult:
    """Do a `SOLUTION` or `REGION` task; see the module's docstring."""
    solution, data, computed = _ensure_solution(spec, state)
    if spec.kind == SOLUTION:
        return _result(spec, state, started, data, computed, payload=data)
    return _region(spec, state, started, solution, solved=computed)


def solve_spec(spec: TaskSpec) -> Solution:
    """Read the key's inputs and solve (no render).

    Raises
    ------
    NoOverlapError, ProcessingError
        As the solve raises them.
    """
    inputs = read_butler_inputs(spec.inputs, config=spec.config)
    return solve(
        inputs.science,
        inputs.templates,
        config=spec.config,
        inputs=inputs.refs,
    ).solution


def render_region(spec: TaskSpec, solution: Solution, box: PixelBox) -> bytes:
    """Render a box (inside the detector) in the request's format.

    Only what the box needs of the inputs is read. A format that shows
    the science and template too (the triplet previews) gets them from
    the same render: the science window it read, the template it warped.
    """
    if box.empty:
        raise InvalidRequestError(f"the box {tuple(box)} holds no pixel")
    inputs = read_inputs_for_box(spec.inputs, solution, box)
    if spec.output_format.needs_inputs:
        triplet = render_triplet(solution, inputs, box)
        return spec.output_format.to_bytes(
            triplet_result(solution, triplet, inputs)
        )
    region = render(solution, inputs, box)
    return spec.output_format.to_bytes(
        rendered_result(solution, region, inputs)
    )


def product_from_solution(
    spec: TaskSpec, solution: Solution
) -> DifferenceResult:
    """Render the whole detector from a stored solution (no refit)."""
    inputs = read_inputs_whole(spec.inputs, spec.config)
    exposure = render_full(solution, inputs)
    return rendered_result(solution, exposure, inputs)


def region_meta(spec: TaskSpec, box: PixelBox) -> dict[str, Any]:
    """Return the metadata of a region (becomes its headers)."""
    return {**identity_meta(spec), "box": _corners(box)}


def identity_meta(spec: TaskSpec) -> dict[str, Any]:
    """Return what names a product and how it was made (its headers).

    Shared by full products and regions: key, format, recipe, config
    hash, code version and input dataset ids.
    """
    return {
        "instrument": spec.instrument,
        "visit": spec.visit,
        "detector": spec.detector,
        "format": spec.output_format.name,
        "recipe": spec.config.recipe,
        "recipe_hash": spec.recipe_hash,
        "config_hash": spec.recipe["config_hash"],
        "code_version": __version__,
        "input_ids": [entry["id"] for entry in spec.recipe["inputs"]],
    }


def _corners(box: PixelBox) -> str:
    """Return ``X0,Y0,X1,Y1`` (X1 and Y1 exclusive)."""
    return f"{box.x0},{box.y0},{box.x0 + box.width},{box.y0 + box.height}"


def _ensure_solution(
    spec: TaskSpec, state: WorkerState
) -> tuple[Solution, bytes, bool]:
    """Return the stored solution, or solve it once across the cluster.

    Returns the solution, its bytes and whether this task solved it.
    """
    lock_key = solution_key(spec.recipe_hash)
    for _ in range(MAX_LOCK_WAITS):
        stored = stored_solution(state, spec)
        if stored is not None:
            return stored, solution_bytes(stored), False
        with state.cache.single_flight(
            lock_key, state.lock_wait_seconds
        ) as held:
            if not held:
                continue
            # Another holder may have stored it just before we locked.
            stored = stored_solution(state, spec)
            if stored is not None:
                return stored, solution_bytes(stored), False
            solution = solve_spec(spec)
            data = solution_bytes(solution)
            keep_solution(state, spec, data)
            state.cache.count(SOLVES_COUNTER)
            return solution, data, True
    raise TransientError(
        f"another worker held the solve of {spec.describe()} for too long"
    )


def cached_result(
    spec: TaskSpec, state: WorkerState, started: float
) -> TaskResult | None:
    """Return the result of a product already cached, if it is.

    A full product or a region: nothing was computed for it.
    """
    manifest = state.cache.head(spec.product_key)
    if manifest is None:
        return None
    return TaskResult(
        product_key=spec.product_key,
        sha256=manifest.sha256,
        size=manifest.size,
        computed=False,
        seconds=time.perf_counter() - started,
        meta=dict(manifest.meta),
        worker=state.address,
    )


def _region(
    spec: TaskSpec,
    state: WorkerState,
    started: float,
    solution: Solution,
    *,
    solved: bool,
) -> TaskResult:
    """Render a region, cache it under its key, return its metadata.

    ``computed`` says whether the solution was solved for it: a render
    from a stored solution is a hit, as in the API's own pool.
    """
    if spec.box is None:
        raise InvalidRequestError(
            f"a region task of {spec.describe()} has no box"
        )
    cached = cached_result(spec, state, started)
    if cached is not None:
        return cached
    data = render_region(spec, solution, spec.box)
    meta = {
        **region_meta(spec, spec.box),
        "solution": "solved" if solved else "store",
    }
    stored = state.cache.put(spec.product_key, data, meta)
    return _result(
        spec,
        state,
        started,
        data,
        computed=solved,
        payload=None if stored else data,
        meta=meta,
    )


def _result(
    spec: TaskSpec,
    state: WorkerState,
    started: float,
    data: bytes,
    computed: bool,
    *,
    payload: bytes | None,
    meta: dict[str, Any] | None = None,
) -> TaskResult:
    """Return a task's small result (and bytes where asked)."""
    return TaskResult(
        product_key=spec.product_key,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        computed=computed,
        seconds=time.perf_counter() - started,
        meta=meta or {"recipe_hash": spec.recipe_hash},
        worker=state.address,
        payload=payload,
    )
