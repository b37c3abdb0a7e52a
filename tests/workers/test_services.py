"""The service's own job records (`workers.jobs.JobBook`)."""

from __future__ import annotations

import asyncio
import time

from cache import CacheStores, ResilientCache
from recreate.butler import DatasetHandle, DiffimInputs
from recreate.formats import get_format
from recreate.pipeline.recipes import DP1
from workers.jobs import JobBook
from workers.models import TaskSpec


def _spec(visit: int) -> TaskSpec:
    handle = DatasetHandle(
        "visit_image", f"id-{visit}", "run", {}, "file:///x"
    )
    inputs = DiffimInputs("LSSTComCam", visit, 4, "r", "r_03", 1, handle)
    recipe = {"inputs": [], "config_hash": "c", "code_version": "v"}
    return TaskSpec(
        inputs, get_format("dp1"), recipe, DP1, "r", f"key-{visit}", "cache"
    )


def test_local_job_records_expire_as_the_job_store_would(monkeypatch):
    # No control Redis: the local records are the only ones.
    jobs = JobBook(ResilientCache(CacheStores()), ttl_seconds=60)

    async def open_two() -> None:
        running = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(running)
        jobs.open(_spec(1), "http://x/1", task)
        later = time.time() + 61
        monkeypatch.setattr(time, "time", lambda: later)
        jobs.open(_spec(2), "http://x/2", task)
        task.cancel()

    asyncio.run(open_two())
    assert jobs.get("key-1") is None
    assert jobs.get("key-2")["state"] == "running"
