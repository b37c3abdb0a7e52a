"""Redis down: recompute and serve, marked degraded. Written once, here.

`ResilientCache` is the cache as the service uses it, the API and the
workers alike. Every call answers: with a store that is not configured
or cannot be reached, reads answer "not there", writes are skipped and
locks are not taken (a duplicate recompute costs time, never
correctness: recreation is deterministic). The service then recomputes
and serves; the health report and the response say it is degraded.
This is the only place where the service degrades on
`CacheUnavailableError`. Campaigns cannot work without their store:
their routes answer 503 naming it (`required`, below), and their runner
pauses until it is back (`workers.campaigns`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cache.codec import Manifest
from cache.connect import CacheStores
from cache.errors import (
    CacheUnavailableError,
    CorruptValueError,
    JobNotFoundError,
)
from cache.interface import JobRecords, SolutionArchive
from cache.store import StoredValue
from recreate.errors import ServiceUnavailableError

__all__ = ["OpenedValue", "ResilientCache", "required"]

log = logging.getLogger(__name__)

S = TypeVar("S")
T = TypeVar("T")


@dataclass(frozen=True)
class OpenedValue:
    """A stored value whose first chunk is read and verified.

    Attributes
    ----------
    manifest
        The value's manifest (size, SHA-256, metadata).
    first
        Its first chunk (empty for an empty value).
    rest
        The following chunks, each read and verified when asked for; a
        broken one raises `CorruptValueError` (the entry is dropped).
    """

    manifest: Manifest
    first: bytes
    rest: Iterator[bytes]


class ResilientCache:
    """The service's cache: every call answers, Redis down or not.

    Parameters
    ----------
    stores
        The configured stores (`CacheStores.connect`).
    on_corrupt
        Called when a broken entry was found and dropped (metrics).
    """

    def __init__(
        self,
        stores: CacheStores,
        *,
        on_corrupt: Callable[[], None] | None = None,
    ) -> None:
        self.stores = stores
        self._on_corrupt = on_corrupt
        self._down = False
        self._state_lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        """Whether the last call to a store found it unreachable."""
        return self._down

    # Products.

    def head(self, key: str) -> Manifest | None:
        """Return a product's manifest, or None."""
        return self._attempt(
            self.stores.products, "reading", lambda s: s.head(key), None
        )

    def open(self, key: str) -> StoredValue | None:
        """Return a product whose chunks are all there, or None."""
        return self._attempt(
            self.stores.products, "reading", lambda s: s.open(key), None
        )

    def start_reading(self, value: StoredValue) -> OpenedValue | None:
        """Read and verify a product's first chunk; None if it fails.

        Whatever goes wrong before the first byte is sent is still a
        miss: the caller recomputes and answers 200.
        """
        products = self.stores.products
        if products is None:
            return None
        chunks = products.read_chunks(value)
        first = self._attempt(
            products, "reading", lambda _: next(chunks, b""), None
        )
        if first is None:
            return None
        return OpenedValue(value.manifest, first, self._watched(value, chunks))

    def put(
        self, key: str, data: bytes, meta: Mapping[str, Any]
    ) -> Manifest | None:
        """Store a product; None when it could not be stored."""
        return self._attempt(
            self.stores.products,
            "storing",
            lambda s: s.put(key, data, meta=meta),
            None,
        )

    def present(self, keys: list[str]) -> list[bool] | None:
        """Tell which products are cached now; None if nobody can say."""
        return self._attempt(
            self.stores.products, "checking", lambda s: s.present(keys), None
        )

    # Kernels.

    def kernel(self, recipe_hash: str) -> str | None:
        """Return the kernel stored for a recipe, or None."""
        return self._attempt(
            self.stores.kernels,
            "reading a kernel",
            lambda s: s.get_kernel(recipe_hash),
            None,
        )

    def keep_kernel(self, recipe_hash: str, kernel_json: str) -> None:
        """Store a solved kernel, if the cache is there."""
        self._attempt(
            self.stores.kernels,
            "storing a kernel",
            lambda s: s.put_kernel(recipe_hash, kernel_json),
            None,
        )

    # Solutions: the durable store, and their hot copies in Redis.

    def solution(self, recipe_hash: str) -> tuple[bytes, str] | None:
        """Return a stored solution's bytes and which tier had them.

        ``cache`` (the hot copy) or ``store`` (the durable store; the
        hot copy is then made again). None when no tier has it, or none
        answers. The bytes are not checked here: the caller verifies
        them and drops a bad solution (`drop_solution`).
        """
        hot = self.stores.solutions
        data = self._attempt(
            hot,
            "reading a solution",
            lambda s: s.get_solution(recipe_hash),
            None,
        )
        if data is not None:
            return data, "cache"
        data = self._attempt(
            self.stores.solution_files,
            "reading the solution store",
            lambda s: s.get(recipe_hash),
            None,
        )
        if data is None:
            return None
        self._attempt(
            hot,
            "copying a solution",
            lambda s: s.put_solution(recipe_hash, data),
            None,
        )
        return data, "store"

    def keep_solution(self, recipe_hash: str, data: bytes) -> bool:
        """Store a solution, durably first; tell whether it is durable.

        The hot copy is written after the file, so a copy in Redis
        always has its file behind it (when there is a durable store).
        """

        def put(files: SolutionArchive) -> bool:
            files.put(recipe_hash, data)
            return True

        durable = self._attempt(
            self.stores.solution_files,
            "writing the solution store",
            put,
            fallback=False,
        )
        self._attempt(
            self.stores.solutions,
            "storing a solution",
            lambda s: s.put_solution(recipe_hash, data),
            None,
        )
        return durable

    def drop_solution(self, recipe_hash: str, data: bytes) -> None:
        """Drop a bad solution from both tiers (if it is still there)."""
        log.warning("dropping solution %s: it failed its checks", recipe_hash)
        self._attempt(
            self.stores.solutions,
            "dropping a solution",
            lambda s: s.drop_solution(recipe_hash, data),
            None,
        )
        self._attempt(
            self.stores.solution_files,
            "dropping a stored solution",
            lambda s: s.delete(recipe_hash, data),
            None,
        )
        self._corrupt()

    def solutions_present(self, recipe_hashes: list[str]) -> list[bool] | None:
        """Tell which solutions are stored; None if no tier answers."""
        hot = self._attempt(
            self.stores.solutions,
            "checking solutions",
            lambda s: s.present_solutions(recipe_hashes),
            None,
        )
        known = hot or [False] * len(recipe_hashes)
        return self._attempt(
            self.stores.solution_files,
            "checking the solution store",
            lambda f: [
                there or f.exists(h)
                for h, there in zip(recipe_hashes, known, strict=True)
            ],
            hot,
        )

    # Single-flight locks.

    @contextlib.contextmanager
    def single_flight(self, key: str, wait_seconds: float) -> Iterator[bool]:
        """Hold the product's lock; yield False after waiting out a holder.

        Without a lock service (absent or down) yield True: compute.
        """
        locks = self.stores.locks
        # A 1-tuple tells "another holder has it" (None inside) from
        # "no lock service answered" (None).
        taken = self._attempt(
            locks, "locking", lambda s: (s.try_acquire(key),), None
        )
        if taken is None:
            yield True
        elif taken[0] is None:
            self._attempt(
                locks,
                "waiting for a lock",
                lambda s: s.wait_released(key, timeout=wait_seconds),
                None,
            )
            yield False
        else:
            with taken[0]:
                yield True

    # Jobs and counters.

    def create_job(self, job_id: str, fields: Mapping[str, Any]) -> None:
        """Write a job record, if the control store is there."""
        self._attempt(
            self.stores.jobs,
            "creating a job",
            lambda s: s.create(job_id, fields),
            None,
        )

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Update a job record, if it (and the control store) is there."""

        def update(jobs: JobRecords) -> None:
            with contextlib.suppress(JobNotFoundError):
                jobs.update(job_id, **fields)

        self._attempt(self.stores.jobs, "updating a job", update, None)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """Return a job record from the control store, or None."""
        return self._attempt(
            self.stores.jobs, "reading a job", lambda s: s.get(job_id), None
        )

    def count(self, name: str) -> None:
        """Add one to a counter in the control store, if it is there."""
        self._attempt(
            self.stores.jobs, "counting", lambda s: s.incr(name), None
        )

    # The request -> product key index.

    def known_product(self, request_key: str) -> str | None:
        """Return the product key remembered for a request, or None."""
        return self._attempt(
            self.stores.recipes,
            "reading the recipe index",
            lambda s: s.lookup(request_key),
            None,
        )

    def remember_product(self, request_key: str, product_key: str) -> None:
        """Remember a request's product key for the index's TTL."""
        self._attempt(
            self.stores.recipes,
            "writing the recipe index",
            lambda s: s.remember(request_key, product_key),
            None,
        )

    # Deterministic failures and quotas.

    def remember_failure(self, recipe_hash: str, code: str, msg: str) -> None:
        """Remember a recipe's deterministic failure, if the store is up."""
        self._attempt(
            self.stores.failures,
            "remembering a failure",
            lambda s: s.remember(recipe_hash, code, msg),
            None,
        )

    def known_failure(self, recipe_hash: str) -> dict[str, str] | None:
        """Return the failure remembered for a recipe, or None."""
        return self._attempt(
            self.stores.failures,
            "reading a failure",
            lambda s: s.recall(recipe_hash),
            None,
        )

    def spend(
        self, name: str, window_seconds: float
    ) -> tuple[int, float] | None:
        """Spend one unit of a quota counter; None if nobody counts.

        The caller then counts in its own process (`workers.limits`).
        """
        return self._attempt(
            self.stores.quotas,
            "counting a quota",
            lambda s: s.spend(name, window_seconds),
            None,
        )

    # The policy.

    def _attempt(
        self,
        store: S | None,
        what: str,
        action: Callable[[S], T],
        fallback: T,
    ) -> T:
        """Run ``action`` on ``store``; the fallback if it cannot answer.

        A broken entry (dropped by the store) also reads as the fallback,
        and is counted.
        """
        if store is None:
            return fallback
        try:
            result = action(store)
        except CacheUnavailableError as error:
            self._mark(down=True, what=what, error=error)
            return fallback
        except CorruptValueError as error:
            log.warning("cache %s: %s (dropped; recomputing)", what, error)
            self._corrupt()
            return fallback
        self._mark(down=False, what=what)
        return result

    def _watched(
        self, value: StoredValue, chunks: Iterator[bytes]
    ) -> Iterator[bytes]:
        """Pass chunks through; log and count a failure, then raise it.

        After the first byte is sent a failure cannot become a miss any
        more: it ends the stream (the entry is already dropped).
        """
        try:
            yield from chunks
        except CorruptValueError as error:
            log.warning("streaming %s stopped: %s", value.key, error)
            self._corrupt()
            raise
        except CacheUnavailableError as error:
            self._mark(down=True, what="streaming", error=error)
            raise

    def _corrupt(self) -> None:
        if self._on_corrupt is not None:
            self._on_corrupt()

    def _mark(
        self, *, down: bool, what: str, error: Exception | None = None
    ) -> None:
        """Record the cache's state; log only when it changes."""
        with self._state_lock:
            changed, self._down = self._down != down, down
        if changed and down:
            log.warning(
                "cache unavailable while %s (%s): serving without it",
                what,
                error,
            )
        elif changed:
            log.info("cache reachable again")


@contextlib.contextmanager
def required(what: str) -> Iterator[None]:
    """Run a block that cannot work without its store: 503 if it is down.

    Raises
    ------
    ServiceUnavailableError
        If the block raised `CacheUnavailableError`; the message names
        ``what``.
    """
    try:
        yield
    except CacheUnavailableError as error:
        raise ServiceUnavailableError(
            f"{what} is unavailable: {error}"
        ) from None
