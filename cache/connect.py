"""Connect to the service's two Redis instances and build its stores.

`RedisConfig` is everything a process needs to reach the cache: the two
URLs, the password, the lifetimes and the solution store's URI. The API
builds it from its settings; a Dask worker receives it once, in its
worker plugin, never with each task. `CacheStores.connect` makes the
clients and the stores (`cache.interface`), each None when its Redis
(or the solution store) is not configured.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from pydantic import SecretStr

from cache._redis import quick_retry
from cache.campaigns import CampaignStore
from cache.codec import DEFAULT_CHUNK_BYTES
from cache.failures import FailureStore
from cache.interface import (
    CampaignRecords,
    FailureRecords,
    JobRecords,
    KernelCache,
    LeaseService,
    LockService,
    ProductCache,
    QuotaLedger,
    RecipeLookup,
    SolutionArchive,
    SolutionCache,
)
from cache.jobs import JobStore
from cache.kernels import KernelStore
from cache.leases import Leases
from cache.locks import SingleFlight
from cache.quotas import QuotaCounters
from cache.recipes import RecipeIndex
from cache.solutions import RedisSolutions, SolutionFiles
from cache.store import ResultStore

__all__ = ["CacheStores", "RedisConfig", "redis_client"]

#: Seconds a Redis command may take: a few MB per command by design.
REDIS_SOCKET_TIMEOUT = 30.0
REDIS_CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True)
class RedisConfig:
    """Where the cache is and how long things live in it.

    Attributes
    ----------
    cache_url, control_url
        The blob cache and the control store (None: not configured).
    password
        For both, when their URLs carry none (never in ``repr``).
    lock_ttl_seconds, lock_wait_seconds
        The single-flight lock's lease (renewed by a live holder), and
        the longest a task waits for a live holder.
    failure_ttl_seconds
        How long a deterministic failure of a recipe is remembered.
    campaign_ttl_seconds
        How long a finished campaign is kept.
    recipe_index_ttl_seconds
        Lifetime of a request -> product key entry; 0 turns the index
        off.
    solution_store
        The durable store of solutions: a URI lsst-resources reads and
        writes (None: none, solutions live in Redis only).
    solution_ttl_seconds
        Lifetime of a solution's hot copy in the blob cache.
    """

    cache_url: str | None = None
    control_url: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    cache_ttl_seconds: int = 7 * 86400
    kernel_ttl_seconds: int = 30 * 86400
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    lock_ttl_seconds: float = 3.0
    lock_wait_seconds: float = 600.0
    failure_ttl_seconds: int = 3600
    campaign_ttl_seconds: int = 7 * 86400
    job_ttl_seconds: int = 86400
    recipe_index_ttl_seconds: float = 60.0
    solution_store: str | None = None
    solution_ttl_seconds: int = 30 * 86400

    def fingerprint(self) -> str:
        """Return an id of this configuration that reveals no secret.

        The password and any credentials in the URLs are left out: a
        task names the configuration it needs by this id.
        """
        public = asdict(self)
        public.pop("password")
        for name in ("cache_url", "control_url"):
            public[name] = _without_credentials(public[name])
        text = json.dumps(public, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def _without_credentials(url: str | None) -> str | None:
    """Return a URL with its user and password removed."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host).geturl()


def redis_client(url: str, password: SecretStr | None = None) -> redis.Redis:
    """Return a client for one Redis instance.

    Timeouts are seconds, not milliseconds: a multi-MB chunk must not
    time out, but an unreachable server must fail fast enough for the
    service to degrade instead of hanging.
    """
    options: dict[str, Any] = {
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "health_check_interval": 30,
        # redis-py retries ten times by default: a dead server would hold
        # every request (and the health probe) for seconds.
        "retry": quick_retry(),
    }
    if password is not None and "@" not in url:
        options["password"] = password.get_secret_value()
    return redis.Redis.from_url(url, **options)


@dataclass(frozen=True)
class CacheStores:
    """The Redis clients and the stores over them, as configured.

    Each part is None when its Redis URL is unset.
    """

    cache_client: redis.Redis | None = None
    control_client: redis.Redis | None = None
    products: ProductCache | None = None
    kernels: KernelCache | None = None
    locks: LockService | None = None
    jobs: JobRecords | None = None
    recipes: RecipeLookup | None = None
    campaigns: CampaignRecords | None = None
    solutions: SolutionCache | None = None
    solution_files: SolutionArchive | None = None
    failures: FailureRecords | None = None
    quotas: QuotaLedger | None = None
    leases: LeaseService | None = None

    @classmethod
    def connect(cls, config: RedisConfig) -> CacheStores:
        """Return clients and stores for the configured Redis URLs."""
        parts: dict[str, Any] = {}
        if config.cache_url:
            cache = redis_client(config.cache_url, config.password)
            parts.update(
                cache_client=cache,
                products=ResultStore(
                    cache,
                    ttl_seconds=config.cache_ttl_seconds,
                    chunk_bytes=config.chunk_bytes,
                ),
                kernels=KernelStore(
                    cache, ttl_seconds=config.kernel_ttl_seconds
                ),
                solutions=RedisSolutions(
                    cache, ttl_seconds=config.solution_ttl_seconds
                ),
            )
        if config.solution_store:
            parts["solution_files"] = SolutionFiles(config.solution_store)
        if config.control_url:
            control = redis_client(config.control_url, config.password)
            parts.update(
                control_client=control,
                locks=SingleFlight(
                    control, ttl_seconds=config.lock_ttl_seconds
                ),
                jobs=JobStore(control, ttl_seconds=config.job_ttl_seconds),
                campaigns=CampaignStore(
                    control, ttl_seconds=config.campaign_ttl_seconds
                ),
                failures=FailureStore(
                    control, ttl_seconds=config.failure_ttl_seconds
                ),
                quotas=QuotaCounters(control),
                leases=Leases(control),
            )
            if config.recipe_index_ttl_seconds > 0:
                parts["recipes"] = RecipeIndex(
                    control, ttl_seconds=config.recipe_index_ttl_seconds
                )
        return cls(**parts)

    def health(self) -> dict[str, str]:
        """Return ``ok``, ``down`` or ``absent`` for each instance."""
        return {
            "cache": _ping(self.cache_client),
            "control": _ping(self.control_client),
        }


def _ping(client: redis.Redis | None) -> str:
    """Return ok, down, or absent for one Redis instance."""
    if client is None:
        return "absent"
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return "down"
    return "ok"
