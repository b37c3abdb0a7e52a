"""What one client may cost: budgets per identity, 429 with Retry-After.

A budget is a name, a count and a window (``RECREATE_QUOTAS``, e.g.
``request=600/900,recompute=35/900``): each identity (a user, or an
anonymous client's address, `workers.auth.Identity.quota_key`) may
spend ``count`` units of it per ``window`` seconds. The counts live in
the control store, shared by every API replica (`cache.QuotaCounters`,
fixed windows); with the store down each process counts alone.

The budgets of this service:

``request``
    Every product request (hits, 304s, 404s alike): cheap, generous.
``recompute``
    Each request that starts a recreation (a miss) or a solve (a region,
    a SODA cutout, a light-curve epoch; `spender` for work that outlives
    the request), charged on top of ``request``: Rubin's RSP allows 35
    cutouts per 15 minutes.
``campaign``
    Each campaign created.
``cutout``, ``sia``
    Rubin's RSP budgets (35 and 70 per 15 minutes) for the IVOA routes.

A route opts in with one line (see ``docs/routes.md``)::

    dependencies=[Depends(rate_limit("cutout"))]

or, when it needs the caller too (and a user with a scope first)::

    who: Annotated[Identity, Depends(rate_limit("campaign", writer))]

An exhausted budget answers 429 with ``Retry-After`` (seconds until its
window ends). A budget set to ``off`` (or absent from the table) is
unlimited.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Depends, Request

from cache import ResilientCache
from workers.auth import Identity, identity
from workers.budgets import Budget, parse_quotas
from workers.http_errors import RateLimitedError

__all__ = [
    "Budget",
    "Quotas",
    "charge",
    "parse_quotas",
    "rate_limit",
    "spender",
]

#: Every dependency `rate_limit` made (the OpenAPI document lists 429
#: under the routes that use one).
LIMIT_DEPENDENCIES: set[Callable[..., Awaitable[Identity]]] = set()

#: Local windows kept before expired ones are swept.
_LOCAL_SWEEP = 10_000


@dataclass
class Quotas:
    """The budget table and the counting of spends.

    Parameters
    ----------
    budgets
        The table (`parse_quotas`).
    """

    budgets: dict[str, Budget]
    _local: dict[str, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def charge(
        self, who: Identity, name: str, cache: ResilientCache | None
    ) -> None:
        """Spend one unit of budget ``name`` for ``who``.

        Raises
        ------
        RateLimitedError
            If the budget is spent; its ``retry_after`` says when the
            window ends.
        """
        budget = self.budgets.get(name)
        if budget is None or budget.count is None:
            return
        key = hashlib.sha256(who.quota_key.encode()).hexdigest()[:32]
        counter = f"{name}:{key}"
        spent = None
        if cache is not None:
            spent = await asyncio.to_thread(
                cache.spend, counter, budget.seconds
            )
        if spent is None:
            spent = self._spend_locally(counter, budget.seconds)
        count, left = spent
        if count > budget.count:
            error = RateLimitedError(
                f"the {name!r} budget of {budget.count} per "
                f"{budget.seconds:g} s is spent; retry in {math.ceil(left)} s"
            )
            error.retry_after = max(1, math.ceil(left))
            raise error

    def _spend_locally(
        self, counter: str, seconds: float
    ) -> tuple[int, float]:
        """Count in this process (the control store is away)."""
        now = time.monotonic()
        with self._lock:
            if len(self._local) > _LOCAL_SWEEP:
                self._local = {
                    k: v for k, v in self._local.items() if v[0] > now
                }
            ends, count = self._local.get(counter, (0.0, 0))
            if ends <= now:
                ends, count = now + seconds, 0
            self._local[counter] = (ends, count + 1)
        return count + 1, ends - now


def rate_limit(
    name: str, caller: Callable[..., Identity] = identity
) -> Callable[..., Awaitable[Identity]]:
    """Return a dependency charging budget ``name`` to the caller.

    Parameters
    ----------
    name
        A budget of the table (``request``, ``cutout``, ``sia``...).
    caller
        The dependency naming the caller: `identity` (anyone), or a
        `workers.auth.require_user` one, checked before anything is
        charged.

    Returns
    -------
    dependency
        Returns the caller's identity; raises `RateLimitedError` (429)
        when the budget is spent.
    """

    # A default rather than Annotated: the annotation is a string here
    # (postponed evaluation), and ``caller`` a local FastAPI cannot see.
    async def limited(
        request: Request,
        who: Identity = Depends(caller),  # noqa: B008
    ) -> Identity:
        await charge(request, who, name)
        return who

    LIMIT_DEPENDENCIES.add(limited)
    return limited


async def charge(request: Request, who: Identity, name: str) -> None:
    """Charge budget ``name`` to ``who`` (for use inside a route).

    Raises
    ------
    RateLimitedError
        If the budget is spent.
    """
    quotas: Quotas = request.app.state.quotas
    services = getattr(request.app.state, "services", None)
    await quotas.charge(who, name, services.cache if services else None)


def spender(
    request: Request, name: str, who: Identity | None = None
) -> Callable[[], Awaitable[None]]:
    """Return a charge of budget ``name`` to this request's caller.

    Usable after the request too (a job's solves): the budget table and
    store are taken now. The caller is ``who``, or else the one the
    route's `rate_limit` dependency identified.
    """
    quotas: Quotas = request.app.state.quotas
    services = getattr(request.app.state, "services", None)
    cache = services.cache if services else None
    who = who or identity(request)

    async def spend() -> None:
        await quotas.charge(who, name, cache)

    return spend
