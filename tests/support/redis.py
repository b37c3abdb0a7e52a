"""Real redis-server fixtures shared by the whole test suite.

Two session servers mirror the deployment: a blob cache (``maxmemory``
256 MB, ``allkeys-lru``, no persistence) and a control store
(``noeviction``, append-only file in a temporary directory). Each test
gets a fresh client of each, and both servers are flushed after the test
so the next one starts clean.

Import the fixtures into a ``conftest.py`` to use them::

    from tests.support.redis import (
        cache_redis,
        control_redis,
        redis_cache_server,
        redis_control_server,
    )
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from cache.server import RedisServer

__all__ = [
    "cache_redis",
    "control_redis",
    "redis_cache_server",
    "redis_control_server",
    "stored_keys",
]

#: What every request leaves in the control store: its quota counters.
QUOTA_PREFIX = "recreate:quota:"


def stored_keys(client: redis.Redis) -> list[str]:
    """Return the keys of a store, quota counters left out, sorted."""
    return sorted(
        name.decode()
        for name in client.scan_iter()
        if not name.decode().startswith(QUOTA_PREFIX)
    )


@pytest.fixture(scope="session")
def redis_cache_server() -> Iterator[RedisServer]:
    """Yield the session's blob-cache redis-server (allkeys-lru)."""
    with RedisServer(maxmemory="256mb", policy="allkeys-lru") as server:
        yield server


@pytest.fixture(scope="session")
def redis_control_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisServer]:
    """Yield the session's control redis-server (noeviction, persisted)."""
    data_dir = tmp_path_factory.mktemp("redis-control")
    with RedisServer(policy="noeviction", data_dir=data_dir) as server:
        yield server


@pytest.fixture
def cache_redis(redis_cache_server: RedisServer) -> Iterator[redis.Redis]:
    """Yield a client of the blob cache; flush it after the test."""
    yield from _flushed_client(redis_cache_server)


@pytest.fixture
def control_redis(redis_control_server: RedisServer) -> Iterator[redis.Redis]:
    """Yield a client of the control store; flush it after the test."""
    yield from _flushed_client(redis_control_server)


def _flushed_client(server: RedisServer) -> Iterator[redis.Redis]:
    """Yield a client of ``server``, then FLUSHALL and close it."""
    # A test that stopped a shared server must not break the next one.
    if not server.running:
        server.start()
    client = server.client()
    try:
        yield client
    finally:
        if not server.running:
            server.start()
        client.flushall()
        client.close()
