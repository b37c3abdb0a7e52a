"""Redis down or absent: every call of the resilient cache answers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cache import CacheStores, RedisConfig, ResilientCache, required
from cache.server import RedisServer
from recreate.errors import ServiceUnavailableError


@pytest.fixture
def servers() -> Iterator[tuple[RedisServer, RedisServer]]:
    """Servers of this test alone: it stops them."""
    with (
        RedisServer(maxmemory="64mb", policy="allkeys-lru") as cache,
        RedisServer(policy="noeviction") as control,
    ):
        yield cache, control


def _every_call(cache: ResilientCache) -> dict[str, object]:
    """Call each method once; return what each answered."""
    with cache.single_flight("k", wait_seconds=0.1) as held:
        locked = held
    value = cache.open("k")
    return {
        "put": cache.put("k", b"data", {"visit": 1}),
        "head": cache.head("k"),
        "open": value,
        "kernel": cache.kernel("r"),
        "keep_kernel": cache.keep_kernel("r", "{}"),
        "single_flight": locked,
        "create_job": cache.create_job("j", {"state": "running"}),
        "update_job": cache.update_job("j", state="done"),
        "job": cache.job("j"),
        "count": cache.count("n"),
        "known_product": cache.known_product("q"),
        "remember_product": cache.remember_product("q", "k"),
    }


NOTHING = {
    "put": None,
    "head": None,
    "open": None,
    "kernel": None,
    "keep_kernel": None,
    "single_flight": True,
    "create_job": None,
    "update_job": None,
    "job": None,
    "count": None,
    "known_product": None,
    "remember_product": None,
}


def test_without_redis_every_call_answers_as_a_miss():
    cache = ResilientCache(CacheStores.connect(RedisConfig()))
    assert _every_call(cache) == NOTHING
    assert not cache.degraded


def test_redis_down_answers_as_a_miss_and_marks_degraded(servers, caplog):
    cache_server, control_server = servers
    cache = ResilientCache(
        CacheStores.connect(RedisConfig(cache_server.url, control_server.url))
    )
    up = _every_call(cache)
    assert up["head"] is not None
    assert up["job"]["state"] == "done"
    assert up["known_product"] is None  # remembered after the lookup
    assert cache.known_product("q") == "k"
    assert not cache.degraded
    cache_server.stop()
    control_server.stop()
    with caplog.at_level(logging.WARNING, logger="cache.resilient"):
        assert _every_call(cache) == NOTHING
    assert cache.degraded
    # Logged once when the cache went away, not once per call.
    assert caplog.text.count("cache unavailable") == 1
    cache_server.restart()
    control_server.restart()
    assert cache.put("k", b"x", {}) is not None
    assert not cache.degraded


def test_a_broken_entry_reads_as_a_miss_and_is_counted(servers):
    cache_server, _ = servers
    counted = []
    cache = ResilientCache(
        CacheStores.connect(RedisConfig(cache_server.url, chunk_bytes=65536)),
        on_corrupt=lambda: counted.append(1),
    )
    manifest = cache.put("k", bytes(200_000), {})
    client = cache_server.client()
    client.delete(f"recreate:blob:k:{manifest.token}:1")
    assert cache.open("k") is None
    assert counted == [1]


def test_a_lock_held_elsewhere_is_waited_for(servers):
    _, control_server = servers
    config = RedisConfig(control_url=control_server.url)
    mine = ResilientCache(CacheStores.connect(config))
    other = ResilientCache(CacheStores.connect(config))
    with mine.single_flight("k", wait_seconds=5) as held:
        assert held
        with other.single_flight("k", wait_seconds=0.2) as also_held:
            # Waited (0.2 s, the holder still holds it): do not compute.
            assert not also_held


def test_required_turns_an_outage_into_a_503(servers):
    _, control_server = servers
    stores = CacheStores.connect(RedisConfig(control_url=control_server.url))
    control_server.stop()
    with (
        pytest.raises(ServiceUnavailableError, match="the control store"),
        required("the control store"),
    ):
        stores.campaigns.all()
