"""The cache of the service: Redis behind declared interfaces.

Two Redis instances back it. The blob cache (``maxmemory`` with
``allkeys-lru``: any key may vanish) holds chunked, checksummed products
(:class:`ResultStore`), solved kernels (:class:`KernelStore`) and hot
copies of solutions (:class:`RedisSolutions`, backed by the durable
:class:`SolutionFiles` at a URI); the control store (``noeviction``)
holds single-flight locks (:class:`SingleFlight`), job records
(:class:`JobStore`), the short-lived request -> product key index
(:class:`RecipeIndex`), prewarm campaigns (:class:`CampaignStore`),
remembered deterministic failures (:class:`FailureStore`), quota
counters (:class:`QuotaCounters`) and leases (:class:`Leases`).

The service sees them through the Protocols of :mod:`cache.interface`,
built by :meth:`CacheStores.connect` from a :class:`RedisConfig`, and
through :class:`ResilientCache`, the one place where "Redis down:
recompute and serve, marked degraded" is written. :class:`RedisServer`
starts a local ``redis-server`` for the embedded default and the tests;
:class:`ServerSupervisor` restarts a dead one.
"""

from __future__ import annotations

from cache._redis import quick_retry
from cache.campaigns import CampaignRecord, CampaignStore
from cache.codec import (
    DEFAULT_CHUNK_BYTES,
    ChunkInfo,
    EncodedValue,
    Manifest,
    decode,
    encode,
)
from cache.connect import CacheStores, RedisConfig, redis_client
from cache.errors import (
    CacheUnavailableError,
    CorruptValueError,
    JobNotFoundError,
    RedisServerError,
    RedisServerNotFoundError,
)
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
from cache.locks import Lock, SingleFlight
from cache.quotas import QuotaCounters
from cache.recipes import RecipeIndex
from cache.resilient import OpenedValue, ResilientCache, required
from cache.server import RedisServer, find_redis_server, free_port
from cache.solutions import RedisSolutions, SolutionFiles
from cache.store import CachedValue, ResultStore, StoredValue
from cache.supervisor import ServerSupervisor

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "CacheStores",
    "CacheUnavailableError",
    "CachedValue",
    "CampaignRecord",
    "CampaignRecords",
    "CampaignStore",
    "ChunkInfo",
    "CorruptValueError",
    "EncodedValue",
    "FailureRecords",
    "FailureStore",
    "JobNotFoundError",
    "JobRecords",
    "JobStore",
    "KernelCache",
    "KernelStore",
    "LeaseService",
    "Leases",
    "Lock",
    "LockService",
    "Manifest",
    "OpenedValue",
    "ProductCache",
    "QuotaCounters",
    "QuotaLedger",
    "RecipeIndex",
    "RecipeLookup",
    "RedisConfig",
    "RedisServer",
    "RedisServerError",
    "RedisServerNotFoundError",
    "RedisSolutions",
    "ResilientCache",
    "ResultStore",
    "ServerSupervisor",
    "SingleFlight",
    "SolutionArchive",
    "SolutionCache",
    "SolutionFiles",
    "StoredValue",
    "decode",
    "encode",
    "find_redis_server",
    "free_port",
    "quick_retry",
    "redis_client",
    "required",
]
