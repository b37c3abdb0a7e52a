"""Prewarm campaigns: fill the cache for many keys without starving users.

A campaign's keys and their states live in the control store
(`cache.CampaignStore`); this runner, in the broker's event loop, works
through them:

* **Throttled** (`workers.throttle`). Queued campaign tasks sit behind
  any interactive one (priority), and Dask never pre-empts a running
  task, so a user waits for at most the one task running on the worker
  the request lands on.
* **Low priority, own lane.** Campaign tasks run at priority -10 (plus
  the campaign's own priority, -5 to 5) under their own Dask keys; an
  interactive request for the same product gets its own high-priority
  task, and the single-flight lock lets only one of the two compute.
* **One runner, taken over in seconds.** A runner works through a
  campaign while it holds the campaign's lease (`cache.Leases`),
  renewed every few seconds. A watcher looks for campaigns with work
  left and no live runner (a restart, a dead replica) and takes them
  over: keys left ``running`` go back in the queue.
* **Through outages.** With the control store down a runner pauses;
  when it answers again it goes on by itself (keys whose end went
  unrecorded are queued again: the cache makes that cheap).
* **Done means present.** A key is ``done`` (recreated here) or
  ``cached`` (found cached) with its product key recorded. Before a
  campaign ends, and when one is taken over, keys whose product is no
  longer in the cache (evicted, a restarted cache) are queued again.
  `workers.campaign_recovery` gives the API counts of what is cached
  *now*.

Each key goes through the product service (`ProductMaker.ensure`), the
same walk as an HTTP request: recipe index or Butler, cache, broker; in
a campaign of solutions (``solutions_only``) through the solution
service instead (a stored solution is what "present" means then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from cache import CacheUnavailableError, CampaignRecords, LeaseService
from recreate.errors import RecreateError, ServiceUnavailableError
from recreate.formats import get_format
from workers.broker import BACKGROUND
from workers.campaign_recovery import (
    Presence,
    lost_keys,
    missing_keys,
    queued_keys,
)
from workers.models import ProductRequest
from workers.product_answers import Ensured
from workers.throttle import Scheduler, Throttle

log = logging.getLogger(__name__)

#: Transient failures of one key before it is marked failed.
MAX_TRANSIENT_ATTEMPTS = 5
#: Seconds between checks for work when a campaign waits (retry).
POLL_SECONDS = 0.5
#: Seconds campaigns wait after finding the scheduler gone.
OUTAGE_PAUSE_SECONDS = 2.0
#: Longest pause between tries while the control store is down.
MAX_STORE_BACKOFF = 5.0
#: Lease of a runner on a campaign; renewed every `WATCH_SECONDS`.
LEASE_SECONDS = 10.0
#: Seconds between two looks for campaigns without a live runner.
WATCH_SECONDS = 2.0
#: Rounds of "queue again what is missing" before a campaign ends.
MAX_VERIFY_ROUNDS = 3


class ProductMaker(Protocol):
    """What the runner needs of the product (or solution) service."""

    async def ensure(
        self, request: ProductRequest, *, priority: int
    ) -> Ensured:
        """Make sure a product is cached; say its key and who made it."""


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
    leases
        Leases in the control Redis: one runner per campaign.
    cache
        Tells which products are cached now.
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
    leases: LeaseService
    cache: Presence
    default_format: str
    max_inflight: int = 0
    solutions: ProductMaker | None = None
    _loops: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _watcher: asyncio.Task[None] | None = None
    _token: str = field(default_factory=lambda: secrets.token_hex(8))
    _throttle: Throttle = field(init=False)
    _attempts: dict[tuple[str, int], int] = field(default_factory=dict)
    _verified: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Share one throttle among every campaign of this runner."""
        self._throttle = Throttle(self.scheduler, self.max_inflight)

    def start(self) -> None:
        """Start the watcher, which resumes unfinished campaigns.

        It does so now, and whenever a campaign is left without a live
        runner (a restart, a dead replica, a control-store outage).
        """
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(
                self._watch(), name="campaign-watcher"
            )

    def launch(self, campaign_id: str) -> None:
        """Start working through a new campaign (if its lease is free).

        With the control store down the watcher starts it later.
        """
        with contextlib.suppress(CacheUnavailableError):
            if self._take(campaign_id):
                self._loop(campaign_id)

    async def close(self) -> None:
        """Stop the watcher and the loops (they give their leases back)."""
        tasks = [t for t in (self._watcher, *self._loops.values()) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()
        self._watcher = None

    # The watcher: leases and takeovers.

    async def _watch(self) -> None:
        """Renew our leases and adopt orphaned campaigns, forever."""
        delay = 0.0
        down = False
        while True:
            await asyncio.sleep(delay)
            self._loops = {
                cid: loop
                for cid, loop in self._loops.items()
                if not loop.done()
            }
            try:
                lost, adopted = await asyncio.to_thread(
                    self._orphans, list(self._loops)
                )
            except CacheUnavailableError as error:
                if not down:
                    log.warning(
                        "campaigns wait for the control store: %s", error
                    )
                down = True
                delay = min(MAX_STORE_BACKOFF, max(POLL_SECONDS, 2 * delay))
                continue
            for campaign_id in lost:
                self._loops[campaign_id].cancel()
            for campaign_id in adopted:
                # (A loop started meanwhile by `launch` is left alone.)
                self._loop(campaign_id, adopted=True)
            if down:
                log.info("control store back: campaigns go on")
            down = False
            delay = WATCH_SECONDS

    def _orphans(self, running: list[str]) -> tuple[list[str], list[str]]:
        """Renew our leases; take over campaigns nobody runs (a thread).

        ``running`` are the campaigns with a live loop here. Returns
        those whose lease another runner holds now (their loops must
        stop), and those whose lease was free and is ours now (their
        loops start by queueing again what nobody is making).
        """
        lost = [cid for cid in running if not self._take(cid)]
        for campaign_id in lost:
            log.warning("campaign %s taken over elsewhere", campaign_id)
        adopted = [
            campaign_id
            for campaign_id in self.store.active()
            if campaign_id not in running and self._take(campaign_id)
        ]
        return lost, adopted

    def _take(self, campaign_id: str) -> bool:
        """Take or renew this runner's lease on a campaign."""
        return self.leases.take(
            _lease(campaign_id), self._token, LEASE_SECONDS
        )

    def _loop(self, campaign_id: str, *, adopted: bool = False) -> None:
        """Start the loop of a campaign whose lease we hold (once).

        An ``adopted`` campaign was left by another runner (or an earlier
        life of this one): its loop first queues again what nobody makes.
        """
        loop = self._loops.get(campaign_id)
        if loop is None or loop.done():
            self._loops[campaign_id] = asyncio.create_task(
                self._run(campaign_id, resume=adopted),
                name=f"campaign-{campaign_id}",
            )

    def _requeue_missing(self, campaign_id: str) -> int:
        """Queue again the done or cached keys whose product is gone."""
        gone = missing_keys(self.store, self.cache, campaign_id)
        return self.store.requeue(campaign_id, gone)

    # One campaign's loop.

    async def _run(self, campaign_id: str, *, resume: bool = False) -> None:
        """Work through a campaign, pausing while its store is down.

        ``resume``: first queue again what nobody makes, as after one.
        """
        pending: dict[asyncio.Task[None], int] = {}
        backoff = POLL_SECONDS
        recovering = resume
        try:
            while True:
                try:
                    if recovering:
                        # Keys whose end went unrecorded, and products
                        # gone from the cache: made again.
                        lost = lost_keys(
                            self.store, campaign_id, set(pending.values())
                        )
                        requeued = self.store.requeue(campaign_id, lost)
                        requeued += self._requeue_missing(campaign_id)
                        log.info(
                            "campaign %s goes on (%d keys queued again)",
                            campaign_id,
                            requeued,
                        )
                        recovering = False
                    if await self._step(campaign_id, pending):
                        return
                    backoff = POLL_SECONDS
                except CacheUnavailableError as error:
                    if not recovering:
                        log.warning(
                            "campaign %s paused: %s", campaign_id, error
                        )
                    recovering = True
                    await asyncio.sleep(backoff)
                    backoff = min(MAX_STORE_BACKOFF, 2 * backoff)
        except asyncio.CancelledError:
            # Shutdown, or the lease went elsewhere: the keys in flight
            # stay "running" in the store, for whoever takes over.
            for task in pending:
                task.cancel()
            raise
        finally:
            for task in list(pending):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(CacheUnavailableError):
                self.leases.give_back(_lease(campaign_id), self._token)

    async def _step(
        self, campaign_id: str, pending: dict[asyncio.Task[None], int]
    ) -> bool:
        """Submit what is queued, or wait; True once the campaign ended."""
        meta = self.store.meta(campaign_id)
        if meta is None or meta["state"] == "cancelled":
            return True
        if meta["state"] == "queued":
            self.store.set_state(campaign_id, "running")
        queued = queued_keys(self.store.states(campaign_id))
        if not queued and not pending:
            return self._finish(campaign_id)
        await self._submit(campaign_id, meta, queued, pending)
        await self._pause(pending, bool(queued))
        return False

    def _finish(self, campaign_id: str) -> bool:
        """End a campaign whose products are all there; else queue again.

        After `MAX_VERIFY_ROUNDS` the campaign ends anyway (a cache too
        small for it evicts its own keys); its counts then say so.
        """
        rounds = self._verified.get(campaign_id, 0)
        if rounds < MAX_VERIFY_ROUNDS and self._requeue_missing(campaign_id):
            self._verified[campaign_id] = rounds + 1
            log.info("campaign %s: products gone; queued again", campaign_id)
            return False
        self.store.set_state(campaign_id, "done")
        self._verified.pop(campaign_id, None)
        self._attempts = {
            k: v for k, v in self._attempts.items() if k[0] != campaign_id
        }
        return True

    async def _submit(
        self,
        campaign_id: str,
        meta: dict[str, Any],
        queued: list[int],
        pending: dict[asyncio.Task[None], int],
    ) -> None:
        """Start queued keys while slots are free (stop if cancelled)."""
        if not queued:
            return
        keys = self.store.keys(campaign_id)
        for index in queued:
            await self._throttle.take()
            try:
                if self._cancelled(campaign_id):
                    self._throttle.release()
                    return
                # Marked before the task starts, so the next pass of the
                # loop never launches the key twice.
                self.store.mark(campaign_id, index, "running")
            except BaseException:
                # The store went away (or we were cancelled): no task
                # will free the slot.
                self._throttle.release()
                raise
            task = asyncio.create_task(
                self._one(campaign_id, meta, index, keys[index])
            )
            pending[task] = index
            task.add_done_callback(lambda done: pending.pop(done, None))

    @staticmethod
    async def _pause(
        pending: dict[asyncio.Task[None], int], queued: bool
    ) -> None:
        """Wait for a key to finish, or a moment before looking again."""
        if pending:
            await asyncio.wait(
                list(pending),
                timeout=POLL_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
        elif queued:
            await asyncio.sleep(POLL_SECONDS)

    def _cancelled(self, campaign_id: str) -> bool:
        """Whether the campaign was cancelled meanwhile."""
        meta = self.store.meta(campaign_id) or {}
        return meta.get("state") == "cancelled"

    async def _one(
        self,
        campaign_id: str,
        meta: dict[str, Any],
        index: int,
        key: tuple[int, int],
    ) -> None:
        """Recreate one key of a campaign and record how it ended.

        With the store down the end is not recorded: the key stays
        ``running`` there, and is queued again once the store is back.
        """
        try:
            made = await self._recreate(meta, key)
        except RecreateError as error:
            with contextlib.suppress(CacheUnavailableError):
                self._failed(campaign_id, index, key, error)
        else:
            state = "done" if made.computed else "cached"
            with contextlib.suppress(CacheUnavailableError):
                self.store.mark(
                    campaign_id, index, state, product=made.product_key
                )
        finally:
            self._throttle.release()

    async def _recreate(
        self, meta: dict[str, Any], key: tuple[int, int]
    ) -> Ensured:
        """Make sure the key's product exists; say who made it."""
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
        maker = self.solutions if meta.get("solutions_only") else self.products
        if maker is None:
            raise RecreateError("this service keeps no solutions")
        return await maker.ensure(request, priority=priority)

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
            self._throttle.pause(OUTAGE_PAUSE_SECONDS)
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
            campaign_id, index, "failed", code=error.code, message=str(error)
        )


def _lease(campaign_id: str) -> str:
    """Return the name of a campaign's runner lease."""
    return f"campaign:{campaign_id}"
