"""Streaming a stored value: `ResultStore.open` and `read_chunks`."""

from __future__ import annotations

import os

import pytest
import redis

from cache.errors import CorruptValueError
from cache.store import ResultStore

SMALL_CHUNK = 64 * 1024


@pytest.fixture
def store(cache_redis: redis.Redis) -> ResultStore:
    return ResultStore(cache_redis, chunk_bytes=SMALL_CHUNK)


def _value() -> bytes:
    # Random chunks are stored raw, zeros compressed: both codecs.
    return os.urandom(3 * SMALL_CHUNK) + bytes(2 * SMALL_CHUNK + 17)


def test_chunks_stream_back_the_value(store: ResultStore) -> None:
    data = _value()
    manifest = store.put("k", data, meta={"visit": 1})
    value = store.open("k")
    assert value is not None
    assert value.manifest == manifest
    chunks = list(store.read_chunks(value))
    assert len(chunks) == 6
    assert b"".join(chunks) == data
    assert store.open("other") is None


def test_an_evicted_chunk_is_found_before_reading(
    store: ResultStore, cache_redis: redis.Redis
) -> None:
    manifest = store.put("k", _value(), meta={})
    cache_redis.delete(f"recreate:blob:k:{manifest.token}:4")
    with pytest.raises(CorruptValueError, match="chunk 4"):
        store.open("k")
    assert store.corrupt_dropped == 1
    assert cache_redis.exists("recreate:result:k") == 0
    assert store.open("k") is None


def test_a_corrupt_chunk_stops_the_stream_and_drops_the_entry(
    store: ResultStore, cache_redis: redis.Redis
) -> None:
    data = _value()
    manifest = store.put("k", data, meta={})
    name = f"recreate:blob:k:{manifest.token}:2"
    stored = cache_redis.get(name)
    assert isinstance(stored, bytes)
    # Same length: only the checksum can tell.
    cache_redis.setrange(name, 5, bytes([stored[5] ^ 0xFF]))
    value = store.open("k")
    assert value is not None
    chunks = store.read_chunks(value)
    sent = [next(chunks), next(chunks)]
    assert b"".join(sent) == data[: 2 * SMALL_CHUNK]
    with pytest.raises(CorruptValueError, match="chunk 2"):
        next(chunks)
    assert store.corrupt_dropped == 1
    assert cache_redis.keys("recreate:*") == []
