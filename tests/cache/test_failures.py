"""The negative cache and the quota counters in a real control Redis."""

from __future__ import annotations

import time

import pytest

from cache import FailureStore, QuotaCounters


def test_a_failure_is_remembered_for_its_ttl(control_redis):
    store = FailureStore(control_redis, ttl_seconds=0.3)
    assert store.recall("abc") is None
    store.remember("abc", "kernel_fit_failed", "only 2 stars")
    assert store.recall("abc") == {
        "code": "kernel_fit_failed",
        "message": "only 2 stars",
    }
    time.sleep(0.4)
    assert store.recall("abc") is None


def test_a_damaged_entry_is_a_miss(control_redis):
    control_redis.set("recreate:failure:abc", b"{not json")
    assert FailureStore(control_redis, ttl_seconds=5).recall("abc") is None


def test_a_recipe_hash_with_control_characters_is_refused(control_redis):
    with pytest.raises(ValueError, match="control"):
        FailureStore(control_redis, ttl_seconds=5).recall("a\x01b")


def test_quota_windows_count_and_restart(control_redis):
    counters = QuotaCounters(control_redis)
    assert counters.spend("cutout:x", 0.3)[0] == 1
    spent, left = counters.spend("cutout:x", 0.3)
    assert spent == 2
    assert 0 < left <= 0.3
    assert counters.spend("cutout:y", 0.3)[0] == 1
    time.sleep(0.35)
    assert counters.spend("cutout:x", 0.3)[0] == 1
