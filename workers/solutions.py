"""Solutions on the API's side: found once, solved once, kept at hand.

The region face (`workers.regions`), the solution route and campaigns
of solutions ask this service for a key's solution. For one request it

1. resolves the inputs (one Butler lookup, which the region face's
   geometry shares: `find_inputs`) and the recipe, and remembers both
   in this process for ``recipe_index_ttl_seconds`` (a stamp must not
   pay a Butler lookup; a new template is seen within that time, as
   with the recipe index);
2. answers from the last ``solution_memory_entries`` solutions it used,
   parsed and checked (a few MB each with their tile engines);
3. otherwise reads the stored solution (the hot copy in Redis, else the
   durable store) and checks it (`verified_solution`): one that fails is
   dropped from both tiers and solved again, never served;
4. otherwise submits one solve through the broker (a `SOLUTION` task,
   `workers.solution_tasks`) and waits up to the sync timeout; past it,
   the answer is a job (`Pending`), and the solve goes on.

Every concurrent request for one recipe waits for the same asyncio task
(steps 3-4), so 50 stamps of an unsolved detector make one solve; the
Dask key and the lock in Redis cover other API processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from recreate.butler import DiffimInputs
from recreate.errors import (
    FormatError,
    ProcessingError,
    SolutionMismatchError,
    TransientError,
    error_class,
)
from recreate.solution import Solution
from workers.broker import INTERACTIVE
from workers.campaign_recovery import solution_entry
from workers.models import ProductRequest, TaskResult, TaskSpec
from workers.product_answers import Ensured, Pending
from workers.products import ProductService
from workers.solution_tasks import solution_spec, verified_solution

log = logging.getLogger(__name__)

#: Resolved requests remembered in one process.
SPECS_KEPT = 4096


@dataclass(frozen=True)
class FoundSolution:
    """A checked solution, its bytes, and where it was found.

    Attributes
    ----------
    solution
        The solution, checked against the request's inputs and recipe.
    data
        Its FITS bytes (what the store holds).
    source
        ``memory`` (this process had it), ``cache`` (Redis), ``store``
        (the durable store) or ``solved`` (solved for this request).
    """

    solution: Solution
    data: bytes
    source: str

    @property
    def was_stored(self) -> bool:
        """Whether the solution existed before this request."""
        return self.source != "solved"


@dataclass
class SolutionService:
    """Stored solutions for requests; one solve per unsolved recipe.

    Parameters
    ----------
    products
        The product service (Butler, cache, broker, jobs).
    memory_entries
        Parsed solutions kept in this process.
    """

    products: ProductService
    memory_entries: int = 64
    _memory: OrderedDict[str, FoundSolution] = field(
        default_factory=OrderedDict
    )
    _loading: dict[str, asyncio.Task[FoundSolution | None]] = field(
        default_factory=dict
    )
    _solves: dict[str, asyncio.Task[FoundSolution]] = field(
        default_factory=dict
    )
    _solving: dict[str, tuple[TaskSpec, asyncio.Task[TaskResult]]] = field(
        default_factory=dict
    )
    _specs: dict[tuple[object, ...], tuple[float, TaskSpec]] = field(
        default_factory=dict
    )
    _found: dict[tuple[str | None, int, int], tuple[float, DiffimInputs]] = (
        field(default_factory=dict)
    )

    async def find_inputs(self, request: ProductRequest) -> DiffimInputs:
        """Return the request's inputs from the Butler, remembered a while.

        The region face asks for them twice on a detector's first stamp
        (its geometry, then its recipe): one Butler lookup serves both,
        for ``recipe_index_ttl_seconds`` as the resolved specs are.

        Raises
        ------
        DataNotFoundError, NoOverlapError, InvalidRequestError
            The Butler's answer for an unknown or uncovered key.
        """
        instrument = request.instrument or self.products.settings.instrument
        key = (instrument, request.visit, request.detector)
        now = time.monotonic()
        remembered = self._found.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        found = await asyncio.to_thread(
            self.products.butler.find_inputs,
            request.visit,
            request.detector,
            instrument,
        )
        lifetime = self.products.settings.recipe_index_ttl_seconds
        if lifetime > 0:
            if len(self._found) >= SPECS_KEPT:
                self._found.clear()
            self._found[key] = (now + lifetime, found)
        return found

    async def resolve(self, request: ProductRequest) -> TaskSpec:
        """Return the request's spec, remembered for a while.

        Raises
        ------
        DataNotFoundError, NoOverlapError, InvalidRequestError
            The Butler's answer for an unknown or uncovered key.
        """
        settings = self.products.settings
        key = (
            request.instrument or settings.instrument,
            request.visit,
            request.detector,
            request.recipe or settings.recipe,
            request.output_format.name,
        )
        now = time.monotonic()
        remembered = self._specs.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        found = await self.find_inputs(request)
        spec = self.products.spec_of(request, found)
        lifetime = settings.recipe_index_ttl_seconds
        if lifetime > 0:
            if len(self._specs) >= SPECS_KEPT:
                self._specs.clear()
            self._specs[key] = (now + lifetime, spec)
        return spec

    async def get(
        self,
        spec: TaskSpec,
        *,
        url: str = "",
        priority: int = INTERACTIVE,
        before_solve: Callable[[], Awaitable[None]] | None = None,
    ) -> FoundSolution | Pending:
        """Return the key's solution: kept, stored, or solved now.

        A `Pending` (a job) when the solve outlives the sync timeout.
        ``before_solve`` is awaited before a solve starts (not when one
        is joined): a face charges its caller's recompute budget there
        (and may raise).

        Raises
        ------
        NoOverlapError, KernelFitError
            The recipe's deterministic failure, now or remembered
            (nothing is stored then).
        ProcessingError
            If the solve fails otherwise.
        OverloadedError, ServiceUnavailableError
            No room in flight, or no scheduler.
        """
        recipe_hash = spec.recipe_hash
        kept = self._memory.get(recipe_hash)
        if kept is not None:
            self._memory.move_to_end(recipe_hash)
            return FoundSolution(kept.solution, kept.data, "memory")
        found = await _joined(
            self._loading,
            recipe_hash,
            lambda: asyncio.to_thread(self._load, spec),
        )
        if found is None:
            failure = await asyncio.to_thread(
                self.products.cache.known_failure, recipe_hash
            )
            if failure is not None:
                raise error_class(failure["code"])(failure["message"])
            solving = _joined(
                self._solves,
                recipe_hash,
                lambda: self._solve(spec, priority, before_solve),
            )
            timeout = self.products.settings.sync_timeout_seconds
            try:
                found = await asyncio.wait_for(solving, timeout)
            except TimeoutError:
                return self._pending(spec, url)
        self._keep(recipe_hash, found)
        return found

    async def ensure(
        self, request: ProductRequest, *, priority: int
    ) -> Ensured:
        """Make sure a key's solution is stored; say who solved it.

        For campaigns of solutions: a stored solution is only looked
        for, not read (the task checks it when it runs). The key a
        campaign records is `solution_entry` of the recipe hash.

        Raises
        ------
        NoOverlapError, KernelFitError
            The recipe's deterministic failure, now or remembered.
        """
        spec = await self.resolve(request)
        entry = solution_entry(spec.recipe_hash)
        stored = await asyncio.to_thread(
            self.products.cache.solutions_present, [spec.recipe_hash]
        )
        if stored == [True]:
            return Ensured(entry, computed=False)
        failure = await asyncio.to_thread(
            self.products.cache.known_failure, spec.recipe_hash
        )
        if failure is not None:
            raise error_class(failure["code"])(failure["message"])
        result = await self.products.broker.start(
            solution_spec(spec), priority=priority
        )
        return Ensured(entry, computed=result.computed)

    def forget(self) -> None:
        """Drop what this process keeps (solutions and resolved specs)."""
        self._memory.clear()
        self._specs.clear()
        self._found.clear()

    def remembered_inputs(self) -> list[DiffimInputs]:
        """Return the inputs this process remembers (found, not expired)."""
        return [found for _, found in self._found.values()]

    def _keep(self, recipe_hash: str, found: FoundSolution) -> None:
        """Keep a solution in this process (the least recent leaves)."""
        self._memory[recipe_hash] = found
        self._memory.move_to_end(recipe_hash)
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)

    def _load(self, spec: TaskSpec) -> FoundSolution | None:
        """Return the stored solution, checked (a bad one is dropped).

        A bad hot copy is dropped and the durable store read next: its
        file may be good (a copy damaged in Redis costs a read, not a
        solve). A bad file is dropped too, and then there is none.
        """
        cache = self.products.cache
        for _ in range(2):
            stored = cache.solution(spec.recipe_hash)
            if stored is None:
                return None
            data, tier = stored
            try:
                solution = verified_solution(data, spec)
            except (FormatError, SolutionMismatchError) as error:
                log.warning(
                    "stored solution of %s (%s): %s",
                    spec.describe(),
                    tier,
                    error,
                )
                cache.drop_solution(spec.recipe_hash, data)
                if tier != "cache":
                    return None
                continue
            return FoundSolution(solution, data, tier)
        return None

    async def _solve(
        self,
        spec: TaskSpec,
        priority: int,
        before_solve: Callable[[], Awaitable[None]] | None,
    ) -> FoundSolution:
        """Solve through the broker (one task per recipe) and check it.

        Only the request that starts the solve pays for it (awaits
        ``before_solve``): the others join it, and share its answer, a
        429 included (50 stamps of one detector: one charge).
        """
        if before_solve is not None:
            await before_solve()
        task_spec = solution_spec(spec)
        task = self.products.broker.start(task_spec, priority=priority)
        self._solving[spec.recipe_hash] = (task_spec, task)
        try:
            result = await asyncio.shield(task)
        finally:
            self._solving.pop(spec.recipe_hash, None)
        if result.payload is None:
            raise ProcessingError(
                f"the solve of {spec.describe()} returned no solution"
            )
        data = result.payload
        try:
            solution = await asyncio.to_thread(verified_solution, data, spec)
        except (FormatError, SolutionMismatchError) as error:
            raise ProcessingError(
                f"the solve of {spec.describe()} returned a solution that "
                f"fails its checks: {error}"
            ) from None
        return FoundSolution(
            solution, data, "solved" if result.computed else "store"
        )

    def _pending(self, spec: TaskSpec, url: str) -> Pending:
        """Return the job of a solve that outlived the sync timeout."""
        solving = self._solving.get(spec.recipe_hash)
        if solving is None:
            raise TransientError(
                f"the solution of {spec.describe()} could not be read "
                "within the sync timeout; ask again"
            )
        task_spec, task = solving
        record = self.products.jobs.open(task_spec, url, task)
        return Pending(task_spec.product_key, record)


async def _joined[T](
    tasks: dict[str, asyncio.Task[T]],
    key: str,
    start: Callable[[], Coroutine[Any, Any, T]],
) -> T:
    """Await the task in flight under ``key``, or start it.

    Every caller of one key waits for the same task (single flight in
    this process); a caller that gives up (a timeout, a closed
    connection) leaves it running for the others.
    """
    task = tasks.get(key)
    if task is None:
        task = asyncio.create_task(start())
        tasks[key] = task
        task.add_done_callback(lambda _: tasks.pop(key, None))
    return await asyncio.shield(task)
