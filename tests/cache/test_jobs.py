"""Tests of cache.jobs against a real redis-server."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from cache.errors import CorruptValueError, JobNotFoundError
from cache.jobs import JobStore


def test_create_get_update(control_redis: redis.Redis) -> None:
    jobs = JobStore(control_redis, ttl_seconds=100)
    before = time.time()
    jobs.create("j1", {"visit": 7, "detector": 42})
    record = jobs.get("j1")
    assert record is not None
    assert record["state"] == "queued"
    assert record["id"] == "j1"
    assert (record["visit"], record["detector"]) == (7, 42)
    assert before <= record["created"] == record["updated"] <= time.time()

    control_redis.expire("recreate:job:j1", 10)
    jobs.update("j1", state="executing", progress=0.5)
    updated = jobs.get("j1")
    assert updated is not None
    assert updated["state"] == "executing"
    assert updated["progress"] == 0.5
    assert updated["visit"] == 7
    assert updated["created"] == record["created"]
    assert updated["updated"] >= record["updated"]
    assert control_redis.ttl("recreate:job:j1") > 90
    assert jobs.get("missing") is None


def test_update_of_missing_job_raises(control_redis: redis.Redis) -> None:
    jobs = JobStore(control_redis)
    with pytest.raises(JobNotFoundError, match="nope"):
        jobs.update("nope", state="done")
    assert control_redis.exists("recreate:job:nope") == 0


def test_store_owned_fields_are_rejected(control_redis: redis.Redis) -> None:
    jobs = JobStore(control_redis)
    with pytest.raises(ValueError, match="created"):
        jobs.create("j", {"created": 1})
    jobs.create("j", {})
    with pytest.raises(ValueError, match="id"):
        jobs.update("j", id="other")


def test_concurrent_updates_are_not_lost(control_redis: redis.Redis) -> None:
    jobs = JobStore(control_redis)
    jobs.create("j", {})

    def update(index: int) -> None:
        jobs.update("j", **{f"field{index}": index})

    threads = [threading.Thread(target=update, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = jobs.get("j")
    assert record is not None
    assert all(record[f"field{i}"] == i for i in range(8))


def test_corrupt_record_raises(control_redis: redis.Redis) -> None:
    jobs = JobStore(control_redis)
    control_redis.set("recreate:job:j", b"[1, 2]")
    with pytest.raises(CorruptValueError, match="JSON object"):
        jobs.get("j")


def test_delete(control_redis: redis.Redis) -> None:
    jobs = JobStore(control_redis)
    jobs.create("j", {})
    assert jobs.delete("j") is True
    assert jobs.delete("j") is False
    assert jobs.get("j") is None


def test_counters(control_redis: redis.Redis) -> None:
    jobs = JobStore(control_redis)
    assert jobs.counter("recomputes") == 0
    assert jobs.incr("recomputes") == 1
    assert jobs.incr("recomputes", 4) == 5
    other = JobStore(control_redis)
    assert other.counter("recomputes") == 5
    assert control_redis.get("recreate:counter:recomputes") == b"5"


def test_ids_lists_one_kind_of_job(control_redis: redis.Redis) -> None:
    store = JobStore(control_redis)
    for job_id in ("soda-1", "soda-2", "stamps-1", "soda*x"):
        store.create(job_id, {})
    store.incr("soda-counter")
    assert store.ids("soda-") == ["soda-1", "soda-2"]
    # Glob characters in a prefix are taken literally.
    assert store.ids("soda*") == ["soda*x"]
    assert store.ids("none-") == []
