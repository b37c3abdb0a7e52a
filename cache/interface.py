"""The cache's interface: what the service needs from each store.

The service talks to these Protocols, never to Redis: the Redis classes
of this package implement them (checked by mypy where `cache.connect`
builds them), and another cache would implement them too. Every method
may raise `CacheUnavailableError` when its store cannot be reached;
`cache.resilient.ResilientCache` is the one place that turns that into
"go on without the cache".

=================  ===========================  =====================
Protocol           Implementation               Redis instance
=================  ===========================  =====================
`ProductCache`     `cache.store.ResultStore`    blob cache (LRU)
`KernelCache`      `cache.kernels.KernelStore`  blob cache (LRU)
`SolutionCache`    `cache.solutions.RedisSol…`  blob cache (LRU)
`SolutionArchive`  `cache.solutions.Solution…`  none: files at a URI
`LockService`      `cache.locks.SingleFlight`   control (noeviction)
`JobRecords`       `cache.jobs.JobStore`        control
`RecipeLookup`     `cache.recipes.RecipeIndex`  control
`CampaignRecords`  `cache.campaigns.Campaign…`  control
`FailureRecords`   `cache.failures.FailureSt…`  control
`QuotaLedger`      `cache.quotas.QuotaCounters` control
`LeaseService`     `cache.leases.Leases`        control
=================  ===========================  =====================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from cache.campaigns import CampaignRecord
from cache.codec import Manifest
from cache.store import CachedValue, StoredValue

__all__ = [
    "CampaignRecords",
    "FailureRecords",
    "HeldLock",
    "JobRecords",
    "KernelCache",
    "LeaseService",
    "LockService",
    "ProductCache",
    "QuotaLedger",
    "RecipeLookup",
    "SolutionArchive",
    "SolutionCache",
]


@runtime_checkable
class ProductCache(Protocol):
    """Products (chunked, checksummed values) under their product keys."""

    def put(
        self, key: str, data: bytes, *, meta: Mapping[str, Any]
    ) -> Manifest:
        """Store a value; the manifest write is the commit."""

    def get(self, key: str) -> CachedValue | None:
        """Return a whole verified value; None if absent or broken."""

    def head(self, key: str) -> Manifest | None:
        """Return a value's manifest without reading any chunk."""

    def open(self, key: str) -> StoredValue | None:
        """Find a value whose chunks are all there (raise if broken)."""

    def read_chunks(self, value: StoredValue) -> Iterator[bytes]:
        """Yield an opened value's chunks, each verified as it is read."""

    def delete(self, key: str) -> bool:
        """Remove a value; tell whether it was there."""

    def present(self, keys: Sequence[str]) -> list[bool]:
        """Tell which keys have a value now (no chunk read)."""


@runtime_checkable
class KernelCache(Protocol):
    """Solved kernels (small JSON) under their recipe hashes."""

    def put_kernel(self, recipe_hash: str, kernel_json: str) -> None:
        """Store a solved kernel."""

    def get_kernel(self, recipe_hash: str) -> str | None:
        """Return a stored kernel; None if absent or corrupt."""


@runtime_checkable
class SolutionCache(Protocol):
    """Hot copies of solutions (FITS bytes) under their recipe hashes."""

    def put_solution(self, recipe_hash: str, data: bytes) -> None:
        """Keep a copy of a solution."""

    def get_solution(self, recipe_hash: str) -> bytes | None:
        """Return a copy, or None."""

    def drop_solution(self, recipe_hash: str, data: bytes) -> bool:
        """Delete a copy if it still holds ``data``."""

    def present_solutions(self, recipe_hashes: Sequence[str]) -> list[bool]:
        """Tell which recipe hashes have a copy now."""


@runtime_checkable
class SolutionArchive(Protocol):
    """The durable store of solutions (files under a URI)."""

    def put(self, recipe_hash: str, data: bytes) -> None:
        """Write a solution atomically."""

    def get(self, recipe_hash: str) -> bytes | None:
        """Return a solution's bytes, or None."""

    def delete(self, recipe_hash: str, data: bytes) -> bool:
        """Delete a solution if it still holds ``data``."""

    def exists(self, recipe_hash: str) -> bool:
        """Tell whether a recipe hash's solution is stored."""

    def uri(self, recipe_hash: str) -> str:
        """Return where a recipe hash's solution lives."""


class HeldLock(Protocol):
    """A held single-flight lock: kept alive inside ``with``, then freed."""

    def __enter__(self) -> Self:
        """Keep the lock alive while the block runs."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release the lock."""


@runtime_checkable
class LockService(Protocol):
    """Single-flight locks: one recompute per product key at a time."""

    def try_acquire(self, key: str) -> HeldLock | None:
        """Take the lock on ``key``; None when another holder has it."""

    def wait_released(
        self, key: str, timeout: float, poll: float = 0.05
    ) -> bool:
        """Wait until nobody holds ``key``; False on timeout."""


@runtime_checkable
class JobRecords(Protocol):
    """Job records of requests that outlived their sync timeout."""

    def create(self, job_id: str, fields: Mapping[str, Any]) -> None:
        """Write a new record."""

    def update(self, job_id: str, **fields: Any) -> None:
        """Change fields of a record (JobNotFoundError if there is none)."""

    def get(self, job_id: str) -> dict[str, Any] | None:
        """Return a record, or None."""

    def delete(self, job_id: str) -> bool:
        """Remove a record; tell whether it existed."""

    def ids(self, prefix: str) -> list[str]:
        """Return the ids of the records whose id starts with a prefix."""

    def incr(self, name: str, amount: int = 1) -> int:
        """Add to a counter; return its new value."""

    def counter(self, name: str) -> int:
        """Return a counter's value."""


@runtime_checkable
class RecipeLookup(Protocol):
    """A short-lived request -> product key index."""

    def lookup(self, request_key: str) -> str | None:
        """Return the product key remembered for a request, if any."""

    def remember(self, request_key: str, product_key: str) -> None:
        """Remember a request's product key for a while."""


@runtime_checkable
class CampaignRecords(Protocol):
    """Prewarm campaigns: their keys, per-key states and progress."""

    def create(
        self,
        name: str,
        keys: Sequence[tuple[int, int]],
        *,
        priority: int = 0,
        instrument: str | None = None,
        output_format: str | None = None,
        selection: Mapping[str, Any] | None = None,
        solutions_only: bool = False,
        owner: str | None = None,
    ) -> str:
        """Record a new campaign with every key queued; return its id."""

    def meta(self, campaign_id: str) -> dict[str, Any] | None:
        """Return a campaign's stored fields."""

    def get(self, campaign_id: str) -> CampaignRecord | None:
        """Return a campaign with counts, failures, rate and ETA."""

    def all(self, owner: str | None = None) -> list[CampaignRecord]:
        """Return every campaign (or ``owner``'s), newest first."""

    def active(self) -> list[str]:
        """Return the ids of campaigns with work left."""

    def keys(self, campaign_id: str) -> list[tuple[int, int]]:
        """Return a campaign's keys in submission order."""

    def states(self, campaign_id: str) -> dict[int, str]:
        """Return the state of every key, by index."""

    def mark(
        self,
        campaign_id: str,
        index: int,
        state: str,
        *,
        code: str | None = None,
        message: str | None = None,
        product: str | None = None,
    ) -> None:
        """Set one key's state (its error, its product key)."""

    def products(self, campaign_id: str) -> dict[int, str]:
        """Return the product key of every key made or found cached."""

    def requeue(self, campaign_id: str, indices: Sequence[int]) -> int:
        """Put the keys at ``indices`` back in the queue."""

    def set_state(self, campaign_id: str, state: str) -> None:
        """Set the campaign's own state."""

    def cancel(self, campaign_id: str) -> int:
        """Cancel every key not started yet; return how many."""

    def requeue_running(self, campaign_id: str) -> int:
        """Put keys left running by a dead broker back in the queue."""


@runtime_checkable
class FailureRecords(Protocol):
    """Deterministic failures by recipe hash, for a while."""

    def remember(self, recipe_hash: str, code: str, message: str) -> None:
        """Remember that a recipe fails with this code and message."""

    def recall(self, recipe_hash: str) -> dict[str, str] | None:
        """Return ``{"code", "message"}`` of a remembered failure."""


@runtime_checkable
class QuotaLedger(Protocol):
    """Fixed-window spend counters, shared by every API replica."""

    def spend(self, name: str, window_seconds: float) -> tuple[int, float]:
        """Spend one unit; return units spent and seconds to the reset."""


@runtime_checkable
class LeaseService(Protocol):
    """Named leases: renewed by a live holder, lapsing when it dies."""

    def take(self, name: str, token: str, ttl_seconds: float) -> bool:
        """Take or renew a lease; False when another holder has it."""

    def give_back(self, name: str, token: str) -> bool:
        """Release a lease held by ``token``."""
