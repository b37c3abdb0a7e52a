"""The broker: one Dask task per product, shared by every request for it.

The broker runs in the API's event loop. For a product key it keeps one
asyncio task that submits the Dask task, waits for it, retries transient
failures, and records the outcome; every request for the same key awaits
that one asyncio task, so 16 simultaneous requests cause one recompute.
The Dask key is derived from the product key too, so brokers in other
processes attach to the same Dask task while it is queued, and the
single-flight lock in Redis (taken inside the task) covers the rest.

Dask priorities order queued work only and are never raised for a key
already queued, so interactive requests (priority +10) and background
work (-10) use different key prefixes: a background task never holds
back an interactive request for the same product.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from recreate.errors import (
    OverloadedError,
    ProcessingError,
    RecreateError,
    ServiceUnavailableError,
)
from workers.models import TaskResult, TaskSpec
from workers.state import RecreateWorkerPlugin, WorkerNotReadyError
from workers.tasks import recreate_task

log = logging.getLogger(__name__)

#: Dask priority of a request a user waits for.
INTERACTIVE = 10
#: Dask priority of prewarming work.
BACKGROUND = -10

#: Error types of `distributed` meaning "the cluster lost this task".
_LOST_TASK = ("FutureCancelledError", "CancelledError")

Connect = Callable[[], Awaitable[Any]]


@dataclass
class Outcome:
    """What one product's asyncio task ended with (for job records)."""

    result: TaskResult | None = None
    error: RecreateError | None = None
    finished: float = 0.0


@dataclass
class Broker:
    """Submit products to Dask, once each, and wait for them.

    Parameters
    ----------
    connect
        Coroutine function returning a connected asynchronous
        `distributed.Client` (called again after the scheduler is lost).
    plugin
        The worker plugin carrying the cache configuration: registered
        on every connection, and again when a worker has not got it.
    max_inflight
        Products in flight before new ones are refused (503).
    retries
        Resubmissions of a product that failed transiently.
    on_done
        Called with (spec, outcome) when a product finishes: job records
        and metrics.
    """

    connect: Connect
    plugin: RecreateWorkerPlugin | None = None
    max_inflight: int = 64
    retries: int = 2
    on_done: Callable[[TaskSpec, Outcome], None] | None = None
    _client: Any = None
    _client_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _inflight: dict[tuple[str, str], asyncio.Task[TaskResult]] = field(
        default_factory=dict
    )

    @property
    def inflight(self) -> int:
        """Number of interactive products being computed."""
        return sum(
            1 for _, lane in self._inflight if lane == _lane(INTERACTIVE)
        )

    def start(
        self, spec: TaskSpec, *, priority: int = INTERACTIVE
    ) -> asyncio.Task[TaskResult]:
        """Return the asyncio task computing ``spec``, starting it once.

        Interactive and background work are separate lanes: an
        interactive request for a product a campaign has submitted gets
        its own high-priority Dask task (Dask would not raise the
        priority of the queued one); the single-flight lock lets only
        one of them compute, the other reads the result.

        Raises
        ------
        OverloadedError
            If `max_inflight` interactive products are already in flight
            (background work is throttled by its campaign runner).
        """
        lane = (spec.product_key, _lane(priority))
        task = self._inflight.get(lane)
        if task is not None:
            return task
        if priority >= INTERACTIVE and self.inflight >= self.max_inflight:
            raise OverloadedError(
                f"{self.inflight} recreations in flight (limit "
                f"{self.max_inflight}); try again shortly"
            )
        task = asyncio.create_task(self._run(spec, priority))
        self._inflight[lane] = task
        task.add_done_callback(lambda _: self._inflight.pop(lane, None))
        return task

    async def wait(
        self, task: asyncio.Task[TaskResult], seconds: float
    ) -> TaskResult | None:
        """Wait up to ``seconds``; None if the task is still running.

        The task goes on after a timeout (and still fills the cache).
        """
        try:
            return await asyncio.wait_for(asyncio.shield(task), seconds)
        except TimeoutError:
            return None

    async def client(self) -> Any:
        """Return a connected Dask client, reconnecting if it was lost.

        Raises
        ------
        ServiceUnavailableError
            If the scheduler cannot be reached.
        """
        async with self._client_lock:
            if self._client is not None and self._client.status == "running":
                return self._client
            if (
                self._client is not None
                and self._client.status == "connecting"
            ):
                # It lost its scheduler and is reconnecting by itself (for
                # a few seconds): answer now, do not wait behind it.
                raise ServiceUnavailableError(
                    "the Dask scheduler was lost; reconnecting"
                )
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await self._client.close()
                self._client = None
            try:
                self._client = await self.connect()
                await self._register_plugin(self._client)
            except (OSError, TimeoutError) as error:
                raise ServiceUnavailableError(
                    f"the Dask scheduler cannot be reached: {error}"
                ) from None
            return self._client

    async def _register_plugin(self, client: Any) -> None:
        """Give every worker (and every later one) the cache config."""
        if self.plugin is not None:
            await client.register_plugin(self.plugin)

    async def scheduler_info(self) -> dict[str, Any]:
        """Return the scheduler's worker count and desired worker count."""
        client = await self.client()
        threads = await client.scheduler.ncores()
        target = await client.scheduler.adaptive_target()
        return {
            "workers": len(threads),
            "threads": sum(threads.values()),
            "desired": target,
        }

    async def close(self) -> None:
        """Cancel what is in flight and close the client."""
        for task in list(self._inflight.values()):
            task.cancel()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    async def _run(self, spec: TaskSpec, priority: int) -> TaskResult:
        """Submit, await, retry transient failures, report the outcome."""
        outcome = Outcome()
        try:
            outcome.result = await self._attempts(spec, priority)
        except RecreateError as error:
            outcome.error = error
            raise
        finally:
            outcome.finished = time.time()
            if self.on_done is not None:
                try:
                    self.on_done(spec, outcome)
                except Exception:
                    # Bookkeeping must never fail the recreation itself.
                    log.exception("recording %s failed", spec.describe())
        return outcome.result

    async def _attempts(self, spec: TaskSpec, priority: int) -> TaskResult:
        """Run the task, resubmitting it after transient failures."""
        for attempt in range(self.retries + 1):
            # No scheduler: fail at once (503), do not retry into a wall.
            client = await self.client()
            try:
                return await self._submit_once(client, spec, priority, attempt)
            except RecreateError as error:
                if not error.transient or attempt == self.retries:
                    raise
                log.warning(
                    "%s failed transiently (%s); retrying",
                    spec.describe(),
                    error,
                )
                if isinstance(error, WorkerNotReadyError):
                    # The scheduler came back without our plugin (the
                    # client reconnected by itself): register it again.
                    with contextlib.suppress(OSError, TimeoutError):
                        await self._register_plugin(client)
                await asyncio.sleep(min(2.0**attempt, 10.0) * 0.25)
        msg = "unreachable: the loop returns or raises"
        raise AssertionError(msg)

    async def _submit_once(
        self, client: Any, spec: TaskSpec, priority: int, attempt: int
    ) -> TaskResult:
        """Submit one attempt and wait for it."""
        key = f"recreate-{_lane(priority)}-{spec.product_key[:40]}-{attempt}"
        future: Any = None
        try:
            future = client.submit(
                recreate_task,
                spec,
                key=key,
                priority=priority,
                pure=False,
                retries=0,
            )
            result: TaskResult = await future
        except RecreateError:
            raise
        except (OSError, TimeoutError) as error:
            raise ServiceUnavailableError(
                f"lost the Dask scheduler while recreating "
                f"{spec.describe()}: {error}"
            ) from None
        except asyncio.CancelledError:
            # The asyncio task itself was cancelled (shutdown): pass it on.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            raise ServiceUnavailableError(
                f"the Dask task of {spec.describe()} was cancelled "
                "(scheduler restarted?)"
            ) from None
        except Exception as error:  # noqa: BLE001 - classified, not hidden
            raise _classify(spec, error) from None
        finally:
            if future is not None:
                with contextlib.suppress(Exception):
                    future.release()
        if result.failure is not None:
            raise result.failure
        return result


def _lane(priority: int) -> str:
    """Return the lane of a priority: interactive or background."""
    return "interactive" if priority >= INTERACTIVE else "background"


def _classify(spec: TaskSpec, error: Exception) -> RecreateError:
    """Map an error from `distributed` to one of ours.

    A task that killed its workers too often (KilledWorker) is fatal; a
    cancelled one was lost with its scheduler, which may come back.
    """
    name = type(error).__name__
    if name == "KilledWorker":
        return ProcessingError(
            f"recreating {spec.describe()} killed its workers: {error}"
        )
    if name in _LOST_TASK:
        return ServiceUnavailableError(
            f"the Dask task of {spec.describe()} was lost (scheduler "
            f"restarted?): {name}"
        )
    if "Scheduler" in name or "Comm" in name:
        return ServiceUnavailableError(
            f"the Dask scheduler failed while recreating "
            f"{spec.describe()}: {error}"
        )
    return ProcessingError(
        f"recreating {spec.describe()} failed: {name}: {error}"
    )
