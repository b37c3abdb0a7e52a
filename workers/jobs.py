"""Job records of requests that outlived their sync timeout (202).

A record lives in the control store (shared by every API process) and,
as a copy, in this process: the copy answers while the control store is
away, and expires as the stored record would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from cache import ResilientCache
from recreate.errors import RecreateError
from workers.http_errors import public_message
from workers.models import TaskResult, TaskSpec


@dataclass
class JobBook:
    """The jobs of this service: open, finish, look up.

    Parameters
    ----------
    cache
        The control store's job records (through the resilient cache).
    ttl_seconds
        How long a record is kept after its last update.
    """

    cache: ResilientCache
    ttl_seconds: float
    _jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def open(
        self, spec: TaskSpec, url: str, task: asyncio.Task[TaskResult]
    ) -> dict[str, Any]:
        """Record a job for a request that outlived its sync timeout.

        ``task`` is the broker's task for the product: if it finished
        between the timeout and now, the record says so at once.
        """
        # The job store sets id, created and updated itself; the local
        # copy carries them too.
        fields: dict[str, Any] = {
            "state": "running",
            "instrument": spec.instrument,
            "visit": spec.visit,
            "detector": spec.detector,
            "format": spec.output_format.name,
            "url": url,
        }
        now = time.time()
        record = {
            "id": spec.product_key,
            **fields,
            "created": now,
            "updated": now,
        }
        self._forget_expired(now)
        self._jobs[spec.product_key] = record
        self.cache.create_job(spec.product_key, fields)
        if task.done() and not task.cancelled():
            error = task.exception()
            self.finish(
                spec.product_key,
                error if isinstance(error, RecreateError) else None,
                finished=time.time(),
            )
        return record

    def finish(
        self, job_id: str, error: RecreateError | None, finished: float
    ) -> None:
        """Mark a product's job, if it has one, done or failed."""
        record = self._jobs.get(job_id)
        if record is None:
            return
        update: dict[str, Any] = {}
        if error is None:
            update["state"] = "done"
        else:
            # What a client may read of it (its detail is in the log).
            update["state"] = "failed"
            update["error"] = {
                "code": error.code,
                "message": public_message(error),
            }
        record.update(update, updated=finished)
        self.cache.update_job(job_id, **update)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """Return a job record (control store first, then this process)."""
        return self.cache.job(job_id) or self._jobs.get(job_id)

    def _forget_expired(self, now: float) -> None:
        """Drop local job records the job store would have expired.

        The local copies answer while the control Redis is away; kept
        past the TTL they would only grow with every 202.
        """
        oldest = now - self.ttl_seconds
        expired = [
            key
            for key, record in self._jobs.items()
            if record["updated"] < oldest
        ]
        for key in expired:
            del self._jobs[key]
