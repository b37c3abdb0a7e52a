"""The product service: one way from a request to its bytes.

Every face calls it (the HTTP routes, the campaign runner; later the
cutout, IVOA and preview routes): none of them builds keys or talks to
Redis or Dask itself. For one `ProductRequest` it

1. asks the short-lived recipe index (control store) for the product
   key, and serves a hit straight from the cache: no Butler;
2. otherwise resolves the inputs through the Butler, once, derives the
   recipe and the product key, once, and looks in the cache under that
   key;
3. on a miss submits one task (inputs, recipe and key in it) through
   the broker and waits up to the sync timeout: then it streams the
   product the worker cached, or hands back a job.

The index remembers a request's key once its product exists (a hit, or
a recompute that succeeded): a failed request leaves nothing behind in
it. A deterministic failure (no template, no kernel: the data's, a 4xx)
is remembered instead under the recipe's hash for a while
(``failure_ttl_seconds``), and answered from there without running the
pipeline again.

A new code version or configuration is a new index namespace, so never
a stale key; a new template is seen once its index entry expires
(``recipe_index_ttl_seconds``), and by every miss at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from cache import Manifest, ResilientCache
from recreate import __version__
from recreate.butler import DiffimInputs
from recreate.errors import TransientError, error_class
from recreate.formats import OutputFormat
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.provenance import canonical_hash, recipe_hash
from recreate.pipeline.recipes import RECIPES
from recreate.recreation import product_key, recipe_config, request_recipe
from workers.broker import INTERACTIVE, Broker, Outcome
from workers.jobs import JobBook
from workers.metrics import Metrics
from workers.models import SOLUTION, ProductRequest, TaskResult, TaskSpec
from workers.product_answers import (
    Answer,
    Ensured,
    NotModified,
    Pending,
    ProductInfo,
    Served,
)
from workers.settings import Settings
from workers.streams import ChunkStream

log = logging.getLogger(__name__)


#: What a probe of the cache answers on a hit (one class: mypy joins a
#: union of several into their common base).
A = TypeVar("A")


class InputResolver(Protocol):
    """Where a request's inputs are found (`workers.butler.LockedButler`)."""

    def find_inputs(
        self, visit: int, detector: int, instrument: str | None
    ) -> DiffimInputs:
        """Return the visit image and template patches of a key."""


@dataclass
class ProductService:
    """Validated requests in; cached products, streams or jobs out.

    Parameters
    ----------
    settings
        Sync timeout, default instrument, repository (index namespace).
    butler
        Resolves a request's inputs (in a thread: it blocks).
    cache
        The cache, resilient: Redis down means recompute and serve.
    broker
        Runs misses on Dask, once per product.
    jobs
        Records of requests answered 202.
    metrics
        Hits, misses, bytes served, recomputes.
    cache_id
        Fingerprint of the cache configuration workers must use.
    code_version
        What the recipe names (tests change it).
    config
        An explicit configuration for every request (tests); None: the
        recipe a request names, else ``settings.recipe``, else the
        repository's release's.
    """

    settings: Settings
    butler: InputResolver
    cache: ResilientCache
    broker: Broker
    jobs: JobBook
    metrics: Metrics
    cache_id: str
    code_version: str = __version__
    config: PipelineConfig | None = None
    _namespace: str = field(init=False)

    def __post_init__(self) -> None:
        """Name the index namespace: repository, code and config."""
        self._namespace = canonical_hash(
            {
                "repo": self.settings.butler_repo,
                "collections": self.settings.butler_collections,
                "code_version": self.code_version,
                "config_hashes": sorted(
                    config.config_hash()
                    for config in (self.config, *RECIPES.values())
                    if config is not None
                ),
            }
        )

    async def get(
        self,
        request: ProductRequest,
        *,
        etags: frozenset[str] = frozenset(),
        body: bool = True,
        url: str = "",
        before_recompute: Callable[[], Awaitable[None]] | None = None,
    ) -> Answer:
        """Answer a request for a product's bytes.

        Parameters
        ----------
        request
            The validated request.
        etags
            The client's If-None-Match tags (a match answers 304).
        body
            False for the headers alone (HEAD): no chunk is read.
        url
            Where the product is asked for (a job record's ``url``).
        before_recompute
            Awaited on a miss, before a recreation starts: a face
            charges its caller's recompute budget here (and may raise).

        Raises
        ------
        DataNotFoundError, NoOverlapError, InvalidRequestError
            From the Butler lookup (a 4xx; nothing cached).
        NoOverlapError, KernelFitError
            The recipe's deterministic failure (a 4xx), now or
            remembered.
        OverloadedError, ServiceUnavailableError
            No room in flight, or no scheduler (a 503).
        """

        async def from_cache(key: str) -> Answer | None:
            return await self._from_cache(key, request, etags, body)

        found = await self._locate(request, from_cache)
        if not isinstance(found, TaskSpec):
            return found
        self.metrics.cache_misses.inc()
        if before_recompute is not None:
            await before_recompute()
        answer = await self._recompute(found, etags, body, url)
        if not isinstance(answer, Pending):
            await self._remember(request, found)
        return answer

    async def ensure(
        self, request: ProductRequest, *, priority: int
    ) -> Ensured:
        """Make sure a product is cached; say its key and who made it.

        For the campaign runner: a product already cached is only
        checked for (its manifest), never read.
        """
        found = await self._locate(request, self._cached_key)
        if not isinstance(found, TaskSpec):
            return Ensured(found, computed=False)
        result = await self.broker.start(found, priority=priority)
        await self._remember(request, found)
        return Ensured(found.product_key, computed=result.computed)

    async def serve_spec(
        self,
        spec: TaskSpec,
        *,
        etags: frozenset[str] = frozenset(),
        body: bool = True,
        url: str = "",
    ) -> Answer:
        """Answer a resolved spec (a large region): cached, else its task."""
        request = ProductRequest(
            spec.visit, spec.detector, spec.instrument, spec.output_format
        )
        hit = await self._from_cache(spec.product_key, request, etags, body)
        if hit is not None:
            return hit
        self.metrics.cache_misses.inc()
        return await self._recompute(spec, etags, body, url)

    async def resolve(self, request: ProductRequest) -> TaskSpec:
        """Resolve the inputs through the Butler; derive recipe and key.

        Raises
        ------
        DataNotFoundError, NoOverlapError, InvalidRequestError
            The Butler's answer for an unknown or uncovered key.
        """
        found = await asyncio.to_thread(
            self.butler.find_inputs,
            request.visit,
            request.detector,
            request.instrument or self.settings.instrument,
        )
        return self.spec_of(request, found)

    def spec_of(
        self, request: ProductRequest, found: DiffimInputs
    ) -> TaskSpec:
        """Return the spec of a request whose inputs were found.

        Raises
        ------
        InvalidRequestError
            If the request names no recipe.
        """
        config = self.config or recipe_config(
            found, request.recipe or self.settings.recipe
        )
        recipe = request_recipe(
            found, config=config, code_version=self.code_version
        )
        return TaskSpec(
            inputs=found,
            output_format=request.output_format,
            recipe=recipe,
            config=config,
            recipe_hash=recipe_hash(recipe),
            product_key=product_key(recipe, request.output_format),
            cache_id=self.cache_id,
        )

    def finished(self, spec: TaskSpec, outcome: Outcome) -> None:
        """Record a finished product in its job and in the metrics."""
        self.metrics.inflight.set(self.broker.inflight)
        if outcome.result is not None and spec.kind == SOLUTION:
            self.metrics.solves.inc(int(outcome.result.computed))
        elif outcome.result is not None and outcome.result.computed:
            self.metrics.recomputes.inc()
            self.metrics.recompute_seconds.observe(outcome.result.seconds)
        error = outcome.error
        if error is not None:
            self.metrics.failures.labels(code=error.code).inc()
            if error.user_facing and not error.transient:
                self.cache.remember_failure(
                    spec.recipe_hash, error.code, str(error)
                )
        self.jobs.finish(spec.product_key, error, outcome.finished)

    async def _locate(
        self,
        request: ProductRequest,
        probe: Callable[[str], Awaitable[A | None]],
    ) -> A | TaskSpec:
        """Find a product: the probe's answer on a hit, else its spec.

        The index is asked first (no Butler); a key it does not know, or
        whose product is gone, is resolved through the Butler once, and
        the cache probed under the new key unless it is the same one.
        """
        known = await asyncio.to_thread(
            self.cache.known_product, self._request_key(request)
        )
        if known is not None:
            hit = await probe(known)
            if hit is not None:
                return hit
        spec = await self.resolve(request)
        failure = await asyncio.to_thread(
            self.cache.known_failure, spec.recipe_hash
        )
        if failure is not None:
            raise error_class(failure["code"])(failure["message"])
        if spec.product_key != known:
            hit = await probe(spec.product_key)
            if hit is not None:
                await self._remember(request, spec)
                return hit
        return spec

    async def _remember(self, request: ProductRequest, spec: TaskSpec) -> None:
        """Remember a request's key, once its product exists.

        Only then: a request that fails (no coverage...) leaves nothing
        in the control store, and is resolved afresh next time.
        """
        await asyncio.to_thread(
            self.cache.remember_product,
            self._request_key(request),
            spec.product_key,
        )

    def _request_key(self, request: ProductRequest) -> str:
        """Return the index key of a request (in this namespace)."""
        return canonical_hash(
            {
                "namespace": self._namespace,
                "instrument": request.instrument or self.settings.instrument,
                "visit": request.visit,
                "detector": request.detector,
                "format": request.output_format.name,
                "recipe": request.recipe or self.settings.recipe,
            }
        )

    async def _cached_key(self, key: str) -> str | None:
        """Return the key of a cached product (campaigns: no chunk read)."""
        manifest = await asyncio.to_thread(self.cache.head, key)
        return None if manifest is None else key

    async def _from_cache(
        self,
        key: str,
        request: ProductRequest,
        etags: frozenset[str],
        body: bool,
    ) -> NotModified | Served | None:
        """Answer from the cache, or None on a miss."""
        value = await asyncio.to_thread(self.cache.open, key)
        if value is None:
            return None
        manifest = value.manifest
        if _matches(etags, manifest.sha256):
            return NotModified(manifest.sha256)
        stream = None
        if body:
            opened = await asyncio.to_thread(self.cache.start_reading, value)
            if opened is None:
                return None
            stream = ChunkStream(opened, self.metrics.bytes_served.inc)
        self.metrics.cache_hits.inc()
        return Served(_info(manifest, request.output_format), "hit", stream)

    async def _recompute(
        self, spec: TaskSpec, etags: frozenset[str], body: bool, url: str
    ) -> Answer:
        """Run (or join) the product's task; stream it, or answer 202."""
        task = self.broker.start(spec, priority=INTERACTIVE)
        self.metrics.inflight.set(self.broker.inflight)
        result = await self.broker.wait(
            task, self.settings.sync_timeout_seconds
        )
        if result is None:
            return Pending(spec.product_key, self.jobs.open(spec, url, task))
        if _matches(etags, result.sha256):
            return NotModified(result.sha256)
        if result.payload is not None:
            # Computed but not cached (Redis down): the bytes came back.
            self.metrics.bytes_served.inc(len(result.payload) if body else 0)
            payload = result.payload if body else None
            info = _result_info(spec, result)
            return Served(info, "miss", payload, degraded=True)
        if not body:
            return Served(_result_info(spec, result), "miss", None)
        return await self._stream_computed(spec)

    async def _stream_computed(self, spec: TaskSpec) -> Served:
        """Stream the product a worker has just cached."""
        value = await asyncio.to_thread(self.cache.open, spec.product_key)
        opened = None
        if value is not None:
            opened = await asyncio.to_thread(self.cache.start_reading, value)
        if opened is None:
            raise TransientError(
                f"the difference image of {spec.describe()} left the cache "
                "before it could be sent; ask again"
            )
        stream = ChunkStream(opened, self.metrics.bytes_served.inc)
        info = _info(opened.manifest, spec.output_format)
        return Served(info, "miss", stream)


def _matches(etags: frozenset[str], sha256: str) -> bool:
    """Whether If-None-Match names this representation."""
    return "*" in etags or sha256 in etags


def _info(manifest: Manifest, output_format: OutputFormat) -> ProductInfo:
    """Return what the response says of a cached product."""
    return ProductInfo(
        manifest.sha256, manifest.size, manifest.meta, output_format
    )


def _result_info(spec: TaskSpec, result: TaskResult) -> ProductInfo:
    """Return what the response says of a product a task returned."""
    return ProductInfo(
        result.sha256, result.size, result.meta, spec.output_format
    )
