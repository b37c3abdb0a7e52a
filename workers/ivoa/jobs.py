"""Asynchronous cutout jobs: records, runs, results.

SODA's asynchronous cutouts (UWS) and light curves (stamp series) are
jobs: a record in the control store (the service's job store, shared by
every API process), a run in this API process (an asyncio task that asks
the product service and the region seam for its cutouts, a few at a
time), and results in the blob cache. A result evicted before its job
expires is made again from the job's parameters when it is fetched:
cutouts are deterministic, so the bytes are the same.

Phases are UWS 1.1's: PENDING, QUEUED, EXECUTING, COMPLETED, ERROR,
ABORTED. A job whose run is gone (its API process died) is reported as
ERROR once it has been silent for its execution duration. Aborting
stops the run; a recreation it started still finishes and fills the
cache (Dask never interrupts a task).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cache import ResilientCache, required
from cache.interface import JobRecords
from recreate.errors import ServiceUnavailableError
from workers.ivoa.params import protocol_error

log = logging.getLogger(__name__)

PENDING = "PENDING"
QUEUED = "QUEUED"
EXECUTING = "EXECUTING"
COMPLETED = "COMPLETED"
ERROR = "ERROR"
ABORTED = "ABORTED"
#: Phases a job does not leave.
FINAL = frozenset({COMPLETED, ERROR, ABORTED})
PHASES = (PENDING, QUEUED, EXECUTING, COMPLETED, ERROR, ABORTED)

CONTROL_STORE = "the control store"

#: How often a blocking wait looks at the record again.
POLL_SECONDS = 0.1


@dataclass
class Progress:
    """What a run reports: work done of the total, results kept."""

    runner: JobRunner
    job_id: str
    total: int
    done: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)

    async def advance(self, count: int = 1, **extra: Any) -> None:
        """Count finished work and save the progress in the record."""
        self.done += count
        await self.runner.update(
            self.job_id,
            progress={"done": self.done, "total": self.total},
            results=self.results,
            **extra,
        )

    async def keep(
        self, name: str, data: bytes | None, media_type: str
    ) -> None:
        """Keep one result (None: an empty one, e.g. no overlap)."""
        entry: dict[str, Any] = {
            "id": name,
            "media_type": media_type,
            "size": 0 if data is None else len(data),
            "empty": data is None,
        }
        if data is not None:
            await asyncio.to_thread(
                self.runner.cache.put,
                result_key(self.job_id, name),
                data,
                {"job": self.job_id, "result": name},
            )
        self.results.append(entry)


#: A job's work: given its progress, make and keep its results.
Work = Callable[[Progress], Awaitable[None]]


def result_key(job_id: str, name: str) -> str:
    """Return the cache key of one result of a job."""
    return f"job-result:{job_id}:{name}"


@dataclass
class JobRunner:
    """Create, run, follow, abort and delete asynchronous jobs.

    Parameters
    ----------
    cache
        The service's cache: job records in the control store, results
        in the blob cache.
    lifetime_seconds
        How long a record is kept (UWS destruction).
    execution_seconds
        Longest run (UWS executionDuration).
    """

    cache: ResilientCache
    lifetime_seconds: float
    execution_seconds: float
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def _store(self) -> JobRecords:
        """Return the job store, or 503 when there is none."""
        store = self.cache.stores.jobs
        if store is None:
            raise ServiceUnavailableError(
                "asynchronous jobs need the control store (Redis), which "
                "is not set up"
            )
        return store

    async def create(
        self, kind: str, parameters: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        """Record a new PENDING job of a kind; return its record."""
        job_id = f"{kind}-{secrets.token_hex(8)}"
        now = time.time()
        fields = {
            "kind": kind,
            "phase": PENDING,
            "parameters": parameters,
            "creation_time": now,
            "start_time": None,
            "end_time": None,
            "destruction": now + self.lifetime_seconds,
            "execution_duration": self.execution_seconds,
            "progress": {"done": 0, "total": 0},
            "results": [],
            "error": None,
            **extra,
        }
        store = self._store()
        with required(CONTROL_STORE):
            await asyncio.to_thread(store.create, job_id, fields)
        return {"id": job_id, **fields}

    async def get(self, job_id: str) -> dict[str, Any] | None:
        """Return a job's record (None if unknown or expired)."""
        store = self._store()
        with required(CONTROL_STORE):
            record = await asyncio.to_thread(store.get, job_id)
        if record is None:
            return None
        return self._orphan_checked(record)

    def _orphan_checked(self, record: dict[str, Any]) -> dict[str, Any]:
        """Report a run that went silent with its process as an error."""
        silent = time.time() - float(record.get("updated", 0))
        if (
            record.get("phase") in (QUEUED, EXECUTING)
            and record["id"] not in self._tasks
            and silent > float(record.get("execution_duration", 0))
        ):
            return {
                **record,
                "phase": ERROR,
                "error": {
                    "prefix": "TransientFault",
                    "message": "the job's run was lost (its process "
                    "stopped); submit it again",
                },
            }
        return record

    async def ids(self, kind: str) -> list[str]:
        """Return the ids of every job of a kind."""
        store = self._store()
        with required(CONTROL_STORE):
            return await asyncio.to_thread(store.ids, f"{kind}-")

    async def update(self, job_id: str, **fields: Any) -> None:
        """Change fields of a job's record."""
        store = self._store()
        with required(CONTROL_STORE):
            await asyncio.to_thread(lambda: store.update(job_id, **fields))

    async def start(self, job_id: str, work: Work) -> None:
        """Queue a PENDING job and run its work in this process."""
        await self.update(job_id, phase=QUEUED)
        task = asyncio.create_task(self._run(job_id, work))
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def _run(self, job_id: str, work: Work) -> None:
        """Run a job's work within its execution duration; record how."""
        progress = Progress(self, job_id, total=0)
        await self.update(job_id, phase=EXECUTING, start_time=time.time())
        try:
            async with asyncio.timeout(self.execution_seconds):
                await work(progress)
        except asyncio.CancelledError:
            await self._finish(job_id, ABORTED, progress)
            raise
        except TimeoutError:
            await self._finish(
                job_id,
                ABORTED,
                progress,
                {
                    "prefix": "TransientFault",
                    "message": f"the job ran past its execution duration "
                    f"({self.execution_seconds:g} s)",
                },
            )
        except Exception as error:  # noqa: BLE001 - recorded in the job
            problem = protocol_error(error)
            await self._finish(
                job_id,
                ERROR,
                progress,
                {"prefix": problem.prefix, "message": str(problem)},
            )
        else:
            await self._finish(job_id, COMPLETED, progress)

    async def _finish(
        self,
        job_id: str,
        phase: str,
        progress: Progress,
        error: dict[str, str] | None = None,
    ) -> None:
        """Record a job's end (its results so far are kept)."""
        with contextlib.suppress(Exception):
            await self.update(
                job_id,
                phase=phase,
                end_time=time.time(),
                results=progress.results,
                progress={"done": progress.done, "total": progress.total},
                error=error,
            )

    async def abort(self, job_id: str) -> None:
        """Stop a job: cancel its run here, or mark it ABORTED."""
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return
        record = await self.get(job_id)
        if record is not None and record["phase"] not in FINAL:
            await self.update(job_id, phase=ABORTED, end_time=time.time())

    async def delete(self, job_id: str) -> bool:
        """Abort a job and forget it (record and results)."""
        record = await self.get(job_id)
        if record is None:
            return False
        await self.abort(job_id)
        store = self._store()
        with required(CONTROL_STORE):
            await asyncio.to_thread(store.delete, job_id)
        for result in record.get("results", []):
            key = result_key(job_id, result["id"])
            products = self.cache.stores.products
            if products is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(products.delete, key)
        return True

    async def wait(
        self, job_id: str, phase: str | None, seconds: float
    ) -> dict[str, Any] | None:
        """Return a job's record once its phase leaves ``phase``.

        Waits at most ``seconds`` (UWS's blocking WAIT); ``phase`` None
        means its phase when the wait began. A final phase returns at
        once.
        """
        record = await self.get(job_id)
        deadline = time.monotonic() + seconds
        start = phase or (record or {}).get("phase")
        while (
            record is not None
            and record["phase"] == start
            and record["phase"] not in FINAL
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(POLL_SECONDS)
            record = await self.get(job_id)
        return record

    async def result(self, job_id: str, name: str) -> bytes | None:
        """Return a kept result's bytes (None if the cache lost them)."""
        value = await asyncio.to_thread(
            self.cache.open, result_key(job_id, name)
        )
        if value is None:
            return None
        opened = await asyncio.to_thread(self.cache.start_reading, value)
        if opened is None:
            return None
        rest = await asyncio.to_thread(lambda: b"".join(opened.rest))
        return opened.first + rest

    async def close(self) -> None:
        """Abort the runs of this process (the API is stopping)."""
        for job_id in list(self._tasks):
            await self.abort(job_id)
