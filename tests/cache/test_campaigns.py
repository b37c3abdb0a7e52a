"""Campaign records in a real control Redis."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from cache import CacheUnavailableError, CampaignStore, RedisServer, campaigns

KEYS = [(10, 0), (10, 1), (11, 0), (11, 1)]


def test_a_new_campaign_has_every_key_queued(control_redis):
    store = CampaignStore(control_redis)
    campaign_id = store.create("night 1", KEYS, priority=2, instrument="X")
    record = store.get(campaign_id)
    assert record.name == "night 1"
    assert record.state == "queued"
    assert record.priority == 2
    assert record.counts == {
        "total": 4,
        "queued": 4,
        "running": 0,
        "already_cached": 0,
        "done": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert store.keys(campaign_id) == KEYS
    assert store.meta(campaign_id)["instrument"] == "X"
    assert record.eta_seconds is None


def test_counts_follow_the_key_states_and_failures_are_listed(control_redis):
    store = CampaignStore(control_redis)
    campaign_id = store.create("c", KEYS)
    store.mark(campaign_id, 0, "running")
    store.mark(campaign_id, 0, "done")
    store.mark(campaign_id, 1, "cached")
    store.mark(
        campaign_id, 2, "failed", code="no_template_overlap", message="0%"
    )
    store.mark(campaign_id, 3, "running")
    record = store.get(campaign_id)
    assert record.counts["done"] == 1
    assert record.counts["already_cached"] == 1
    assert record.counts["failed"] == 1
    assert record.counts["running"] == 1
    assert record.failed == [
        {
            "visit": 11,
            "detector": 0,
            "code": "no_template_overlap",
            "message": "0%",
        }
    ]
    assert record.started is not None
    assert record.throughput_per_minute > 0
    assert record.eta_seconds >= 0
    with pytest.raises(ValueError, match="unknown key state"):
        store.mark(campaign_id, 0, "exploded")


def test_cancel_stops_only_queued_keys(control_redis):
    store = CampaignStore(control_redis)
    campaign_id = store.create("c", KEYS)
    store.mark(campaign_id, 0, "running")
    assert store.cancel(campaign_id) == 3
    record = store.get(campaign_id)
    assert record.state == "cancelled"
    assert record.counts["cancelled"] == 3
    assert record.counts["running"] == 1
    assert record.finished is not None
    assert campaign_id not in store.active()


def test_requeue_running_and_active(control_redis):
    store = CampaignStore(control_redis)
    first = store.create("a", KEYS)
    second = store.create("b", KEYS[:1])
    store.set_state(second, "done")
    store.mark(first, 1, "running")
    store.mark(first, 2, "running")
    assert store.active() == [first]
    assert store.requeue_running(first) == 2
    assert store.get(first).counts["queued"] == 4
    assert [r.id for r in store.all()] == [second, first]


def test_unknown_campaign_is_none(control_redis):
    store = CampaignStore(control_redis)
    assert store.get("0123456789abcdef") is None
    assert store.meta("0123456789abcdef") is None


def test_an_empty_campaign_is_refused(control_redis):
    with pytest.raises(ValueError, match="at least one key"):
        CampaignStore(control_redis).create("c", [])


def test_unreachable_control_store_is_cache_unavailable():
    server = RedisServer()
    server.start()
    client = server.client()
    server.stop()
    with pytest.raises(CacheUnavailableError):
        CampaignStore(client).create("c", KEYS)


def test_touching_a_campaign_never_undoes_a_concurrent_cancel(
    control_redis, redis_control_server, monkeypatch
):
    # The runner touches the record after each key while an API thread
    # cancels: here the cancel lands between the touch's read and write.
    store = CampaignStore(control_redis)
    campaign_id = store.create("c", KEYS)
    other = CampaignStore(redis_control_server.client())
    real_loads = json.loads
    interleaved: list[bool] = []

    def loads_then_cancel(raw):
        value = real_loads(raw)
        if not interleaved:
            interleaved.append(True)
            other.set_state(campaign_id, "cancelled")
        return value

    monkeypatch.setattr(
        campaigns,
        "json",
        SimpleNamespace(loads=loads_then_cancel, dumps=json.dumps),
    )
    store.mark(campaign_id, 0, "running")
    monkeypatch.undo()
    assert interleaved
    meta = store.meta(campaign_id)
    assert meta["state"] == "cancelled"
    assert meta["started"] is not None


def test_a_campaign_keeps_its_owner_and_products(control_redis):
    store = CampaignStore(control_redis)
    mine = store.create("a", KEYS, owner="alice")
    store.create("b", KEYS, owner="bob")
    store.mark(mine, 0, "done", product="p0")
    store.mark(mine, 1, "cached", product="p1")
    assert store.products(mine) == {0: "p0", 1: "p1"}
    assert store.get(mine).owner == "alice"
    assert [r.name for r in store.all("alice")] == ["a"]
    assert [r.name for r in store.all()] == ["b", "a"]
    assert store.requeue(mine, [0, 1]) == 2
    assert store.get(mine).counts["queued"] == 4


def test_a_finished_campaign_expires_and_leaves_the_index(control_redis):
    store = CampaignStore(control_redis, ttl_seconds=1)
    done = store.create("done", KEYS)
    running = store.create("running", KEYS)
    store.set_state(running, "running")
    store.set_state(done, "done")
    assert control_redis.ttl(f"recreate:campaign:{done}:states") > 0
    assert control_redis.ttl(f"recreate:campaign:{running}:states") == -1
    time.sleep(1.2)
    assert store.get(done) is None
    assert [r.id for r in store.all()] == [running]
    assert control_redis.zrange("recreate:campaigns", 0, -1) == [
        running.encode()
    ]
    assert not list(control_redis.scan_iter(match=f"*{done}*"))
