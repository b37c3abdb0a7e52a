"""The service's own job records."""

from __future__ import annotations

import asyncio
import time

from workers.services import Services
from workers.settings import Settings
from workers.state import RedisStores
from workers.tasks import TaskSpec


def _spec(visit: int) -> TaskSpec:
    return TaskSpec("LSSTComCam", visit, 4, "dp1", f"key-{visit}")


def test_local_job_records_expire_as_the_job_store_would(monkeypatch):
    # No control Redis: the local records are the only ones.
    services = Services(
        settings=Settings(job_ttl_seconds=60),
        butler=None,  # type: ignore[arg-type]
        stores=RedisStores(),
        broker=None,  # type: ignore[arg-type]
    )

    async def open_two() -> None:
        running = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(running)
        services.open_job(_spec(1), "http://x/1", task)
        later = time.time() + 61
        monkeypatch.setattr(time, "time", lambda: later)
        services.open_job(_spec(2), "http://x/2", task)
        task.cancel()

    asyncio.run(open_two())
    assert services.job("key-1") is None
    assert services.job("key-2")["state"] == "running"
