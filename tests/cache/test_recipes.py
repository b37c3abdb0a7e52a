"""The request -> product key index against a real redis-server."""

from __future__ import annotations

import time

import pytest
import redis

from cache.recipes import RecipeIndex


def test_an_entry_answers_until_its_ttl(control_redis: redis.Redis) -> None:
    index = RecipeIndex(control_redis, ttl_seconds=0.3)
    assert index.lookup("request") is None
    index.remember("request", "a" * 64)
    assert index.lookup("request") == "a" * 64
    assert 0 < control_redis.pttl("recreate:recipe:request") <= 300
    time.sleep(0.4)
    assert index.lookup("request") is None


def test_a_bad_lifetime_or_key_is_refused(control_redis: redis.Redis) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        RecipeIndex(control_redis, ttl_seconds=0)
    index = RecipeIndex(control_redis, ttl_seconds=1)
    with pytest.raises(ValueError, match="request_key"):
        index.lookup("with space")
