"""Small regions rendered in processes of the API's own, beside its lock.

A stamp's render is mostly numpy, zlib, FFTs and compiled kernels, but
its reading of headers, WCSs and FITS cards is Python: in the API's own
thread pool it holds the interpreter lock that the API's request
handling, Butler lookups and solution loads need too. Measured on the
2-core machine (README, "Light curves"), a light curve of never-seen
epochs kept the API process at 1.2 cores and the machine a third idle;
rendered in processes of their own, the machine is busy and the light
curve faster.

`RenderProcesses` keeps ``processes`` spawned processes, started and
warmed (imports, compiled kernels) with the API, so a first stamp pays
none of that. A render alone uses the machine's cores (its tiles and
warp on threads, as in the API's pool); renders side by side share them
(``cores // renders in flight`` threads each; one each under a light
curve's load, where the parallelism is across processes). The thread
count changes no value. A render in one gives the bytes the API's threads give
(`workers.solution_tasks.render_region`: the same code, the same
inputs).

A process that dies (killed, out of memory) breaks the pool: it is
replaced, and the render tried once more on the new one.

What a process keeps (parsed headers, decoded rows, kernel bases) it
drops when the API forgets (`RenderProcesses.forget`): each call carries
the API's generation, and a process that sees a new one forgets the
visit images it reads again, as the API's own pool would.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from recreate.butler import DiffimInputs
from recreate.errors import ProcessingError
from recreate.numerics.box import PixelBox
from recreate.numerics.threads import ENV_VAR as THREADS_ENV_VAR
from recreate.solution import Solution
from workers.models import TaskSpec

__all__ = ["KeyedSolution", "RenderProcesses", "keyed_solution"]

#: A checked solution and the SHA-256 (hex) of its stored bytes.
type KeyedSolution = tuple[str, Solution]

log = logging.getLogger(__name__)

#: Longest a process's warm-up waits for the others' (spawn, imports,
#: kernels loaded).
_WARM_UP_SECONDS = 300.0


@dataclass
class RenderProcesses:
    """A pool of render processes (spawned, one thread each).

    Parameters
    ----------
    processes
        How many.
    input_cache_bytes
        Decoded input rows each process keeps
        (`recreate.io.input_cache.configure_input_cache`).
    """

    processes: int
    input_cache_bytes: int
    cores: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    _pool: ProcessPoolExecutor | None = field(default=None, init=False)
    _generation: int = field(default=0, init=False)
    _inflight: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def start(self) -> None:
        """Spawn and warm every process (imports, compiled kernels).

        Each warm-up call waits for all the others to arrive, so every
        process gets one.
        """
        with self._lock:
            if self._pool is not None:
                return
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=context,
                initializer=_initialise,
                initargs=(
                    self.input_cache_bytes,
                    context.Barrier(self.processes),
                ),
            )
            warmed = [self._pool.submit(_warm) for _ in range(self.processes)]
        pids = {future.result() for future in warmed}
        if len(pids) != self.processes:  # pragma: no cover - a barrier bug
            msg = f"{len(pids)} of {self.processes} render processes warmed"
            raise RuntimeError(msg)

    async def render(
        self, spec: TaskSpec, solution: KeyedSolution, box: PixelBox
    ) -> bytes:
        """Render a box in one of the processes; return its bytes.

        ``solution`` is the stored solution the API has parsed and
        checked against ``spec`` (`workers.solution_tasks.verified_solution`),
        named by the SHA-256 of its bytes: it travels pickled (its fields
        only, a few tens of kB: no FITS parse in the process), and a
        process keeps the first copy of each, with its tile engine, for
        the detector's next stamps. A pool whose
        process died (killed, out of memory) is replaced and the render
        tried once more on the new one (started off the event loop).

        Raises
        ------
        ProcessingError
            If a render process died on this render twice.
        """
        for attempt in (1, 2):
            pool = self._pool
            if pool is None:
                await asyncio.to_thread(self.start)
                pool = self._pool
            if pool is None:  # pragma: no cover - closed meanwhile
                raise ProcessingError("the render processes are closed")
            try:
                return await asyncio.wrap_future(
                    self._submit(pool, spec, solution, box)
                )
            except BrokenProcessPool:
                log.warning(
                    "a render process died rendering %s (try %d of 2)",
                    spec.describe(),
                    attempt,
                )
                self._discard(pool)
        msg = f"a render process died twice rendering {spec.describe()}"
        raise ProcessingError(msg)

    def _submit(
        self,
        pool: ProcessPoolExecutor,
        spec: TaskSpec,
        solution: KeyedSolution,
        box: PixelBox,
    ) -> Future[bytes]:
        """Send one render to ``pool``, counted in flight until done."""
        with self._lock:
            generation = self._generation
            self._inflight += 1
            threads = max(1, self.cores // self._inflight)
        try:
            future = pool.submit(
                _render, (generation, threads), spec, solution, box
            )
        except BaseException:
            self._done()
            raise
        future.add_done_callback(lambda _: self._done())
        return future

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Drop a broken pool (the next render starts a new one)."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def _done(self) -> None:
        """Count a render out."""
        with self._lock:
            self._inflight -= 1

    def forget(self) -> None:
        """Have every process drop what it keeps of the visit images."""
        with self._lock:
            self._generation += 1

    def close(self) -> None:
        """Stop the processes (renders running finish first)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


# What runs in a render process.

#: Visit images a process remembers having read (to forget them): more
#: than the files whose headers it keeps (`recreate.io.image_file`).
_REMEMBERED = 1024

#: Parsed solutions a process keeps (a few MB each with their engines).
_SOLUTIONS_KEPT = 16


@dataclass
class _ProcessState:
    """A render process's own: the warm-up barrier, what it has read."""

    barrier: threading.Barrier | None = None
    generation: int = 0
    read: OrderedDict[str, DiffimInputs] = field(default_factory=OrderedDict)
    solutions: OrderedDict[str, Solution] = field(default_factory=OrderedDict)


_state = _ProcessState()


def _initialise(input_cache_bytes: int, barrier: threading.Barrier) -> None:
    """Set a render process up: the API's input cache, the barrier."""
    from recreate.io.input_cache import configure_input_cache

    configure_input_cache(input_cache_bytes)
    _state.barrier = barrier


def _warm() -> int:
    """Import what a render needs and load its compiled kernels.

    Waits for every other process's warm-up (so each gets one).
    """
    from recreate.pipeline.warmup import warm_up

    warm_up()
    if _state.barrier is not None:
        _state.barrier.wait(timeout=_WARM_UP_SECONDS)
    return os.getpid()


def _render(
    call: tuple[int, int],
    spec: TaskSpec,
    solution: KeyedSolution,
    box: PixelBox,
) -> bytes:
    """Render a box, first forgetting what an older generation read.

    ``call``: the API's generation, and the threads this render takes.
    """
    from recreate.pipeline.kernel.basis import forget_bases
    from recreate.solution import forget_visit_image
    from workers.solution_tasks import render_region

    generation, threads = call
    os.environ[THREADS_ENV_VAR] = str(threads)
    if generation != _state.generation:
        for found in _state.read.values():
            forget_visit_image(found)
        _state.read.clear()
        _state.solutions.clear()
        forget_bases()
        _state.generation = generation
    _kept(_state.read, spec.inputs.visit_image.uri, spec.inputs, _REMEMBERED)
    return render_region(spec, _kept_solution(solution), box)


def _kept_solution(solution: KeyedSolution) -> Solution:
    """Return this process's copy of a solution (its engine built once)."""
    key, sent = solution
    kept = _state.solutions.get(key, sent)
    _kept(_state.solutions, key, kept, _SOLUTIONS_KEPT)
    return kept


def keyed_solution(solution: Solution, data: bytes) -> KeyedSolution:
    """Return a checked solution named by its bytes' SHA-256."""
    return hashlib.sha256(data).hexdigest(), solution


def _kept[T](kept: OrderedDict[str, T], key: str, value: T, most: int) -> None:
    """Keep ``value`` as the most recent of at most ``most``."""
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > most:
        kept.popitem(last=False)
