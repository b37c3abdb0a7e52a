"""Tests of cache.store against a real redis-server."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.client

from cache.codec import DEFAULT_CHUNK_BYTES
from cache.errors import CacheUnavailableError
from cache.kernels import KernelStore
from cache.server import RedisServer
from cache.store import ResultStore

SMALL_CHUNK = 64 * 1024


def _mixed(n_random: int, n_zero: int) -> bytes:
    return os.urandom(n_random) + bytes(n_zero)


def _entry_keys(client: redis.Redis, key: str) -> list[bytes]:
    """Every Redis key that belongs to the cache entry ``key``."""
    names = client.keys(f"recreate:result:{key}")
    names += client.keys(f"recreate:blob:{key}:*")
    return sorted(names)


@pytest.fixture
def store(cache_redis: redis.Redis) -> ResultStore:
    return ResultStore(cache_redis, chunk_bytes=SMALL_CHUNK)


@pytest.fixture
def private_server() -> Iterator[RedisServer]:
    """A server of this test alone, which it may stop."""
    with RedisServer(maxmemory="64mb", policy="allkeys-lru") as server:
        yield server


def test_put_get_round_trip(store: ResultStore) -> None:
    data = _mixed(5 * SMALL_CHUNK + 7, 3 * SMALL_CHUNK)
    manifest = store.put("abc", data, meta={"visit": 1, "detector": 42})
    cached = store.get("abc")
    assert cached is not None
    assert cached.data == data
    assert cached.manifest == manifest
    assert cached.manifest.meta == {"visit": 1, "detector": 42}
    assert cached.manifest.sha256 == manifest.sha256
    assert store.head("abc") == manifest
    assert store.get("other") is None
    assert store.head("other") is None


def test_empty_value_round_trip(store: ResultStore) -> None:
    store.put("empty", b"", meta={})
    cached = store.get("empty")
    assert cached is not None
    assert cached.data == b""


def test_large_value_is_split_into_chunk_keys(
    cache_redis: redis.Redis,
) -> None:
    store = ResultStore(cache_redis)
    data = os.urandom(20 * 1024 * 1024)
    manifest = store.put("big", data, meta={})
    chunk_names = cache_redis.keys("recreate:blob:big:*")
    assert len(chunk_names) == len(manifest.chunks) == 5
    for name in chunk_names:
        assert 0 < cache_redis.strlen(name) <= DEFAULT_CHUNK_BYTES
    cached = store.get("big")
    assert cached is not None
    assert cached.data == data


def test_evicted_chunk_drops_the_entry(
    store: ResultStore, cache_redis: redis.Redis
) -> None:
    manifest = store.put("k", _mixed(4 * SMALL_CHUNK, 0), meta={})
    cache_redis.delete(f"recreate:blob:k:{manifest.token}:2")
    assert store.get("k") is None
    assert store.corrupt_dropped == 1
    assert _entry_keys(cache_redis, "k") == []


def test_corrupt_chunk_drops_the_entry(
    store: ResultStore,
    cache_redis: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = store.put("k", _mixed(2 * SMALL_CHUNK, SMALL_CHUNK), meta={})
    name = f"recreate:blob:k:{manifest.token}:1"
    stored = cache_redis.get(name)
    assert isinstance(stored, bytes)
    cache_redis.setrange(name, 10, bytes([stored[10] ^ 0xFF]))
    with caplog.at_level(logging.WARNING, logger="cache.store"):
        assert store.get("k") is None
    assert "chunk 1" in caplog.text
    assert store.corrupt_dropped == 1
    assert _entry_keys(cache_redis, "k") == []


def test_malformed_manifest_drops_the_entry(
    store: ResultStore, cache_redis: redis.Redis
) -> None:
    store.put("k", _mixed(2 * SMALL_CHUNK, 0), meta={})
    raw = cache_redis.get("recreate:result:k")
    assert isinstance(raw, bytes)
    # Keeps the token and chunk count but breaks the checksum field.
    cache_redis.set(
        "recreate:result:k", raw.replace(b'"sha256":"', b'"sha256":"z')
    )
    assert store.head("k") is None
    assert store.corrupt_dropped == 1
    assert _entry_keys(cache_redis, "k") == []


def test_unparseable_manifest_reads_as_miss(
    store: ResultStore, cache_redis: redis.Redis
) -> None:
    cache_redis.set("recreate:result:k", b'{"version": 1, "si')
    assert store.get("k") is None
    assert store.corrupt_dropped == 1
    assert cache_redis.exists("recreate:result:k") == 0


def test_rewrite_leaves_no_orphan_chunks(
    store: ResultStore, cache_redis: redis.Redis
) -> None:
    first = store.put("k", _mixed(3 * SMALL_CHUNK, 0), meta={"n": 1})
    second = store.put("k", _mixed(2 * SMALL_CHUNK, 0), meta={"n": 2})
    assert first.token != second.token
    names = cache_redis.keys("recreate:blob:k:*")
    assert len(names) == 2
    assert all(
        second.token is not None and second.token.encode() in n for n in names
    )
    cached = store.get("k")
    assert cached is not None
    assert cached.manifest.meta == {"n": 2}


def test_concurrent_rewrites_stay_consistent(
    store: ResultStore, cache_redis: redis.Redis
) -> None:
    values = [_mixed(2 * SMALL_CHUNK, SMALL_CHUNK) for _ in range(4)]

    def write(value: bytes) -> None:
        for _ in range(5):
            store.put("k", value, meta={})

    threads = [threading.Thread(target=write, args=(v,)) for v in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cached = store.get("k")
    assert cached is not None
    assert cached.data in values
    assert len(cache_redis.keys("recreate:blob:k:*")) == 3


def test_ttl_on_manifest_and_chunks(cache_redis: redis.Redis) -> None:
    store = ResultStore(cache_redis, ttl_seconds=1000, chunk_bytes=SMALL_CHUNK)
    store.put("k", _mixed(2 * SMALL_CHUNK, 0), meta={})
    names = _entry_keys(cache_redis, "k")
    assert len(names) == 3
    for name in names:
        assert 990 <= cache_redis.ttl(name) <= 1000


def test_delete_and_keys(store: ResultStore, cache_redis: redis.Redis) -> None:
    store.put("a", b"one", meta={})
    store.put("b:with:colons", _mixed(SMALL_CHUNK + 1, 0), meta={})
    KernelStore(cache_redis).put_kernel("a", "{}")
    assert store.keys() == ["a", "b:with:colons"]
    assert store.delete("b:with:colons") is True
    assert store.delete("b:with:colons") is False
    assert _entry_keys(cache_redis, "b:with:colons") == []
    assert store.keys() == ["a"]


def test_keys_ignore_other_prefixes(cache_redis: redis.Redis) -> None:
    ResultStore(cache_redis, prefix="one").put("x", b"1", meta={})
    ResultStore(cache_redis, prefix="two*").put("y", b"2", meta={})
    assert ResultStore(cache_redis, prefix="one").keys() == ["x"]
    assert ResultStore(cache_redis, prefix="two*").keys() == ["y"]


@pytest.mark.parametrize("key", ["", "with space", "tab\there"])
def test_bad_keys_are_rejected(store: ResultStore, key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        store.put(key, b"x", meta={})


def test_decoding_client_is_rejected(
    redis_cache_server: RedisServer,
) -> None:
    client = redis_cache_server.client(decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode"):
            ResultStore(client)
    finally:
        client.close()


def test_kernel_round_trip(cache_redis: redis.Redis) -> None:
    store = KernelStore(cache_redis)
    kernel = '{"coefficients": [0.1, 0.2], "size": 23}'
    store.put_kernel("recipe1", kernel)
    assert store.get_kernel("recipe1") == kernel
    assert store.get_kernel("recipe2") is None
    ttl = cache_redis.ttl("recreate:kernel:recipe1")
    assert 29 * 86400 < ttl <= 30 * 86400


def test_corrupt_kernel_is_dropped(cache_redis: redis.Redis) -> None:
    store = KernelStore(cache_redis)
    store.put_kernel("recipe1", '{"size": 23}')
    cache_redis.setrange("recreate:kernel:recipe1", 40, b"5")
    assert store.get_kernel("recipe1") is None
    assert store.corrupt_dropped == 1
    assert cache_redis.exists("recreate:kernel:recipe1") == 0


def test_ping_and_errors_on_a_stopped_server(
    private_server: RedisServer,
) -> None:
    client = private_server.client()
    store = ResultStore(client)
    kernels = KernelStore(client)
    try:
        assert store.ping() is True
        private_server.stop()
        assert store.ping() is False
        with pytest.raises(CacheUnavailableError) as info:
            store.get("k")
        assert f"127.0.0.1:{private_server.port}" in str(info.value)
        for call in (
            lambda: store.put("k", b"x", meta={}),
            lambda: store.head("k"),
            store.keys,
            lambda: kernels.get_kernel("k"),
        ):
            with pytest.raises(CacheUnavailableError):
                call()
    finally:
        client.close()


def test_put_refused_by_redis_leaves_nothing() -> None:
    # A noeviction server that fills up refuses writes mid-put (OOM).
    with RedisServer(maxmemory="3mb", policy="noeviction") as server:
        client = server.client()
        try:
            store = ResultStore(client, chunk_bytes=512 * 1024)
            with pytest.raises(CacheUnavailableError, match="OutOfMemory"):
                store.put("k", os.urandom(8 * 1024 * 1024), meta={})
            # Some chunks were written before the refusal, then removed.
            assert client.info("commandstats")["cmdstat_set"]["calls"] > 0
            assert client.dbsize() == 0
        finally:
            client.close()


def _stop_before_call(
    monkeypatch: pytest.MonkeyPatch, server: RedisServer, call: int
) -> None:
    """Stop ``server`` just before the ``call``-th pipeline execute."""
    original: Callable[..., Any] = redis.client.Pipeline.execute
    calls = {"n": 0}

    def execute(self: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            server.stop()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)


def test_put_cut_off_mid_way_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Persistence on, so what reached Redis before the cut can be read.
    server = RedisServer(data_dir=tmp_path / "data")
    with server:
        client = server.client()
        try:
            store = ResultStore(client)
            _stop_before_call(monkeypatch, server, call=2)
            with pytest.raises(CacheUnavailableError):
                store.put("k", os.urandom(5 * DEFAULT_CHUNK_BYTES), meta={})
            monkeypatch.undo()
            server.start()
            assert client.exists("recreate:result:k") == 0
            assert store.get("k") is None
            # The first batch landed; its chunks expire with their TTL.
            leftovers = client.keys("recreate:blob:k:*")
            assert leftovers
            assert all(client.ttl(name) > 0 for name in leftovers)
        finally:
            client.close()
