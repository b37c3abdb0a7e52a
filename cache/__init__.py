"""Redis layer of the service: value codec, result store, locks, jobs.

Two Redis instances back it: the blob cache (``maxmemory`` with
``allkeys-lru``: any key may vanish) holds chunked results and kernels
through :class:`ResultStore`; the control store (``noeviction``) holds
single-flight locks (:class:`SingleFlight`), job records
(:class:`JobStore`) and prewarm campaigns (:class:`CampaignStore`).
:class:`RedisServer` starts a local ``redis-server`` for the embedded
default and the tests.
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
from cache.errors import (
    CacheUnavailableError,
    CorruptValueError,
    JobNotFoundError,
    RedisServerError,
    RedisServerNotFoundError,
)
from cache.jobs import JobStore
from cache.locks import Lock, SingleFlight
from cache.server import RedisServer, find_redis_server, free_port
from cache.store import CachedValue, ResultStore

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "CacheUnavailableError",
    "CachedValue",
    "CampaignRecord",
    "CampaignStore",
    "ChunkInfo",
    "CorruptValueError",
    "EncodedValue",
    "JobNotFoundError",
    "JobStore",
    "Lock",
    "Manifest",
    "RedisServer",
    "RedisServerError",
    "RedisServerNotFoundError",
    "ResultStore",
    "SingleFlight",
    "decode",
    "encode",
    "find_redis_server",
    "free_port",
    "quick_retry",
]
