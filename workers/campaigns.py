"""Prewarm campaigns: fill the cache for many keys without starving users.

A campaign's keys and their states live in the control store
(`cache.CampaignStore`); this runner, in the broker's event loop, works
through them:

* **Throttled.** At most ``campaign_max_inflight`` campaign products are
  in Dask at once, across all campaigns (0 means twice the worker
  threads, read from the scheduler each time, so it follows the workers
  as they scale and leaves a backlog that adaptive scaling can see).
  Queued campaign tasks sit behind any interactive one (priority), and
  Dask never pre-empts a running task, so an interactive request waits
  for at most the one task running on the worker it lands on.
* **Low priority, own lane.** Campaign tasks run at priority -10 (plus
  the campaign's own priority, -5 to 5) under their own Dask keys; an
  interactive request for the same product gets its own high-priority
  task, and the single-flight lock lets only one of the two compute.
* **Durable.** Keys are marked ``running`` before submission and
  ``done``/``cached``/``failed`` after; a broker that restarts puts the
  ``running`` ones back in the queue and resumes. A transient failure
  (scheduler lost, worker gone) requeues the key; the cache and the lock
  make a resubmission cheap and never a duplicate recompute.

Each key goes through the product service (`ProductMaker.ensure`), the
same walk as an HTTP request: recipe index or Butler, cache, broker; a
campaign of solutions (``solutions_only``) through the solution service
(`workers.solutions.SolutionService.ensure`): kilobytes per key instead
of a product, from which any region renders.
Campaigns need the control store: while it is down they pause (their
state is there), and resume when it answers again or on restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from cache import CacheUnavailableError, CampaignRecords
from recreate.errors import RecreateError, ServiceUnavailableError
from recreate.formats import get_format
from workers.broker import BACKGROUND
from workers.models import ProductRequest

log = logging.getLogger(__name__)

#: Transient failures of one key before it is marked failed.
MAX_TRANSIENT_ATTEMPTS = 5
#: Seconds between checks for work when a campaign waits (slots, retry).
POLL_SECONDS = 0.5
#: Seconds campaigns wait after finding the scheduler gone.
OUTAGE_PAUSE_SECONDS = 5.0


class ProductMaker(Protocol):
    """What the runner needs of the product service."""

    async def ensure(self, request: ProductRequest, *, priority: int) -> bool:
        """Make sure a product is cached; tell whether it was recomputed."""


class SolutionMaker(Protocol):
    """What the runner needs of the solution service."""

    async def ensure(self, request: ProductRequest, *, priority: int) -> bool:
        """Make sure a solution is stored; tell whether it was solved."""


class Scheduler(Protocol):
    """What the runner needs of the broker: the scheduler's size."""

    async def scheduler_info(self) -> dict[str, Any]:
        """Return the scheduler's ``workers``, ``threads``, ``desired``."""


@dataclass
class CampaignRunner:
    """Run campaigns from the control store through the product service.

    Parameters
    ----------
    products
        The product service (`workers.products.ProductService`).
    scheduler
        The broker: how many worker threads there are (the throttle).
    store
        The campaign records in the control Redis.
    default_format
        The format of a campaign that names none.
    max_inflight
        Campaign products in Dask at once; 0: one per worker thread.
    solutions
        The solution service, for campaigns of solutions.
    """

    products: ProductMaker
    scheduler: Scheduler
    store: CampaignRecords
    default_format: str
    max_inflight: int = 0
    solutions: SolutionMaker | None = None
    _loops: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _busy: int = 0
    _freed: asyncio.Event = field(default_factory=asyncio.Event)
    _attempts: dict[tuple[str, int], int] = field(default_factory=dict)
    _paused_until: float = 0.0

    def resume(self) -> list[str]:
        """Resume every campaign left unfinished (broker restart).

        With the control store down nothing resumes now; the campaigns
        stay in it, and resume at the next start.
        """
        resumed: list[str] = []
        try:
            active = self.store.active()
        except CacheUnavailableError as error:
            log.warning("campaigns not resumed: %s", error)
            return resumed
        for campaign_id in active:
            requeued = self.store.requeue_running(campaign_id)
            log.info(
                "resuming campaign %s (%d keys back in the queue)",
                campaign_id,
                requeued,
            )
            self.launch(campaign_id)
            resumed.append(campaign_id)
        return resumed

    def launch(self, campaign_id: str) -> None:
        """Start working through a campaign (once)."""
        loop = self._loops.get(campaign_id)
        if loop is None or loop.done():
            self._loops[campaign_id] = asyncio.create_task(
                self._run(campaign_id), name=f"campaign-{campaign_id}"
            )

    async def close(self) -> None:
        """Stop the campaign loops; their state stays in the store."""
        for loop in self._loops.values():
            loop.cancel()
        for loop in self._loops.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loop
        self._loops.clear()

    async def _run(self, campaign_id: str) -> None:
        """Submit a campaign's queued keys as slots free up."""
        if self.store.meta(campaign_id) is None:
            return
        self.store.set_state(campaign_id, "running")
        pending: set[asyncio.Task[None]] = set()
        try:
            while not self._cancelled(campaign_id):
                queued = _queued(self.store.states(campaign_id))
                if not queued and not pending:
                    break
                await self._submit(campaign_id, queued, pending)
                await self._pause(pending, bool(queued))
        except CacheUnavailableError:
            log.exception(
                "campaign %s paused: control store down", campaign_id
            )
            return
        finally:
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if not self._cancelled(campaign_id):
            self.store.set_state(campaign_id, "done")

    async def _submit(
        self,
        campaign_id: str,
        queued: list[int],
        pending: set[asyncio.Task[None]],
    ) -> None:
        """Start queued keys while slots are free (stop if cancelled)."""
        if not queued:
            return
        meta = self.store.meta(campaign_id) or {}
        keys = self.store.keys(campaign_id)
        for index in queued:
            await self._take_slot()
            if self._cancelled(campaign_id):
                self._release()
                return
            # Marked before the task starts, so the next pass of the loop
            # never launches the key twice.
            self.store.mark(campaign_id, index, "running")
            task = asyncio.create_task(
                self._one(campaign_id, meta, index, keys[index])
            )
            pending.add(task)
            task.add_done_callback(pending.discard)

    @staticmethod
    async def _pause(pending: set[asyncio.Task[None]], queued: bool) -> None:
        """Wait for a key to finish, or a moment before looking again."""
        if pending:
            await asyncio.wait(
                pending,
                timeout=POLL_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
        elif queued:
            await asyncio.sleep(POLL_SECONDS)

    def _cancelled(self, campaign_id: str) -> bool:
        """Whether the campaign was cancelled meanwhile."""
        meta = self.store.meta(campaign_id) or {}
        return meta.get("state") == "cancelled"

    async def _take_slot(self) -> None:
        """Reserve one campaign slot, waiting for one to free up.

        The key's task frees it (`_release`) when it ends.
        """
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            elif self._busy < await self._limit():
                break
            else:
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), POLL_SECONDS)
        self._busy += 1

    def _release(self) -> None:
        """Free a slot taken by `_slot`."""
        self._busy -= 1
        self._freed.set()

    async def _limit(self) -> int:
        """Return the number of campaign tasks allowed in flight now."""
        if self.max_inflight > 0:
            return self.max_inflight
        try:
            info = await self.scheduler.scheduler_info()
        except (RecreateError, OSError, TimeoutError):
            return 1
        # A queue as deep as the workers again: the adaptive target (and
        # an autoscaler) sees the backlog, and users still overtake it.
        return max(2, 2 * int(info["threads"]))

    async def _one(
        self,
        campaign_id: str,
        meta: dict[str, Any],
        index: int,
        key: tuple[int, int],
    ) -> None:
        """Recreate one key of a campaign and record how it ended."""
        try:
            state = await self._recreate(meta, key)
        except RecreateError as error:
            self._failed(campaign_id, index, key, error)
        else:
            self.store.mark(campaign_id, index, state)
        finally:
            self._release()

    async def _recreate(
        self, meta: dict[str, Any], key: tuple[int, int]
    ) -> str:
        """Return ``cached`` or ``done`` once the key's product exists."""
        visit, detector = key
        request = ProductRequest(
            visit=visit,
            detector=detector,
            instrument=meta.get("instrument"),
            output_format=get_format(
                meta.get("format") or self.default_format
            ),
        )
        priority = BACKGROUND + max(-5, min(5, int(meta.get("priority", 0))))
        maker: ProductMaker | SolutionMaker = self.products
        if meta.get("solutions_only"):
            if self.solutions is None:
                raise ServiceUnavailableError("no solution service here")
            maker = self.solutions
        computed = await maker.ensure(request, priority=priority)
        return "done" if computed else "cached"

    def _failed(
        self,
        campaign_id: str,
        index: int,
        key: tuple[int, int],
        error: RecreateError,
    ) -> None:
        """Requeue a transient failure; record anything else as failed.

        A lost scheduler pauses every campaign (not counted against the
        key): its keys are resubmitted from the store when it is back.
        """
        if isinstance(error, ServiceUnavailableError):
            log.warning("campaigns paused: %s", error)
            self._paused_until = time.monotonic() + OUTAGE_PAUSE_SECONDS
            self.store.mark(campaign_id, index, "queued")
            return
        attempts = self._attempts.get((campaign_id, index), 0) + 1
        self._attempts[campaign_id, index] = attempts
        if error.transient and attempts < MAX_TRANSIENT_ATTEMPTS:
            log.warning(
                "campaign %s key %s: %s; requeued", campaign_id, key, error
            )
            self.store.mark(campaign_id, index, "queued")
            return
        self.store.mark(
            campaign_id,
            index,
            "failed",
            code=error.code,
            message=str(error),
        )


def _queued(states: dict[int, str]) -> list[int]:
    """Return the indices of queued keys, in submission order."""
    return sorted(
        index for index, state in states.items() if state == "queued"
    )
