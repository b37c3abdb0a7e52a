"""Connecting to the cache: the configuration and the stores built."""

from __future__ import annotations

import pickle
import secrets

from pydantic import SecretStr

from cache import (
    CacheStores,
    CampaignRecords,
    JobRecords,
    KernelCache,
    LockService,
    ProductCache,
    RecipeLookup,
    RedisConfig,
)
from cache.server import RedisServer


def test_the_fingerprint_reveals_no_credentials() -> None:
    secret = secrets.token_hex(12)
    plain = RedisConfig("redis://h:1/0", "redis://h:2/0")
    with_password = RedisConfig(
        "redis://h:1/0", "redis://h:2/0", password=SecretStr(secret)
    )
    in_url = RedisConfig(f"redis://:{secret}@h:1/0", "redis://h:2/0")
    assert plain.fingerprint() == with_password.fingerprint()
    assert plain.fingerprint() == in_url.fingerprint()
    assert secret not in repr(with_password)
    assert RedisConfig("redis://h:9/0").fingerprint() != plain.fingerprint()
    # The configuration itself does carry it (in the worker plugin).
    assert secret.encode() in pickle.dumps(with_password)


def test_stores_implement_the_declared_interface(
    redis_cache_server: RedisServer, redis_control_server: RedisServer
) -> None:
    stores = CacheStores.connect(
        RedisConfig(redis_cache_server.url, redis_control_server.url)
    )
    assert isinstance(stores.products, ProductCache)
    assert isinstance(stores.kernels, KernelCache)
    assert isinstance(stores.locks, LockService)
    assert isinstance(stores.jobs, JobRecords)
    assert isinstance(stores.recipes, RecipeLookup)
    assert isinstance(stores.campaigns, CampaignRecords)
    assert stores.health() == {"cache": "ok", "control": "ok"}


def test_unconfigured_stores_are_absent() -> None:
    stores = CacheStores.connect(RedisConfig())
    assert stores.products is None
    assert stores.recipes is None
    assert stores.health() == {"cache": "absent", "control": "absent"}
    no_index = CacheStores.connect(
        RedisConfig(
            control_url="redis://127.0.0.1:1/0", recipe_index_ttl_seconds=0
        )
    )
    assert no_index.jobs is not None
    assert no_index.recipes is None
